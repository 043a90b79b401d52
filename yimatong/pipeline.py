"""The build, stage by stage: load → last good records → pages → search → open data → signs →
catalog → verify → manifest → swap. Nothing is written into the live output; a run that fails or
dies leaves it as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import operator
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import changes, docs, feed, heap, opendata, pages, publish, search, signs, urls, verify
from .errors import Problem, YimatongError
from .load import Entry, Loaded, load
from .manifest import Catalog, Manifest, Records, Reuse, catalog, folder_of, tree_of

Progress = Callable[[str, int, int], None]
KILL_AT = "YIMATONG_KILL_AT"  # tests: the build SIGKILLs itself at this point (see _checkpoint)


@dataclass(frozen=True)
class Options:
    full: bool = False  # render everything, link nothing from the live build (history is still read)
    signs: bool = True
    allow_shrink: bool = False
    workers: int | None = None


@dataclass
class BuildResult:
    loaded: Loaded
    pages: int
    rendered: int
    signs: signs.SignStats | None
    files: Catalog
    carried: dict[str, dict[str, str]]  # permit -> why its last good record is shown
    problems: list[Problem]  # found by verification; none when published
    published: bool
    seconds: dict[str, float] = field(default_factory=dict)


class VerificationFailed(YimatongError):
    def __init__(self, result: BuildResult) -> None:
        super().__init__(f"校验未通过（{len(result.problems)} 个问题），未发布，线上网站保持不变")
        self.result = result


@heap.batch()
def build(
    data: Path,
    out: Path,
    cache: Path,
    progress: Progress | None = None,
    options: Options | None = None,
    keep_old: bool = False,
) -> BuildResult:
    """Build the site for `data` into a staging directory, verify it, then make it the live `out`.
    `keep_old`: leave the stale views for `tidy` (the nightly uploads first)."""
    out = out.resolve()
    with publish.exclusive(out):
        result = _build(data, out, cache, progress, options or Options())
        if not keep_old:
            tidy(result, out)
        return result


def _build(data: Path, out: Path, cache: Path, progress: Progress | None, options: Options) -> BuildResult:
    timer = _Timer()
    staging, pristine = publish.begin(out)
    live = out if (out / publish.MARKER).exists() else None
    last: list[tuple[Manifest | None, Reuse]] = []

    def last_night() -> None:
        """The live build's manifest, and staging cleared of what is not the live build's: run
        while the loader's workers parse. Last night's moved-aside tree lists its own files; a
        killed run's leftover is read folder by folder."""
        with heap.acyclic():  # plain containers, a few million: no collection needed while they grow
            previous = Manifest.read(out) if live else None
            base = None
            if pristine:  # the live build's manifest says what its predecessor holds, or that one's own does
                base = (previous.prior if previous else None) or tree_of(staging)
            last.append((previous, Reuse(None if options.full else live, previous, staging, base)))
        heap.keep(collect=False)  # made while the collector was off: no cycles in it to find

    loaded = load(data, cache, options.workers, _stage(progress, "读取", "load"), meanwhile=last_night)
    previous, reuse = last[0]
    carried = carry_last_good(loaded, previous)
    timer.lap("load")

    # Before the pages: the home page lists the newest changes (feed.recent(feed_xml, 20, present)).
    last_feed = live / feed.FEED_PATH if live else None
    present = {urls.enterprise_path(e.permit_no) for e in loaded.entries}  # a removed holder's page is gone
    tonight = night_changes(loaded, previous, live)
    last_xml = last_feed.read_bytes() if last_feed and last_feed.exists() else None
    try:
        feed_xml = feed.atom(tonight, last_xml, loaded.site, present=present)
    except feed.FeedUnreadable as err:  # a damaged file must not stop the nights: the feed restarts
        loaded.problems.append(Problem(feed.FEED_PATH, None, "", f"{err}；本次从今晚的变更重新开始", "warning"))
        feed_xml = feed.atom(tonight, None, loaded.site, present=present)
    (staging / feed.FEED_PATH).write_bytes(feed_xml)
    timer.lap("changes")

    rendered = pages.render(
        loaded,
        staging,
        progress=_stage(progress, "页面", "pages"),
        reuse=reuse,
        previous=previous.records if previous else None,
        stale=carried,
        recent=feed.recent(feed_xml, 20, present),
        workers=options.workers,
    )
    for name, text in docs.json_schema_files(loaded.site.base_url).items():
        pages.write(staging, f"schema/{name}", text)
    timer.lap("pages")
    search.build_search(loaded, rendered.rows, staging, progress=_stage(progress, "搜索", "search"), reuse=reuse)
    timer.lap("search")
    open_data = opendata.write_open_data(
        loaded,
        staging,
        live,
        progress=_stage(progress, "开放数据", "opendata"),
        cache_dir=None if options.full else cache,
        reuse=reuse,
        workers=options.workers,
    )
    timer.lap("open data")
    sign_stats = None
    signs_absent = False
    if not options.signs:
        signs_absent = reuse.carry("signs/") == 0  # none live, or --full: the site goes without
    if options.signs:
        sign_stats = signs.render_signs(
            loaded, staging, cache, reuse=reuse, progress=_stage(progress, "标识牌", "signs"), workers=options.workers
        )
        timer.lap("signs")

    files = catalog(staging, live, previous, reuse.keys, reuse.dates, reuse)
    timer.lap("catalog")
    records = _records(loaded, rendered, carried)
    manifest = Manifest(files.outputs, records, loaded.site.as_of.isoformat(), files.prior, bundles=files.bundles)
    with ThreadPoolExecutor(1) as background:  # encoding the manifest overlaps the verifier's processes
        written = background.submit(manifest.write, staging)
        found = check(
            staging, loaded, rendered, files, previous, sign_stats, options, signs_absent, live, open_data.zips
        )
        written.result()
    problems = verify.errors(found)
    timer.lap("verify")
    result = BuildResult(
        loaded, rendered.pages, rendered.rendered, sign_stats, files, carried, problems, False, timer.laps
    )
    if problems:  # staging stays: tomorrow starts from it, and removes what it does not make again
        raise VerificationFailed(result)
    _checkpoint("swap")
    publish.swap(staging, out, swapped=lambda: _checkpoint("swapped"))
    result.published = True
    timer.lap("swap")
    return result


