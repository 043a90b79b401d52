"""The build, stage by stage: load → public view → pages → schemas → swap."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import docs, opendata, pages, publish, search, signs
from .load import Loaded, load

Progress = Callable[[str, int, int], None]


@dataclass
class BuildResult:
    loaded: Loaded
    pages: int
    signs: signs.SignStats
    seconds: dict[str, float] = field(default_factory=dict)


def build(data: Path, out: Path, cache: Path, progress: Progress | None = None) -> BuildResult:
    """Build the site for `data` into a staging directory, then make it the live `out`."""
    timer = _Timer()
    staging = publish.begin(out)
    loaded = load(data, cache, progress=_stage(progress, "读取"))
    timer.lap("load")
    rendered = pages.render(loaded, staging, progress=_stage(progress, "页面"))
    for name, text in docs.json_schema_files(loaded.site.base_url).items():
        pages.write(staging, f"schema/{name}", text)
    timer.lap("pages")
    search.build_search(loaded, rendered.rows, staging, progress=_stage(progress, "搜索"))
    timer.lap("search")
    previous = out if (out / publish.MARKER).exists() else None  # carries the monthly archive over
    opendata.write_open_data(loaded, staging, previous, progress=_stage(progress, "开放数据"))
    timer.lap("open data")
    sign_stats = signs.render_signs(loaded, staging, cache, progress=_stage(progress, "标识牌"))
    timer.lap("signs")
    publish.swap(staging, out)
    timer.lap("swap")
    return BuildResult(loaded, rendered.pages, sign_stats, timer.laps)


def _stage(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    return (lambda done, total: progress(name, done, total)) if progress else None


class _Timer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 3)
        self._t = now
