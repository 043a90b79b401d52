"""HTML pages from the public view: a page per permit and per outlet, the browsing lists, the home
page, the markdown pages of content/, 404, sitemap.xml and robots.txt.

Records are streamed one at a time; only a small `Row` per enterprise stays in memory for the lists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined, meta

from . import facts, publish, urls
from .context import TONE_OF_STATUS, Common, Place, Stamp, cn_date, enterprise_page, outlet_page, root_of
from .feed import Recent
from .load import Entry, Loaded, iter_views
from .manifest import Reuse, files_key, key_of
from .schema import Regions, Site

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "layouts"
CONTENT = ROOT / "content"
PAGE_SIZE = 100
SITEMAP_LIMIT = 50_000  # URLs per sitemap file (sitemaps.org)
SCROLL_BOX = '<div class="scroll" tabindex="0" role="region" aria-label="表格（可横向滚动）">'
CATEGORIES = {"重点管理": "key", "简化管理": "simplified", "登记管理": "registered"}


@dataclass(frozen=True, repr=False)
class Row:
    """An enterprise as the browsing lists show it (from the public view only)."""

    permit_no: str
    name: str
    path: str
    city_code: str
    county: str | None
    industry: str
    industry_name: str
    category: str
    status: str
    status_label: str
    status_tone: str
    exceedances: int
    penalties: int
    open_rectifications: int
    credit: str | None  # the credit level, unless withheld or not rated

    def __repr__(self) -> str:
        """The dataclass's repr, made once: a row is in the keys of several pages a night (its
        lists, the home page, search), and repr was 3.5 s of a night's CPU at 100,000."""
        text = self.__dict__.get("_repr")
        if text is None:
            text = f"Row({', '.join(f'{f}={getattr(self, f)!r}' for f in ROW_FIELDS)})"
            self.__dict__["_repr"] = text  # frozen: not through setattr
        return text


ROW_FIELDS = [f.name for f in dataclasses.fields(Row)]  # in order: the manifest's list rows too


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    count: int | None = None


@dataclass(frozen=True)
class ListPage:
    common: Common
    heading: str
    intro: str
    rows: list[Row]
    page: int
    pages: list[Link]  # one per page of this list; the current one has href ""
    first: int  # number of the first row on this page


@dataclass(frozen=True)
class Figures:
    total: int
    by_category: list[Link]
    by_status: list[tuple[str, str, int]]  # status, label, count
    with_exceedances: int
    with_penalties: int
    with_open_rectifications: int


@dataclass(frozen=True)
class HomePage:
    common: Common
    figures: Figures
    cities: list[Link]
    categories: list[Link]
    industries: list[Link]
    recent: list[Recent]  # the newest changes, from the feed (feed.recent)
    content: list[Link]


@dataclass(frozen=True)
class ContentPage:
    common: Common
    html: str


@dataclass(frozen=True)
class IndexOfLinks:
    common: Common
    heading: str
    links: list[Link]


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(LAYOUTS),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # layouts do not change during a build: no stat per page
    )
    env.filters["cn_date"] = cn_date
    env.filters["num"] = lambda v: "—" if v is None else f"{v:g}"
    return env


def places(regions: Regions) -> Callable[[str], Place]:
    names = {c.code: c.name for c in regions.cities}
    counties = {k.code: k.name for c in regions.cities for k in c.counties}

    def place(region: str) -> Place:
        city = region[:4] + "00"
        return Place(names[city], city, counties.get(region))

    return place


def write(staging: Path, path: str, text: str) -> None:
    """A page into staging, as a new file (the one there may be the live site's: publish.py)."""
    publish.write_file(staging / path, text)