def tidy(result: BuildResult, out: Path) -> None:
    """After publishing (and uploading): drop the views no page shows any more. (The previous tree
    stays beside the output: the next build starts from it.)"""
    if result.published:
        result.loaded.store.prune({e.digest for e in result.loaded.entries})


def check(
    staging: Path,
    loaded: Loaded,
    rendered: pages.Rendered,
    files: Catalog,
    previous: Manifest | None,
    sign_stats: signs.SignStats | None,
    options: Options,
    signs_absent: bool = False,
    live: Path | None = None,
    zips: Mapping[str, opendata.ZipLayout] | None = None,
) -> list[Problem]:
    """Verify the staging tree: links, QR targets, pages whole, nothing withheld or personal in it,
    nothing published last night gone. On an incremental night only what changed is read (the
    rest was verified the night it was written). A record's withheld values are looked for in its
    own files, in every row that names it (verify.row_secrets), and anywhere else unless the line
    names other holders only."""
    common = _published_anyway(loaded, staging)
    mine = {e.permit_no: set(e.secrets) - common for e in loaded.entries}
    # Elsewhere (lists, the home page, search, the tables) the distinctive values, with their owners:
    # found on a line that names only other holders, a value is theirs to publish.
    names = {e.name for e in loaded.entries}
    everyone: dict[str, set[str]] = defaultdict(set)
    for e in loaded.entries:
        for value in e.secrets:
            if len(value) >= 8 and value not in common and value not in names:
                everyone[value].add(e.permit_no)
    before = None
    if previous is not None:
        unsigned = {r.permit_no for r in rendered.rows if r.status not in signs.SIGNED_STATUSES}
        # A revoked permit's signs (signs/<permit>/…) go; so do all, in a build without them; and so
        # may a county volume's piece, named by the holder it ends with (`signs.cut_pieces`).
        signs_of = (p for p in previous.outputs if p.startswith("signs/"))
        going = {p for p in signs_of if signs_absent or p[6 : p.find("/", 6)] in unsigned or signs.is_volume_piece(p)}
        # The live build's paths, a bundle's folder for its files; and a file gone from a bundle
        # still here (a sign of an outlet no longer listed), which is named on its own then.
        before = previous.outputs.keys() - going
        before.update(p for p in files.removed if folder_of(p) in files.bundles)
    return verify.verify(
        staging,
        loaded.site.base_url,
        changed=files.changed if previous is not None else None,
        previous=before,
        qr_urls=sign_stats.qr_urls if sign_stats else [],
        secrets=lambda permit: mine.get(permit, ()),
        all_secrets=everyone,
        allow_shrink=options.allow_shrink,
        workers=options.workers or os.cpu_count() or 1,
        not_built=("signs/",) if signs_absent else (),
        paths=set(files.outputs),  # the catalog walked staging already
        bundles=files.bundles,
        live=live,  # tonight's zips are read only where they are not the live zips' bytes
        zips=zips,
    )


def _published_anyway(loaded: Loaded, staging: Path) -> set[str]:
    """Strings the site shows anyway (the site settings, the regions and their bureaus, the export
    format's examples): a record may withhold one of them in a field, but finding it is no leak."""
    found: set[str] = set()

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
        elif isinstance(obj, str):
            found.add(obj.strip())

    walk(loaded.site.model_dump(mode="json"))
    walk(loaded.regions.model_dump(mode="json"))
    for schema in sorted((staging / "schema").glob("*.json")):  # the format's examples, as written
        walk(json.loads(schema.read_text(encoding="utf-8")))
    return found


