"""HTML pages from the public view: one per permit, the index, and the markdown pages in content/.

Each template gets a declared context (a dataclass below); templates present, they do not compute.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from . import facts, urls
from .load import Loaded, iter_records
from .public import public_view
from .schema import Regions, Site

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "layouts"
CONTENT = ROOT / "content"


@dataclass(frozen=True)
class Place:
    city: str
    county: str | None


@dataclass(frozen=True)
class Common:
    """What every page's frame needs."""

    site: Site
    root: str  # relative path from the page to the site root, e.g. '../../'
    title: str


@dataclass(frozen=True)
class EnterprisePage:
    common: Common
    view: dict[str, Any]
    place: Place
    status: str
    status_label: str
    url: str  # the permanent address


@dataclass(frozen=True)
class Row:
    name: str
    href: str
    county: str | None
    category: str
    status: str
    status_label: str


@dataclass(frozen=True)
class CityGroup:
    name: str
    rows: list[Row]


@dataclass(frozen=True)
class IndexPage:
    common: Common
    total: int
    cities: list[CityGroup]


@dataclass(frozen=True)
class ContentPage:
    common: Common
    html: str


def cn_date(value: dt.date | str) -> str:
    """2026-11-20 → 2026年11月20日."""
    date = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{date.year}年{date.month}月{date.day}日"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(LAYOUTS),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cn_date"] = cn_date
    return env


def places(regions: Regions) -> Callable[[str], Place]:
    names = {c.code: c.name for c in regions.cities}
    counties = {k.code: k.name for c in regions.cities for k in c.counties}

    def place(region: str) -> Place:
        return Place(names[region[:4] + "00"], counties.get(region))

    return place


def _root(path: str) -> str:
    return "../" * path.count("/")


def write(staging: Path, path: str, text: str) -> None:
    target = staging / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8", newline="\n")


def render(loaded: Loaded, staging: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Write every page; returns how many were written."""
    env = environment()
    site, place = loaded.site, places(loaded.regions)
    enterprise = env.get_template("enterprise.html")
    rows: list[tuple[str, Row]] = []
    count = 0
    for entry, record in iter_records(loaded):
        view = public_view(record)
        path = urls.enterprise_path(entry.permit_no)
        status = facts.permit_status(view, site.as_of)
        page = EnterprisePage(
            Common(site, _root(path), view["enterprise"]["name"]),
            view,
            place(entry.region),
            status,
            facts.STATUS_LABELS[status],
            urls.absolute(site.base_url, path),
        )
        write(staging, path + "index.html", enterprise.render(page=page))
        rows.append((entry.region, Row(entry.name, path, page.place.county, entry.category, status, page.status_label)))
        count += 1
        if progress and count % 200 == 0:
            progress(count, len(loaded.entries))
    write(staging, "index.html", env.get_template("index.html").render(page=_index(site, loaded.regions, rows)))
    for path, page in _content_pages(site):
        write(staging, path, env.get_template("content.html").render(page=page))
        count += 1
    return count + 1


def _index(site: Site, regions: Regions, rows: list[tuple[str, Row]]) -> IndexPage:
    groups = []
    for city in regions.cities:
        mine = sorted((r for region, r in rows if region[:4] == city.code[:4]), key=lambda r: r.name)
        groups.append(CityGroup(city.name, mine))
    return IndexPage(Common(site, "", site.program_name), len(rows), groups)


def _content_pages(site: Site) -> Iterator[tuple[str, ContentPage]]:
    """content/NAME.md → NAME/index.html; a leading `title:` front matter names the page."""
    for source in sorted(CONTENT.glob("*.md")):
        text = source.read_text(encoding="utf-8")
        title = source.stem
        front = re.match(r"^---\ntitle: (.+)\n---\n", text)
        if front:
            title, text = front.group(1), text[front.end() :]
        path = f"{source.stem}/"
        html = markdown.markdown(text, extensions=["tables", "toc"], output_format="html")
        yield path + "index.html", ContentPage(Common(site, _root(path), title), html)