@dataclass(frozen=True)
class Unit:
    """One permit's pages, and what the lists, the search and the next night need of it."""

    permit_no: str
    key: str  # of everything the pages are made from
    paths: list[str]  # the enterprise page first, then its outlet pages
    row: Row
    stable_until: str  # the pages stay the same until this date (facts.stable_until)
    data_date: str | None
    changed: str  # the export date of the night these pages last changed
    rendered: bool  # False: linked from the live build

    @classmethod
    def from_state(cls, permit_no: str, state: dict[str, Any]) -> Unit:
        return cls(
            permit_no,
            state["key"],
            state["paths"],
            Row(**state["row"]),
            state["stable_until"],
            state["data_date"],
            state["changed"],
            False,
        )


@dataclass(frozen=True)
class Rendered:
    pages: int  # HTML pages in the build
    rendered: int  # HTML pages rendered tonight (the rest were linked from the live build)
    units: list[Unit]  # one per enterprise, sorted by permit number

    @property
    def rows(self) -> list[Row]:  # what search and the lists read
        return [u.row for u in self.units]


def template_key(env: Environment, name: str) -> str:
    """The hash of a template and every template it extends, includes or imports."""
    seen: dict[str, str] = {}

    def visit(n: str) -> None:
        if n in seen:
            return
        source = env.loader.get_source(env, n)[0]  # type: ignore[union-attr]
        seen[n] = source
        for ref in meta.find_referenced_templates(env.parse(source)):
            if ref:
                visit(ref)

    visit(name)
    return key_of(sorted(seen.items()))


# Code whose change changes the permit pages (the templates are hashed separately).
_CODE = [Path(__file__).with_name(n) for n in ("pages.py", "context.py", "facts.py", "charts.py", "urls.py")]


def permit_pages_key(env: Environment, site: Site, regions: Regions) -> str:
    """Everything the permit pages depend on besides the record: settings, regions, templates, code.
    Not the export date: what depends on it is keyed by facts.stable_until."""
    return key_of(
        _site_key(site),
        regions.model_dump(mode="json"),
        template_key(env, "enterprise.html"),
        template_key(env, "outlet.html"),
        files_key(_CODE),
    )


@dataclass
class _Job:
    loaded: Loaded
    staging: Path
    env_key: str
    stale: dict[str, dict[str, str]]
    env: Environment  # compiled once before the pool forks; the workers inherit it
    previous: dict[str, dict[str, Any]]  # the live manifest's records


_JOB: _Job | None = None  # set before the pool forks, read by the workers


def _render_batch(entries: list[Entry]) -> list[Unit]:
    job = _JOB
    assert job is not None
    env = job.env
    site, place = job.loaded.site, places(job.loaded.regions)
    tones = {c.level: c.tone for c in site.credit_scale}
    enterprise_t, outlet_t = env.get_template("enterprise.html"), env.get_template("outlet.html")
    out = []
    today = site.as_of.isoformat()
    for entry, view in iter_views(job.loaded, entries):
        until = facts.stable_until(view, site.as_of).isoformat()
        stale = job.stale.get(entry.permit_no)
        key = key_of(entry.digest, until, stale, job.env_key)
        before = job.previous.get(entry.permit_no, {})
        changed = before["changed"] if before.get("key") == key else today
        stamp = Stamp(facts.data_date(view), changed, stale["data_date"] if stale else None)
        page = enterprise_page(view, site, place(entry.region), tones, stamp)
        write(job.staging, page.common.path + "index.html", enterprise_t.render(page=page))
        paths = [page.common.path + "index.html"]
        for outlet in page.outlets:
            sub = outlet_page(view, site, page.place, outlet, stamp)
            write(job.staging, sub.common.path + "index.html", outlet_t.render(page=sub))
            paths.append(sub.common.path + "index.html")
        row = _row(view, page.common.path, page.place, site.as_of, len(page.exceedances))
        out.append(Unit(entry.permit_no, key, paths, row, until, stamp.data_as_of, changed, True))
    return out


def _reusable(entry: Entry, state: dict[str, Any] | None, job: _Job, reuse: Reuse | None) -> Unit | None:
    """The live build's pages of this permit, if nothing they are made from has changed."""
    if reuse is None or state is None or state.get("digest") != entry.digest:
        return None
    if job.loaded.site.as_of.isoformat() >= state["stable_until"]:
        return None
    unit = Unit.from_state(entry.permit_no, state)
    key = key_of(entry.digest, unit.stable_until, job.stale.get(entry.permit_no), job.env_key)
    return unit if key == unit.key and reuse.link_all(unit.paths, key) else None