def carry_last_good(loaded: Loaded, previous: Manifest | None) -> dict[str, dict[str, str]]:
    """A record rejected tonight keeps its last good version (seed: a bad export never takes a page
    down). Returns, per carried permit, the date of the data shown and why tonight's was refused."""
    if previous is None:
        return {}
    errors: dict[str, Problem] = {}
    for p in loaded.problems:
        if p.severity == "error":
            errors.setdefault(p.file, p)
    present = {e.permit_no for e in loaded.entries}
    records = previous.records
    files = records.column("file") if isinstance(records, Records) else {p: s["file"] for p, s in records.items()}
    carried: dict[str, dict[str, str]] = {}
    for permit in sorted(p for p, f in files.items() if f in errors and p not in present):
        state = records[permit]
        problem = errors[state["file"]]
        if not loaded.store.has(state["digest"]):
            continue
        loaded.entries.append(Entry(**state["entry"], secrets=tuple(loaded.store.secrets(state["digest"]))))
        carried[permit] = {
            "data_date": state.get("carried", {}).get("data_date") or state["data_date"] or "",
            "reason": f"{problem.file} 第 {problem.line or '?'} 行 {problem.field}：{problem.message}",
        }
    loaded.entries.sort(key=lambda e: e.permit_no)
    return carried


def night_changes(loaded: Loaded, previous: Manifest | None, live: Path | None) -> list[changes.Change]:
    """Tonight's changes against the live build's records; none on a first build (no baseline: every
    holder would be "new"). Last night's view comes from the record store (pruned only after the swap)
    or, if the cache was wiped, from the live P/<permit>/data.json."""
    if previous is None or previous.as_of is None:
        return []
    before_as_of, as_of = dt.date.fromisoformat(previous.as_of), loaded.site.as_of
    tonight = {e.permit_no: e for e in loaded.entries}
    records = previous.records
    if isinstance(records, Records):
        last = records.dated_digests()
    else:
        last = {p: (s["digest"], s["stable_until"]) for p, s in records.items()}
    found: list[changes.Change] = []
    for permit in sorted(tonight.keys() | last.keys()):
        entry, known = tonight.get(permit), last.get(permit)
        same = known is not None and entry is not None and known[0] == entry.digest
        if same and known is not None and as_of.isoformat() < known[1]:
            continue  # same record, and no date-driven fact (the permit status) can have moved yet
        state = records.get(permit)
        after = loaded.store.get(entry.digest) if entry else None
        before = None
        if state is not None:
            document = live / urls.enterprise_path(permit) / "data.json" if live else None
            if same:
                before = after
            elif loaded.store.has(state["digest"]):
                before = loaded.store.get(state["digest"])
            elif document is not None and document.exists():
                before = changes.from_document(json.loads(document.read_text(encoding="utf-8")))[0]
            else:
                continue  # last night's view is lost: say nothing rather than a false "new"
        found += changes.events(permit, before, after, before_as_of, as_of)
    return found


_ENTRY = [f.name for f in dataclasses.fields(Entry) if f.name != "secrets"]  # never written anywhere


def _records(loaded: Loaded, rendered: pages.Rendered, carried: dict[str, dict[str, str]]) -> Records:
    """What the next night needs to know of each published permit (manifest.Records' fields)."""
    by_permit = {e.permit_no: e for e in loaded.entries}
    row_of, entry_of = operator.attrgetter(*pages.ROW_FIELDS), operator.attrgetter(*_ENTRY)
    rows: dict[str, list[Any]] = {}
    for unit in rendered.units:
        entry = by_permit[unit.permit_no]
        rows[unit.permit_no] = [
            entry.file,
            entry.digest,
            unit.key,
            unit.paths,
            unit.stable_until,
            unit.data_date,
            unit.changed,
            carried.get(unit.permit_no),
            list(row_of(unit.row)),
            list(entry_of(entry)),
        ]
    return Records(rows, pages.ROW_FIELDS, _ENTRY)


def _checkpoint(name: str) -> None:
    """Fault injection for the crash tests: die here, as a power cut or the OOM killer would."""
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _stage(progress: Progress | None, label: str, name: str) -> Callable[[int, int], None]:
    halfway = False

    def report(done: int, total: int) -> None:
        nonlocal halfway
        if progress:
            progress(label, done, total)
        if not halfway and done * 2 >= total:
            halfway = True
            _checkpoint(name)

    return report


class _Timer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 3)
        self._t = now
        heap.keep()  # what a stage made is kept until the run ends: no collection walks it again
