"""Search (yimatong/search.py, layouts/search.js): the index format in Python, then the built site
in headless Chromium at a phone's width, on the sample and on 20,000 generated enterprises.

Expected answers are computed here from the rows (what the lists show, from the public view), never
from the index: a name fragment must find every enterprise whose name holds it, a code every permit
it starts (8+ characters) or ends (6+) with. The 20,000-enterprise site is marked `scale`: it runs in
the normal run (about two minutes on 2 cores); `-m "not scale"` leaves it out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from yimatong import facts, pages, search, urls, verify
from yimatong import generate as gen
from yimatong.context import Place
from yimatong.load import Loaded, iter_views, record_checks
from yimatong.pipeline import BuildResult
from yimatong.public import public_view
from yimatong.schema import EnterpriseFile, Regions, Site

from .browser import axe, format_axe, new_context, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SCALE_N = 20_000
SCALE_SEED = 7


# --- rows: what the stage indexes --------------------------------------------------------------
# Until pages.Row carries the public credit level, it is added here from the public view.


def credit_level(view: dict[str, Any]) -> str | None:
    credit = view.get("credit")
    return None if credit is None or facts.withheld(credit) else credit["level"]


if "credit" in {f.name for f in dataclasses.fields(pages.Row)}:
    Row = pages.Row
else:

    @dataclass(frozen=True)
    class Row(pages.Row):  # type: ignore[no-redef]
        credit: str | None = None


def row_of(view: dict[str, Any], place: Place, as_of: dt.date) -> pages.Row:
    row = pages._row(view, urls.enterprise_path(view["permit_no"]), place, as_of, len(facts.exceedances(view, as_of)))
    if not hasattr(row, "credit"):
        row = Row(**{f.name: getattr(row, f.name) for f in dataclasses.fields(row)}, credit=credit_level(view))
    return row


def public_rows(loaded: Loaded) -> list[pages.Row]:
    place = pages.places(loaded.regions)
    return [row_of(view, place(entry.region), loaded.site.as_of) for entry, view in iter_views(loaded)]


# --- the index in Python ---------------------------------------------------------------------


def test_names_and_queries_are_normalised_alike() -> None:
    assert search.normalise_name("大海粮油工业（防城港） 有限公司") == "大海粮油工业(防城港)有限公司"
    assert search.normalise_name("ＡＢＣ　化工") == "abc化工"


def test_bigrams_overlap() -> None:
    assert search.bigrams("南宁化工") == ["南宁", "宁化", "化工"]
    assert search.bigrams("南") == []


def test_hash_is_fnv1a_as_the_client_computes_it() -> None:
    # FNV-1a's published 32-bit values (for code points under 256 they are the bytes).
    assert search.fnv1a("") == 0x811C9DC5
    assert search.fnv1a("a") == 0xE40C292C
    assert search.fnv1a("foobar") == 0xBF9CF968


def test_id_sets_round_trip_as_lists_or_bitmaps() -> None:
    sparse, dense = [3, 900, 4000], list(range(0, 5000, 2))
    assert search.encode_ids(sparse, 5000)[0] == 0
    assert search.encode_ids(dense, 5000)[0] == 1  # a bitmap is smaller
    for ids in (sparse, dense, []):
        data = search.encode_ids(ids, 5000)
        assert search.decode_ids(data) == (ids, len(data))


def test_position_masks() -> None:
    assert search.position_mask([0, 3]) == 0b1001
    assert search.position_mask([search.MAX_POSITION]) == 1 << search.MAX_POSITION
    assert search.position_mask([2, search.MAX_POSITION + 1]) == search.UNKNOWN_MASK


def test_place_names_with_and_without_suffix() -> None:
    assert search.place_aliases("防城港市") == ["防城港市", "防城港"]
    assert search.place_aliases("港口区") == ["港口区", "港口"]
    assert search.place_aliases("三江侗族自治县") == ["三江侗族自治县", "三江"]
    assert search.place_aliases("环江毛南族自治县") == ["环江毛南族自治县", "环江"]
    assert search.place_aliases("横州市") == ["横州市", "横州"]
    assert search.place_aliases("城区") == ["城区"]  # one character left: too short to stand alone


def index_file(folder: Path, meta: dict[str, Any], kind: str, n: int, ext: str) -> bytes:
    """A numbered index file, found as the client finds it: by the name its directory gives."""
    g = n // meta["dir"]
    names = json.loads((folder / f"d/{kind}-{g}.{meta['dirs'][kind][g]}.json").read_bytes())
    return (folder / f"{kind}/{n}.{names[n % meta['dir']]}.{ext}").read_bytes()


def test_every_bigram_of_every_name_is_indexed_at_its_positions(search_sample: SearchSite) -> None:
    """Reads the written files back: each name's bigrams are in their shard with the right position
    bits, or in a heavy bigram's file; every record is where its id says."""
    folder = search_sample.public / "search" / "i"
    meta = search_sample.meta
    ids = search.assign_ids(r.permit_no for r in search_sample.rows)
    shards = {n: search.decode_shard(index_file(folder, meta, "s", n, "bin")) for n in range(meta["shards"])}
    for row in search_sample.rows:
        i = ids[row.permit_no]
        record = json.loads(index_file(folder, meta, "r", i // meta["span"], "json"))
        assert [r[1] for r in record if r[0] == i % meta["span"]] == [row.permit_no]
        key = search.normalise_name(row.name)
        for pos, bg in enumerate(search.bigrams(key)):
            if bg in meta["heavy"]:
                having, _ = search.decode_ids((folder / f"h/{meta['heavy'][bg]}.bin").read_bytes())
                assert i in having
            else:
                mask = shards[search.shard_of(bg, meta["shards"])][bg][i]
                assert mask == search.UNKNOWN_MASK or mask >> pos & 1, (row.name, bg, pos)


def test_heavy_bigrams_keep_their_sets_and_starts(tmp_path: Path, search_sample: SearchSite) -> None:
    """With a low threshold the common bigrams (有限, 公司…) go to their own files: every name with the
    bigram is in the set, and exactly those starting with it are in the start set."""
    rows = search_sample.rows
    old = search.HEAVY_MIN, search.HEAVY_SHARE
    try:
        search.HEAVY_MIN, search.HEAVY_SHARE = 5, 0.0
        stats = search.build_search(search_sample.loaded, rows, tmp_path)
    finally:
        search.HEAVY_MIN, search.HEAVY_SHARE = old
    assert stats.heavy > 0
    folder = tmp_path / "search" / "i"
    ids = search.assign_ids(r.permit_no for r in rows)
    keys = {ids[r.permit_no]: search.normalise_name(r.name) for r in rows}
    for path in (folder / "h").iterdir():
        bigram = "".join(chr(int(h, 16)) for h in path.name.split(".")[0].split("-"))
        data = path.read_bytes()
        having, at = search.decode_ids(data)
        starts, _ = search.decode_ids(data, at)
        assert having == sorted(i for i, k in keys.items() if bigram in k)
        assert starts == sorted(i for i, k in keys.items() if k.startswith(bigram))


def test_the_page_names_every_index_file_and_verify_misses_none(search_sample: SearchSite, tmp_path: Path) -> None:
    """The files the search page names (directly or through directories) are exactly those written;
    the verifier reports one that has gone missing, by name."""
    public = search_sample.public
    html = (public / search.PAGE).read_text(encoding="utf-8")
    written = {p.relative_to(public).as_posix() for p in (public / "search/i").rglob("*") if p.is_file()}
    named = list(search.index_files(html, lambda p: (public / p).read_bytes() if (public / p).is_file() else None))
    assert len(named) == len(set(named)) and set(named) == written
    copy = tmp_path / "site"
    shutil.copytree(public / "search", copy / "search")
    assert verify.check_search_index(copy, verify.tree(copy)) == []
    victim = sorted(p for p in written if "/s/" in p)[-1]
    (copy / victim).unlink()
    problems = verify.check_search_index(copy, verify.tree(copy))
    assert [(p.file, p.message, p.severity) for p in problems] == [
        ("search/index.html", f"搜索索引文件 {victim} 不存在", "error")
    ]


def test_ids_are_a_function_of_the_permit_numbers_alone() -> None:
    """Unique, in a space at least twice the number of permits; a permit added moves no other id
    but the few after it in its run (linear probing), and the same set gives the same ids."""
    numbers = [f"9145{n:014d}001P" for n in range(0, 3000, 3)]
    ids = search.assign_ids(numbers)
    space = search.id_space(len(numbers))
    assert len(set(ids.values())) == len(numbers) and space >= 2 * len(numbers)
    assert max(ids.values()) < space + 10
    assert search.assign_ids(reversed(numbers)) == ids
    moved = []
    for extra in (f"9145{n:014d}001P" for n in range(1, 60, 3)):
        grown = search.assign_ids([*numbers, extra])
        moved.append(sum(grown[n] != i for n, i in ids.items()))
        assert all(grown[n] > grown[extra] for n, i in ids.items() if grown[n] != i)  # only ids after it
    assert sum(moved) / len(moved) < 1.5 and max(moved) <= 8, moved  # of 1,000


# --- the built site ----------------------------------------------------------------------------


@dataclass
class SearchSite:
    loaded: Loaded
    rows: list[pages.Row]
    public: Path
    url: str
    meta: dict[str, Any]

    def containing(self, text: str) -> set[str]:
        t = search.normalise_name(text)
        return {r.permit_no for r in self.rows if t in search.normalise_name(r.name)}

    def in_city(self, code: str) -> set[str]:
        return {r.permit_no for r in self.rows if r.city_code == code}


def page_meta(public: Path) -> dict[str, Any]:
    html = (public / "search" / "index.html").read_text(encoding="utf-8")
    raw = re.search(r'<script type="application/json" id="search-meta">(.*?)</script>', html, re.S)
    assert raw, "the search page carries the index's description"
    return json.loads(raw.group(1))


def _serve(loaded: Loaded, rows: list[pages.Row], public: Path) -> Iterator[SearchSite]:
    search.build_search(loaded, rows, public)
    meta = page_meta(public)
    with serve(public) as url:
        yield SearchSite(loaded, rows, public, url, meta)


@pytest.fixture(scope="session")
def search_sample(
    sample_build: tuple[BuildResult, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchSite]:
    """The built sample (a copy) with the search stage run on it, served on localhost."""
    result, built = sample_build
    public = tmp_path_factory.mktemp("search-sample") / "public"
    shutil.copytree(built, public)
    yield from _serve(result.loaded, public_rows(result.loaded), public)


def _generated_rows(task: tuple[int, int, int]) -> list[pages.Row]:
    """Rows of generated enterprises start…stop: the generator's documents validated by the model
    and checked as the loader checks them (no YAML round trip: ten times faster, same records)."""
    seed, start, stop = task
    site, regions = Site.model_validate(gen.site_doc()), Regions.model_validate(gen.regions_doc())
    place = pages.places(regions)
    rows = []
    for i in range(start, stop):
        record = EnterpriseFile.model_validate(gen.enterprise_doc(seed, i))
        if any(check[-1] == "error" for check in record_checks(record)):
            continue  # the loader would reject it
        rows.append(row_of(public_view(record), place(record.enterprise.region), site.as_of))
    return rows


@pytest.fixture(scope="session")
def search_scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchSite]:
    """20,000 generated enterprises (seed 7) and their search, served on localhost. The enterprise
    pages are not rendered (about 0.1 s each: half an hour here), so result links are checked by
    address, not followed."""
    site, regions = Site.model_validate(gen.site_doc()), Regions.model_validate(gen.regions_doc())
    tasks = [(SCALE_SEED, a, min(a + 1000, SCALE_N)) for a in range(0, SCALE_N, 1000)]
    with ProcessPoolExecutor(2) as pool:
        rows = [row for chunk in pool.map(_generated_rows, tasks) for row in chunk]
    loaded = Loaded(site, regions, [], [], 0, None)  # type: ignore[arg-type]  # the stage reads site and regions
    yield from _serve(loaded, rows, tmp_path_factory.mktemp("search-scale") / "public")


@dataclass(frozen=True)
class Answer:
    status: str
    names: list[str]
    permits: list[str]  # from the result links, in order
    total: int | None  # the count the page states
    approx: bool


def ask(page: Page, site: SearchSite, everything: bool = False, **params: str) -> Answer:
    """Open the search page with these parameters (as a shared link would) and read the results;
    `everything` pages through all of them."""
    page.goto(site.url + "search/?" + urlencode(params), wait_until="load")
    page.wait_for_selector("form[data-state=done]", timeout=60_000)
    while everything and page.is_visible("#more"):
        page.click("#more")  # the form is 'busy' until the next page is shown
        page.wait_for_selector("form[data-state=done]")
    status = page.inner_text("#search-status")
    links = page.eval_on_selector_all("#results li > a", "els => els.map(e => [e.textContent, e.getAttribute('href')])")
    for _, href in links:
        assert re.fullmatch(r"\.\./P/[0-9A-Z]{22}/", href), href
    m = re.search(r"找到 ?(约 )?(\d+) 家", status)
    return Answer(
        status,
        [n for n, _ in links],
        [h.split("/")[-2] for _, h in links],
        int(m.group(2)) if m else None,
        bool(m and m.group(1)),
    )


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    context = new_context(chromium, 360)
    try:
        yield context.new_page()
    finally:
        context.close()


def _fragment_of(name: str) -> str:
    """Four characters from inside a name, across the words (南宁化工 in 广西南宁化工…)."""
    return name[2:6] if len(name) >= 7 else name[1:3]


@pytest.fixture(params=["sample", pytest.param("scale", marks=pytest.mark.scale)])
def site(request: pytest.FixtureRequest) -> SearchSite:
    return request.getfixturevalue("search_" + request.param)


def test_a_whole_name_finds_that_enterprise_first(site: SearchSite, phone: Page) -> None:
    names = sorted({r.name for r in site.rows}, key=len)
    for name in (names[-1], names[len(names) // 2]):  # the longest, and a usual one
        a = ask(phone, site, q=name)
        assert a.names[0] == name, a
        assert set(a.permits) <= site.containing(name)


def test_a_fragment_finds_every_enterprise_whose_name_holds_it(site: SearchSite, phone: Page) -> None:
    rows = sorted(site.rows, key=lambda r: r.permit_no)
    fragments = [_fragment_of(rows[len(rows) // 3].name), rows[len(rows) // 2].name[-5:-2], "粮油"]
    for fragment in fragments:
        expected = site.containing(fragment)
        a = ask(phone, site, everything=len(expected) <= 60, q=fragment)
        # "about N" only where common bigrams' places were not checked: never fewer than found.
        assert a.total == len(expected) or (a.approx and a.total and a.total >= len(expected)), (fragment, a.status)
        assert set(a.permits) <= expected
        if len(expected) <= 60:
            assert set(a.permits) == expected
        # Names starting with the fragment come first.
        starts = [search.normalise_name(n).startswith(search.normalise_name(fragment)) for n in a.names]
        assert starts == sorted(starts, reverse=True), (fragment, a.names)


def test_common_bigrams_are_counted_exactly(site: SearchSite, phone: Page) -> None:
    for fragment in ("有限", "公司"):
        a = ask(phone, site, q=fragment)
        assert (a.total, a.approx) == (len(site.containing(fragment)), False), a.status


def test_codes_whole_in_part_lower_case_or_spaced(site: SearchSite, phone: Page) -> None:
    row = sorted(site.rows, key=lambda r: r.permit_no)[len(site.rows) // 2]
    permit, uscc = row.permit_no, row.permit_no[:18]
    same_company = {r.permit_no for r in site.rows if r.permit_no.startswith(uscc)}
    spaced = " ".join(permit[i : i + 4] for i in range(0, len(permit), 4)).lower()
    for query, expected in ((permit, {permit}), (spaced, {permit}), (uscc, same_company), (uscc.lower(), same_company)):
        a = ask(phone, site, q=query)
        assert a.permits[0] == permit if expected == {permit} else set(a.permits) == expected, (query, a)
        assert a.total == len(expected), (query, a.status)
    prefix = permit[:8]
    starting = {r.permit_no for r in site.rows if r.permit_no.startswith(prefix)}
    ending = {r.permit_no for r in site.rows if r.permit_no.endswith(prefix)}
    a = ask(phone, site, q=prefix)
    assert a.total == len(starting | ending), a.status
    assert set(a.permits) <= starting | ending
    for suffix in (permit[-6:], permit[-8:].lower()):
        expected = {r.permit_no for r in site.rows if r.permit_no.lower().endswith(suffix.lower())}
        if len(suffix) >= 8:
            expected |= {r.permit_no for r in site.rows if r.permit_no.lower().startswith(suffix.lower())}
        a = ask(phone, site, everything=True, q=suffix)
        assert set(a.permits) == expected, suffix


def test_city_and_county_names_with_or_without_suffix(site: SearchSite, phone: Page) -> None:
    city = max(site.loaded.regions.cities, key=lambda c: len(site.in_city(c.code)))
    for query in search.place_aliases(city.name):
        expected = site.in_city(city.code) | site.containing(query)
        a = ask(phone, site, q=query)
        assert a.total == len(expected), (query, a.status)
        assert set(a.permits) <= expected
        hint = phone.locator("#browse-hint a")
        assert hint.get_attribute("href") == f"../city/{city.code}/"  # browsing a city: the static list
    counties = {r.county for r in site.rows if r.city_code == city.code and r.county}
    county = sorted(counties)[0]
    in_county = {r.permit_no for r in site.rows if r.city_code == city.code and r.county == county}
    for query in search.place_aliases(county):
        a = ask(phone, site, q=query)
        assert in_county <= set(a.permits) or a.total >= len(in_county | site.containing(query)), (query, a.status)


def test_filters_narrow_the_results(site: SearchSite, phone: Page) -> None:
    query = "有限"
    everything = ask(phone, site, q=query)
    by_city: dict[str, int] = {}
    for r in site.rows:
        if search.normalise_name(query) in search.normalise_name(r.name):
            by_city[r.city_code] = by_city.get(r.city_code, 0) + 1
    city = max(by_city, key=lambda c: by_city[c])
    narrowed = ask(phone, site, q=query, city=city)
    assert narrowed.total == by_city[city] < everything.total
    places = phone.eval_on_selector_all("#results li .place", "els => els.map(e => e.textContent)")
    city_name = next(c.name for c in site.loaded.regions.cities if c.code == city)
    assert places and all(p.startswith(city_name) for p in places)
    # Every filter at once, against the rows.
    credits = [c.level for c in site.loaded.site.credit_scale]
    r0 = next(r for r in site.rows if r.credit and query in r.name)
    wanted = dict(
        city=r0.city_code,
        category=pages.CATEGORIES[r0.category],
        status=r0.status,
        credit=str(credits.index(r0.credit)),
        industry=r0.industry,
    )
    expected = {
        r.permit_no
        for r in site.rows
        if query in r.name
        and (r.city_code, r.category, r.status, r.credit, r.industry)
        == (r0.city_code, r0.category, r0.status, r0.credit, r0.industry)
    }
    a = ask(phone, site, everything=True, q=query, **wanted)
    assert set(a.permits) == expected and r0.permit_no in expected
    # Filters alone: the permits of one status, from its set.
    revoked = {r.permit_no for r in site.rows if r.status == "revoked"}
    a = ask(phone, site, status="revoked")
    assert a.total == len(revoked) and set(a.permits) <= revoked
    badges = phone.eval_on_selector_all("#results li .badge", "els => els.map(e => e.textContent)")
    assert set(badges) == {"已撤销"}


@pytest.mark.scale
def test_a_small_night_moves_a_small_part_of_the_index(search_scale: SearchSite, tmp_path: Path) -> None:
    """The night's changes (an enterprise renamed, one revoked, one new) change the files that name
    them, not the index: every other file keeps its name (its content hash), so neither the upload
    nor a phone's cache starts over. The page is found again by its new name."""
    rows = sorted(search_scale.rows, key=lambda r: r.permit_no)
    renamed = dataclasses.replace(rows[100], name=rows[100].name.replace("有限", "有限责任", 1) + "分厂")
    revoked = dataclasses.replace(rows[200], status="revoked")
    new = dataclasses.replace(rows[300], permit_no=rows[300].permit_no[:-4] + "999P", name="夜间新增测试有限公司")
    tonight = [renamed if r is rows[100] else revoked if r is rows[200] else r for r in rows] + [new]
    search.build_search(search_scale.loaded, tonight, tmp_path)
    before = {p.relative_to(search_scale.public).as_posix() for p in (search_scale.public / "search/i").rglob("*.*")}
    after = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "search/i").rglob("*.*")}
    moved = after - before
    kinds = Counter(p.split("/")[2] for p in moved)
    assert len(after) > 1000 and len(moved) < 0.05 * len(after), (len(moved), len(after), kinds)
    assert kinds["r"] <= 4 and kinds["c"] <= 2 and kinds["x"] <= 2, kinds  # records and code lists: theirs only
    # the renamed name's bigrams: in tonight's shards, at the renamed enterprise's id
    meta = page_meta(tmp_path)
    i = search.assign_ids(r.permit_no for r in tonight)[renamed.permit_no]
    key = search.normalise_name(renamed.name)
    for bg in search.bigrams(key):
        if bg not in meta["heavy"]:
            shard = search.decode_shard(
                index_file(tmp_path / "search/i", meta, "s", search.shard_of(bg, meta["shards"]), "bin")
            )
            assert i in shard[bg], bg


# --- a night's changes patched into the live index -----------------------------------------------

_TABLES = search.Tables(
    cities=[("450100", "南宁市"), ("450200", "柳州市")],
    counties=[("450102", "兴宁区", "450100"), ("450202", "城中区", "450200")],
    industries=[("C2614", "有机化学原料制造"), ("D4411", "火力发电")],
    categories=list(pages.CATEGORIES),
    statuses=list(facts.STATUS_LABELS),
    credits=["A", "B", "C"],
)
_COUNTIES = {("450100", "兴宁区"): "450102", ("450200", "城中区"): "450202"}


def synthetic_rows(n: int, seed: int) -> list[pages.Row]:
    """Rows enough like the province's for the index's shape: heavy bigrams (有限, 公司), long names."""
    import random

    rnd = random.Random(seed)
    words = "南宁柳州华润明阳鑫源恒通金桂北部湾海港化工能源纸业糖业建材环保科技水泥"
    rows = []
    for k in range(n):
        city, county = rnd.choice([("450100", "兴宁区"), ("450200", "城中区")])
        name = "".join(rnd.choice(words) for _ in range(rnd.randint(2, 9))) + rnd.choice(
            ["有限公司", "厂", "股份有限公司"]
        )
        rows.append(
            pages.Row(
                permit_no=f"91450{k:07d}MA5K{k % 97:02d}X001P",
                name=name,
                path=f"P/{k}/",
                city_code=city,
                county=rnd.choice([county, None]),
                industry=rnd.choice(["C2614", "D4411"]),
                industry_name="",
                category=rnd.choice(list(pages.CATEGORIES)),
                status=rnd.choice(["valid", "valid", "expiring", "revoked"]),
                status_label="",
                status_tone="",
                exceedances=rnd.randint(0, 3),
                penalties=0,
                open_rectifications=0,
                credit=rnd.choice(["A", "B", None]),
            )
        )
    return rows


def index_of(rows: list[pages.Row]) -> tuple[search.Index, Counter[tuple[str, str]], int, list[search.Doc]]:
    ids = search.assign_ids(r.permit_no for r in rows)
    docs = sorted((search._doc(ids[r.permit_no], r, _COUNTIES) for r in rows), key=lambda d: d.id)
    space = max(search.id_space(len(docs)), docs[-1].id + 1)
    index, counts = search._index(docs, space, _TABLES)
    return index, counts, space, docs


def patched(
    last: list[pages.Row], rows: list[pages.Row]
) -> tuple[tuple[search.Index, Counter[tuple[str, str]]] | None, tuple[search.Index, Counter[tuple[str, str]]]]:
    """Tonight's index patched into last night's (as the stage reads it: the search page's meta,
    then the directories and files it names), and the same built whole."""
    live, _, last_space, _ = index_of(last)
    index, counts, space, docs = index_of(rows)
    meta = {
        "space": last_space,
        "shards": live.shards,
        "n": live.enterprises,
        "sb": live.shard_bytes,
        "frame": "",
        "dir": search.DIR_SIZE,
        "dirs": live.dirs,
        "keys": live.keys,
        "heavy": live.heavy,
    }
    page = f'<script type="application/json" id="search-meta">{json.dumps(meta)}</script>'
    files = {f"search/i/{name}": data for name, data in live.files.items()}
    state = {r.permit_no: {"row": dataclasses.asdict(r), "entry": {}} for r in last}
    from yimatong.manifest import Records

    changes = search._changes(Records.of(state), docs, _COUNTIES)
    assert changes is not None
    found = search.LiveIndex.read(page, files.get)
    assert found is not None
    return search._update(found, files.get, *changes, docs, space, _TABLES), (index, counts)


def test_a_nights_changes_patched_into_the_index_equal_the_index_built_whole() -> None:
    """The search stage re-encodes only the files a night's changes are in (the shards of the
    renamed names' bigrams, their records files, their filter sets): the result must be the index
    a whole build makes, file for file, and its description in the page the same."""
    last = synthetic_rows(3000, seed=1)
    tonight = list(last)
    for k in range(0, 60, 3):  # renamed: new bigrams, lost bigrams, one a name no one had
        tonight[k] = dataclasses.replace(tonight[k], name=tonight[k].name[::-1] + ("夜班" if k == 0 else ""))
    tonight[3] = dataclasses.replace(tonight[3], name="有限公司南宁分厂")  # starts with a heavy bigram
    for k in range(100, 130):  # a new status, a new credit level, another county, more exceedances
        r = tonight[k]
        tonight[k] = dataclasses.replace(
            r, status="revoked" if r.status != "revoked" else "valid", credit="C", county=None, exceedances=9
        )
    nights = {
        "renames and statuses": (last, tonight),
        "and back": (tonight, last),
        "new and gone permits (ids move)": (last, tonight[5:] + synthetic_rows(3010, seed=2)[3000:]),
        "only what the index does not hold": (
            last,
            [dataclasses.replace(r, exceedances=r.exceedances + 1) for r in last],
        ),
    }
    for night, (before, rows) in nights.items():
        made, (whole, counts) = patched(before, rows)
        assert made is not None, night
        index, patched_counts = made
        assert index.names() == whole.names(), night
        assert all(index.files[name] == whole.files[name] for name in index.files), night
        assert (index.dirs, index.keys, index.heavy, index.shards, index.shard_bytes) == (
            whole.dirs,
            whole.keys,
            whole.heavy,
            whole.shards,
            whole.shard_bytes,
        ), night
        assert patched_counts == counts, night
        assert len(whole.heavy) >= 2, "有限, 公司: the heavy bigrams are patched too"
        if night == "only what the index does not hold":
            remade = {name for name in index.files if not name.startswith("d/")}  # directories: a few bytes
            assert remade == set(), "nothing indexed changed: every file is kept"
        else:
            assert 0 < len(index.files) < 0.5 * len(whole.names()), (night, len(index.files), len(whole.names()))


def test_the_stage_is_keyed_by_what_it_shows(search_sample: SearchSite) -> None:
    """A night whose rows change only in what search does not show (counts of exceedances,
    penalties) keeps the live index as it is; a new status does not."""
    rows = sorted(search_sample.rows, key=lambda r: r.permit_no)
    key = search.search_key(search_sample.loaded, rows)
    counted = [dataclasses.replace(r, exceedances=r.exceedances + 1, penalties=r.penalties + 2) for r in rows]
    assert search.search_key(search_sample.loaded, counted) == key
    revoked = [dataclasses.replace(rows[0], status="revoked" if rows[0].status != "revoked" else "valid"), *rows[1:]]
    assert search.search_key(search_sample.loaded, revoked) != key


def test_a_change_of_the_index_shape_builds_it_whole() -> None:
    """A bigram turning heavy (here: put into 400 of 3,000 names) changes which files hold it:
    no patch is made, the stage builds the index whole."""
    last = synthetic_rows(3000, seed=1)
    tonight = [dataclasses.replace(r, name="夜班" + r.name) if k < 400 else r for k, r in enumerate(last)]
    made, _ = patched(last, tonight)
    assert made is None


def test_a_whole_city_is_browsed_on_its_list_page(site: SearchSite, phone: Page) -> None:
    fetched: list[str] = []
    phone.on("request", lambda r: fetched.append(r.url))
    city = site.loaded.regions.cities[0]
    a = ask(phone, site, city=city.code)
    assert a.total is None and not a.names
    assert phone.locator("#browse-hint a").get_attribute("href") == f"../city/{city.code}/"
    assert not [u for u in fetched if "/search/i/" in u], "no index file for a whole city"


def test_no_match_says_so(site: SearchSite, phone: Page) -> None:
    for query in ("不存在的单位名称", "91450100ZZZZZZZZZZ999P"):
        a = ask(phone, site, q=query)
        assert not a.names and "没有找到" in a.status, a.status
    a = ask(phone, site, q="化")
    assert "至少输入两个字" in a.status


# --- the page ----------------------------------------------------------------------------------


def test_search_page_is_accessible_and_fits_a_phone(search_sample: SearchSite, phone: Page) -> None:
    ask(phone, search_sample, q="有限")
    violations = axe(phone)
    assert not violations, format_axe({"/search/?q=有限": violations})
    overflow = phone.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_without_javascript_the_browsing_lists_remain(search_sample: SearchSite, chromium: Browser) -> None:
    context = new_context(chromium, 360, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(search_sample.url + "search/", wait_until="load")
        hrefs = page.eval_on_selector_all("main a", "els => els.map(e => e.getAttribute('href'))")
        assert {"../city/", "../industry/", "../category/"} <= set(hrefs)
        assert page.locator("noscript").count() == 1
    finally:
        context.close()


def test_only_the_search_page_has_javascript(search_sample: SearchSite) -> None:
    with_script = sorted(
        p.relative_to(search_sample.public).as_posix()
        for p in search_sample.public.rglob("*.html")
        if re.search(r"<script(?![^>]*application/json)", p.read_text(encoding="utf-8"))
    )
    assert with_script == ["search/index.html"]


def test_the_query_is_kept_in_the_address(search_sample: SearchSite, phone: Page) -> None:
    phone.goto(search_sample.url + "search/", wait_until="load")
    phone.fill("#q", "粮油")
    phone.press("#q", "Enter")
    phone.wait_for_function("() => location.search.includes('q=')")
    phone.wait_for_selector("form[data-state=done]")
    first = phone.inner_text("#results")
    phone.reload(wait_until="load")
    phone.wait_for_selector("form[data-state=done]")
    assert phone.input_value("#q") == "粮油" and phone.inner_text("#results") == first


def test_every_page_links_to_the_search(search_sample: SearchSite) -> None:
    base = (pages.LAYOUTS / "base.html").read_text(encoding="utf-8")
    if "search/" not in base:
        pytest.xfail("layouts/base.html has no link to search/ yet (the nav link is proposed with the stage)")
    for path in (
        "index.html",
        "city/index.html",
        "search/index.html",
        next(search_sample.public.glob("P/*/index.html")),
    ):
        html = (search_sample.public / path).read_text(encoding="utf-8")
        assert re.search(r'<nav[^>]*>.*?href="(\.\./)*search/".*?</nav>', html, re.S), path