def render(
    loaded: Loaded,
    staging: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    reuse: Reuse | None = None,
    previous: dict[str, dict[str, Any]] | None = None,
    stale: dict[str, dict[str, str]] | None = None,
    recent: list[Recent] | None = None,
    workers: int | None = None,
) -> Rendered:
    """Write every page. A permit's pages are linked from the live build when their inputs are the
    same (`previous`: the live manifest's records); the others render in parallel worker processes."""
    global _JOB
    env = environment()
    site = loaded.site
    env.get_template("enterprise.html"), env.get_template("outlet.html")  # compiled before the fork
    previous = previous or {}
    job = _Job(loaded, staging, permit_pages_key(env, site, loaded.regions), stale or {}, env, previous)
    units: dict[str, Unit] = {}
    todo: list[Entry] = []
    for entry in loaded.entries:
        unit = _reusable(entry, previous.get(entry.permit_no), job, reuse)
        if unit is None:
            todo.append(entry)
        else:
            units[entry.permit_no] = unit
    total = len(loaded.entries)
    _JOB = job
    try:
        for batch in _pool_map(_render_batch, _chunks(todo, workers), workers):
            for unit in batch:
                units[unit.permit_no] = unit
                if reuse is not None:
                    for p in unit.paths:
                        reuse.keys[p] = unit.key
            if progress:
                progress(len(units), total)
    finally:
        _JOB = None
    ordered = [units[e.permit_no] for e in loaded.entries]
    rows = [u.row for u in ordered]
    sitemap = [p.removesuffix("index.html") for u in ordered for p in u.paths]
    shared = _shared_pages(env, loaded, staging, rows, recent or [], reuse)
    sitemap += shared.paths
    for name, text in sitemaps(site.base_url, ["", *sitemap]).items():
        write(staging, name, text)
    write(staging, "robots.txt", f"User-agent: *\nAllow: /\nSitemap: {site.base_url}sitemap.xml\n")
    permit_pages = sum(len(u.paths) for u in ordered)
    fresh = sum(len(u.paths) for u in ordered if u.rendered)
    return Rendered(permit_pages + shared.pages, fresh + shared.rendered, ordered)


@dataclass(frozen=True)
class _Shared:
    paths: list[str]  # for the sitemap (home and 404 left out)
    pages: int
    rendered: int


def _shared_pages(
    env: Environment, loaded: Loaded, staging: Path, rows: list[Row], recent: list[Recent], reuse: Reuse | None
) -> _Shared:
    """Lists, content pages, home and 404: each linked from the live build when its inputs are the same."""
    site = loaded.site
    rendered = 0

    today = site.as_of.isoformat()
    site_key = _site_key(site)
    templates: dict[str, str] = {}  # name -> template_key (parsing the templates per list page cost 6 s at 100k)

    def put(path: str, template: str, page: Any, data_as_of: str | None = None) -> None:
        nonlocal rendered
        if template not in templates:
            templates[template] = template_key(env, template)
        key = key_of(templates[template], site_key, data_as_of, _without_frame(page))
        stamp = Stamp(data_as_of, reuse.changed_on(path, key, today) if reuse else today)
        if reuse is None or not reuse.link(path, key):
            page = dataclasses.replace(page, common=dataclasses.replace(page.common, stamp=stamp))
            write(staging, path, env.get_template(template).render(page=page))
            rendered += 1

    paths = []
    lists = list(_list_pages(site, loaded.regions, rows))
    for path, page in lists:
        put(path + "index.html", "list.html" if isinstance(page, ListPage) else "links.html", page)
        paths.append(path)
    contents = list(_content_pages(site))
    for path, page in contents:
        put(path + "index.html", "content.html", page)
        paths.append(path)
    put("index.html", "home.html", _home(site, loaded.regions, rows, recent, contents), today)
    base_path = urlsplit(site.base_url).path
    put("404.html", "404.html", ContentPage(Common(site, base_path, "页面不存在", "404.html"), ""))
    return _Shared(paths, len(lists) + len(contents) + 2, rendered)


