"""HTML pages from the public view: a page per permit and per outlet, the browsing lists, the home
page, the markdown pages of content/, 404, sitemap.xml and robots.txt.

Records are streamed one at a time; only a small `Row` per enterprise stays in memory for the lists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from . import facts, urls
from .context import TONE_OF_STATUS, Common, Place, cn_date, enterprise_page, outlet_page, root_of
from .load import Loaded, iter_views
from .schema import Regions, Site

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = ROOT / "layouts"
CONTENT = ROOT / "content"
PAGE_SIZE = 100
SITEMAP_LIMIT = 50_000  # URLs per sitemap file (sitemaps.org)
RECENT_DAYS = 30
SCROLL_BOX = '<div class="scroll" tabindex="0" role="region" aria-label="表格（可横向滚动）">'
CATEGORIES = {"重点管理": "key", "简化管理": "simplified", "登记管理": "registered"}


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Event:
    date: str
    what: str
    name: str
    path: str


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
    recent: list[Event]
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
    target = staging / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8", newline="\n")


@dataclass(frozen=True)
class Rendered:
    pages: int  # HTML pages written
    rows: list[Row]  # one per enterprise, sorted by permit number: what search and lists read


def render(loaded: Loaded, staging: Path, progress: Callable[[int, int], None] | None = None) -> Rendered:
    """Write every page."""
    env = environment()
    site, place = loaded.site, places(loaded.regions)
    tones = {c.level: c.tone for c in site.credit_scale}
    enterprise_t, outlet_t = env.get_template("enterprise.html"), env.get_template("outlet.html")
    rows: list[Row] = []
    events: list[Event] = []
    sitemap: list[str] = []
    count = 0
    for entry, view in iter_views(loaded):
        page = enterprise_page(view, site, place(entry.region), tones)
        write(staging, page.common.path + "index.html", enterprise_t.render(page=page))
        sitemap.append(page.common.path)
        for outlet in page.outlets:
            sub = outlet_page(view, site, page.place, outlet)
            write(staging, sub.common.path + "index.html", outlet_t.render(page=sub))
            sitemap.append(sub.common.path)
            count += 1
        rows.append(_row(view, page.common.path, page.place, site.as_of, len(page.exceedances)))
        events += _events(view, page.common.path, site.as_of, page.exceedances)
        count += 1
        if progress and (count % 500 == 0 or len(rows) == len(loaded.entries)):
            progress(len(rows), len(loaded.entries))
    lists = list(_list_pages(site, loaded.regions, rows))
    for path, page in lists:
        template = "list.html" if isinstance(page, ListPage) else "links.html"
        write(staging, path + "index.html", env.get_template(template).render(page=page))
        sitemap.append(path)
    contents = list(_content_pages(site))
    for path, page in contents:
        write(staging, path + "index.html", env.get_template("content.html").render(page=page))
        sitemap.append(path)
    home = _home(site, loaded.regions, rows, events, contents)
    write(staging, "index.html", env.get_template("home.html").render(page=home))
    sitemap.insert(0, "")
    base_path = urlsplit(site.base_url).path
    write(
        staging,
        "404.html",
        env.get_template("404.html").render(page=ContentPage(Common(site, base_path, "页面不存在", "404.html"), "")),
    )
    for name, text in sitemaps(site.base_url, sitemap).items():
        write(staging, name, text)
    write(staging, "robots.txt", f"User-agent: *\nAllow: /\nSitemap: {site.base_url}sitemap.xml\n")
    return Rendered(count + len(lists) + len(contents) + 2, rows)


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


def _events(view: facts.View, path: str, as_of: dt.date, exceedances: list[facts.Exceedance]) -> list[Event]:
    """What happened in the last RECENT_DAYS days, from the dates in the record."""
    since = (as_of - dt.timedelta(days=RECENT_DAYS)).isoformat()
    name = view["enterprise"]["name"]
    permit = view["permit"]
    found = []
    if permit["issued"] > since:
        found.append(
            Event(permit["issued"], "新核发排污许可" if permit["kind"] == "permit" else "新增排污登记", name, path)
        )
    if permit.get("status_date") and permit["status_date"] > since:
        found.append(Event(permit["status_date"], "排污许可" + facts.STATUS_LABELS[permit["status"]], name, path))
    found += [Event(p["date"], "行政处罚", name, path) for p in facts.items(view["penalties"]) if p["date"] > since]
    latest = next((e for e in exceedances if e.day.isoformat() > since), None)  # newest first
    if latest is not None:
        found.append(Event(latest.day.isoformat(), "在线监测超标", name, path))
    found += [
        Event(i["date"], "检查发现问题", name, path)
        for i in facts.items(view["inspections"])
        if i["date"] > since and i.get("result") == "problems_found"
    ]
    found += [
        Event(r["closed"], "问题整改销号", name, path)
        for r in facts.items(view["rectifications"])
        if (r.get("closed") or "") > since
    ]
    return found


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
    site: Site, regions: Regions, rows: list[Row], events: list[Event], contents: list[tuple[str, ContentPage]]
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
    recent = sorted(events, key=lambda e: (e.date, e.path), reverse=True)[:20]
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