def _site_key(site: Site) -> str:
    """The settings a page frame shows; not the export date, which only the home page states."""
    return key_of(site.model_dump(mode="json", exclude={"as_of"}))


def _without_frame(page: Any) -> str:
    """What a shared page shows besides its frame (the site settings are keyed apart)."""
    return repr(dataclasses.replace(page, common=dataclasses.replace(page.common, site=None, stamp=None)))


def _chunks(entries: list[Entry], workers: int | None) -> list[list[Entry]]:
    n = workers or os.cpu_count() or 1
    size = max(8, min(200, len(entries) // (n * 8) or 1))
    return [entries[i : i + size] for i in range(0, len(entries), size)]


def _pool_map(
    fn: Callable[[list[Entry]], list[Unit]], chunks: list[list[Entry]], workers: int | None
) -> Iterator[list[Unit]]:
    n = workers or os.cpu_count() or 1
    if n <= 1 or len(chunks) <= 1:
        yield from map(fn, chunks)
        return
    with multiprocessing.get_context("fork").Pool(n) as pool:
        yield from pool.imap(fn, chunks)


def _row(view: facts.View, path: str, place: Place, as_of: dt.date, exceedances: int) -> Row:
    status = facts.permit_status(view, as_of)
    industry = view["enterprise"]["industry"]
    credit = view.get("credit")
    return Row(
        view["permit_no"],
        view["enterprise"]["name"],
        path,
        place.city_code,
        place.county,
        industry["code"],
        industry["name"],
        view["permit"]["category"],
        status,
        facts.STATUS_LABELS[status],
        TONE_OF_STATUS[status],
        exceedances,
        len(facts.recent_penalties(view, as_of)),
        len(facts.open_rectifications(view)),
        None if credit is None or facts.withheld(credit) else credit["level"],
    )


def _paged(common_path: str, site: Site, heading: str, intro: str, rows: list[Row]) -> Iterator[tuple[str, ListPage]]:
    chunks = [rows[i : i + PAGE_SIZE] for i in range(0, len(rows), PAGE_SIZE)] or [[]]
    paths = [common_path if n == 0 else f"{common_path}{n + 1}/" for n in range(len(chunks))]
    for n, chunk in enumerate(chunks):
        here = paths[n]
        links = [Link(str(i + 1), "" if i == n else root_of(here) + p) for i, p in enumerate(paths)]
        title = heading if n == 0 else f"{heading}（第 {n + 1} 页）"
        yield (
            here,
            ListPage(Common(site, root_of(here), title, here), heading, intro, chunk, n + 1, links, n * PAGE_SIZE + 1),
        )


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.name, r.permit_no))


def _list_pages(site: Site, regions: Regions, rows: list[Row]) -> Iterator[tuple[str, ListPage | IndexOfLinks]]:
    by_city: dict[str, list[Row]] = defaultdict(list)
    by_industry: dict[str, list[Row]] = defaultdict(list)
    by_category: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_city[r.city_code].append(r)
        by_industry[r.industry].append(r)
        by_category[r.category].append(r)
    for city in regions.cities:
        intro = f"{city.name}的排污许可持证（登记）单位，共 {len(by_city[city.code])} 家，按名称排序。"
        yield from _paged(f"city/{city.code}/", site, city.name, intro, _sorted(by_city[city.code]))
    names = {r.industry: r.industry_name for r in rows}
    for code in sorted(by_industry):
        intro = f"行业“{names[code]}”（{code}）的持证（登记）单位，共 {len(by_industry[code])} 家。"
        yield from _paged(f"industry/{code}/", site, f"{names[code]}（{code}）", intro, _sorted(by_industry[code]))
    for category, slug in CATEGORIES.items():
        intro = f"实行{category}的单位，共 {len(by_category[category])} 家。"
        yield from _paged(f"category/{slug}/", site, category, intro, _sorted(by_category[category]))
    indexes = {
        "city/": ("按地区浏览", [Link(c.name, f"{c.code}/", len(by_city[c.code])) for c in regions.cities]),
        "industry/": (
            "按行业浏览",
            [Link(f"{names[c]}（{c}）", f"{c}/", len(by_industry[c])) for c in sorted(by_industry)],
        ),
        "category/": ("按管理类别浏览", [Link(c, f"{slug}/", len(by_category[c])) for c, slug in CATEGORIES.items()]),
    }
    for path, (heading, links) in indexes.items():
        yield path, IndexOfLinks(Common(site, "../", heading, path), heading, links)


def _home(
    site: Site, regions: Regions, rows: list[Row], recent: list[Recent], contents: list[tuple[str, ContentPage]]
) -> HomePage:
    cities = Counter(r.city_code for r in rows)
    categories = Counter(r.category for r in rows)
    statuses = Counter(r.status for r in rows)
    industries = Counter(r.industry for r in rows)
    names = {r.industry: r.industry_name for r in rows}
    figures = Figures(
        total=len(rows),
        by_category=[Link(c, f"category/{slug}/", categories[c]) for c, slug in CATEGORIES.items()],
        by_status=[(s, facts.STATUS_LABELS[s], statuses[s]) for s in facts.STATUS_LABELS if statuses[s]],
        with_exceedances=sum(1 for r in rows if r.exceedances),
        with_penalties=sum(1 for r in rows if r.penalties),
        with_open_rectifications=sum(1 for r in rows if r.open_rectifications),
    )
    top_industries = sorted(industries, key=lambda c: (-industries[c], c))[:12]
    return HomePage(
        common=Common(site, "", site.program_name, ""),
        figures=figures,
        cities=[Link(c.name, f"city/{c.code}/", cities[c.code]) for c in regions.cities],
        categories=figures.by_category,
        industries=[Link(names[c], f"industry/{c}/", industries[c]) for c in top_industries],
        recent=recent,
        content=[Link(page.common.title, path) for path, page in contents],
    )


def _content_pages(site: Site) -> Iterator[tuple[str, ContentPage]]:
    """content/NAME.md → NAME/index.html; a leading `title:` front matter names the page."""
    for source in sorted(CONTENT.glob("*.md")):
        text = source.read_text(encoding="utf-8")
        title = source.stem
        front = re.match(r"^---\ntitle: (.+)\n(?:order: \d+\n)?---\n", text)
        if front:
            title, text = front.group(1), text[front.end() :]
        path = f"{source.stem}/"
        html = markdown.markdown(text, extensions=["tables", "toc"], output_format="html")
        # Wide tables scroll inside their own box on a phone, reachable by keyboard.
        html = html.replace("<table>", SCROLL_BOX + "<table>").replace("</table>", "</table></div>")
        yield path, ContentPage(Common(site, root_of(path), title, path), html)


def sitemaps(base_url: str, paths: list[str]) -> dict[str, str]:
    """sitemap.xml, split into numbered files under an index past 50,000 URLs."""

    def urlset(chunk: list[str]) -> str:
        body = "".join(f"<url><loc>{escape(urls.absolute(base_url, p))}</loc></url>\n" for p in chunk)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{body}</urlset>\n'

    if len(paths) <= SITEMAP_LIMIT:
        return {"sitemap.xml": urlset(paths)}
    chunks = [paths[i : i + SITEMAP_LIMIT] for i in range(0, len(paths), SITEMAP_LIMIT)]
    files = {f"sitemaps/{n + 1}.xml": urlset(c) for n, c in enumerate(chunks)}
    body = "".join(f"<sitemap><loc>{escape(base_url + name)}</loc></sitemap>\n" for name in files)
    index = f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{body}</sitemapindex>\n'
    return {"sitemap.xml": index, **files}
