"""What changed overnight, and the Atom feed that publishes it.

Views come from the committed sample, loaded once; each test copies one and changes what an
exporter would change overnight, then checks the events a reader would expect, in their words.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from yimatong import changes, feed, opendata, pages, urls
from yimatong.changes import Change, events
from yimatong.load import iter_views, load, read_model
from yimatong.public import public_view
from yimatong.schema import EnterpriseFile, Site

from .conftest import SAMPLE

View = dict[str, Any]
AS_OF = dt.date(2026, 11, 20)  # the sample's export date
YESTERDAY = AS_OF - dt.timedelta(days=1)
A = "{http://www.w3.org/2005/Atom}"

MONITORED = "91450881066081464N001P"  # online monitoring; DA003 颗粒物 limit 30; one open rectification
PENALISED = "91450621MA5LDGE43A001P"  # two penalties; one submitted and one open rectification
FINE_WITHHELD = "91450900684115457Y001P"  # a penalty whose fine is withheld (confidential_fields)
CLOSED = "91450621MA5LDGE43A002P"  # three closed rectifications
REGISTRATION = "12450800169407076P001W"  # 排污登记, not a permit


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, dict[str, View]]:
    loaded = load(SAMPLE, tmp_path_factory.mktemp("changes") / "cache", workers=1)
    assert loaded.site.as_of == AS_OF
    return loaded.site, {e.permit_no: v for e, v in iter_views(loaded)}


@pytest.fixture
def site(sample: tuple[Site, dict[str, View]]) -> Site:
    return sample[0]


@pytest.fixture
def views(sample: tuple[Site, dict[str, View]]) -> dict[str, View]:
    return copy.deepcopy(sample[1])  # tests change them freely


def night(before: View | None, after: View | None) -> list[Change]:
    """Events of one night: yesterday's export against today's."""
    permit = (after or before or {})["permit_no"]
    return events(permit, before, after, YESTERDAY, AS_OF)


def titles(found: list[Change]) -> list[str]:
    return [c.title for c in found]


def series(view: View, outlet: str, pollutant: str) -> View:
    return next(s for s in view["online_monitoring"]["series"] if (s["outlet"], s["pollutant"]) == (outlet, pollutant))


def last_day(s: View) -> dt.date:
    return dt.date.fromisoformat(s["start"]) + dt.timedelta(days=len(s["values"]) - 1)


def set_day(s: View, day: dt.date, value: float, flag: str = "N") -> None:
    i = (day - dt.date.fromisoformat(s["start"])).days
    s["values"][i] = value
    s["flags"] = s["flags"][:i] + flag + s["flags"][i + 1 :]


def withheld_view(permit: str, **blocks: bool) -> View:
    """The public view of a sample record with whole blocks marked confidential, made by public.py
    exactly as the build makes it."""
    record, problems = read_model((SAMPLE / "enterprises" / f"{permit}.yaml").read_bytes(), EnterpriseFile)
    assert record is not None, problems
    update = {name: getattr(record, name).model_copy(update={"confidential": True}) for name in blocks}
    return public_view(record.model_copy(update=update))


# --- events ----------------------------------------------------------------------------------


def test_an_unchanged_record_has_no_events(views: dict[str, View]) -> None:
    for permit, view in views.items():
        assert events(permit, copy.deepcopy(view), view, AS_OF, AS_OF) == [], permit


def test_last_nights_view_reads_back_from_the_published_data_json(views: dict[str, View], site: Site) -> None:
    """The live site's P/<permit>/data.json is where the build can find yesterday's view."""
    view = views[MONITORED]
    document = json.loads(json.dumps(opendata.document(view, site.base_url, YESTERDAY), ensure_ascii=False))
    before, before_as_of = changes.from_document(document)
    assert before == view and before_as_of == YESTERDAY
    assert night(before, view) == []


def test_new_and_removed_holders(views: dict[str, View]) -> None:
    [new] = night(None, views[MONITORED])
    assert (new.kind, new.title, new.name) == ("new", "新增排污许可证持证单位", "恒达·贵港新材料有限公司")
    assert new.path == urls.enterprise_path(MONITORED) and new.date == "2026-11-20"
    [registered] = night(None, views[REGISTRATION])
    assert registered.title == "新增排污登记单位"
    [gone] = night(views[PENALISED], None)
    assert (gone.kind, gone.title, gone.name) == (
        "removed",
        "持证单位不再出现在本次导出数据中",
        "广西泓源粮油工业有限公司",
    )
    assert gone.path == "P/91450621MA5LDGE43A001P/"
    assert events(MONITORED, None, None, YESTERDAY, AS_OF) == []


def test_permit_becoming_due_to_expire(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    after["permit"]["valid_until"] = (AS_OF + dt.timedelta(days=30)).isoformat()
    [change] = night(before, after)
    assert (change.kind, change.title) == ("status", "许可证状态：有效 → 即将到期")


def test_status_moves_with_the_calendar_alone(views: dict[str, View]) -> None:
    """Same data on both nights: 91 days left yesterday, 90 today, so the page turns to 即将到期."""
    view = views[MONITORED]
    view["permit"]["valid_until"] = (AS_OF + dt.timedelta(days=90)).isoformat()
    assert titles(night(copy.deepcopy(view), view)) == ["许可证状态：有效 → 即将到期"]
    assert events(MONITORED, copy.deepcopy(view), view, AS_OF, AS_OF) == []


def test_revocation_and_registration_wording(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    after["permit"] |= {"status": "revoked", "status_date": "2026-11-19"}
    assert titles(night(before, after)) == ["许可证状态：有效 → 已撤销"]
    before = views[REGISTRATION]
    after = copy.deepcopy(before)
    after["permit"]["valid_until"] = "2026-11-01"
    assert titles(night(before, after)) == ["排污登记状态：有效 → 已过期"]


def _penalty(number: str, fine: float | None = 50000.0) -> View:
    return {
        "authority": "防城港市生态环境局",
        "basis": None,
        "date": "2026-11-18",
        "decision_no": number,
        "fine_yuan": fine,
        "penalty": "罚款",
        "status": "executing",
        "violation": "超过大气污染物排放标准排放大气污染物",
        "withheld": False,
        "withheld_fields": [],
    }


def test_new_penalty_by_decision_number_not_position(views: dict[str, View]) -> None:
    before = views[PENALISED]
    after = copy.deepcopy(before)
    after["penalties"]["items"].insert(0, _penalty("防环罚〔2026〕101号"))
    [change] = night(before, after)
    assert (change.kind, change.title) == ("penalty", "新增行政处罚：防环罚〔2026〕101号（罚款 50,000 元）")
    assert change.path == urls.enterprise_path(PENALISED)
    # Reordered, or an existing decision updated (now paid): nothing new.
    shuffled = copy.deepcopy(before)
    shuffled["penalties"]["items"].reverse()
    shuffled["penalties"]["items"][0]["status"] = "completed"
    assert night(before, shuffled) == []


def test_a_withheld_fine_stays_out_of_the_event(views: dict[str, View]) -> None:
    after = views[FINE_WITHHELD]
    [item] = [p for p in after["penalties"]["items"] if p["withheld_fields"]]
    assert item["fine_yuan"] is None and item["decision_no"] == "玉环罚〔2026〕124号"
    before = copy.deepcopy(after)
    before["penalties"]["items"] = [p for p in before["penalties"]["items"] if not p["withheld_fields"]]
    assert titles(night(before, after)) == ["新增行政处罚：玉环罚〔2026〕124号"]
    assert "386" not in json.dumps(titles(night(before, after)))


def test_a_withheld_new_penalty_item_says_nothing(views: dict[str, View]) -> None:
    before = views[PENALISED]
    after = copy.deepcopy(before)
    after["penalties"]["items"].append({"withheld": True, "decision_no": "防环罚〔2026〕102号", "date": "2026-11-18"})
    assert night(before, after) == []


def test_new_exceedance_day(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    s = series(after, "DA003", "a34013")
    day = last_day(s)
    assert day == dt.date(2026, 11, 19)
    set_day(s, day, 45.0)
    [change] = night(before, after)
    assert change.kind == "exceedance"
    assert change.title == "新增超标记录：DA003 颗粒物 2026年11月19日（日均值 45 mg/m³，限值 30 mg/m³）"


def test_a_new_night_of_data_is_compared_day_by_day(views: dict[str, View]) -> None:
    """Tonight's export has one more day than yesterday's: only that day can be new."""
    after = views[MONITORED]
    set_day(series(after, "DA003", "a34013"), dt.date(2026, 11, 19), 45.0)
    before = copy.deepcopy(after)
    for s in before["online_monitoring"]["series"]:
        s["values"], s["flags"] = s["values"][:-1], s["flags"][:-1]
    assert [c.key for c in night(before, after)] == ["DA003~a34013~2026-11-19"]


def test_only_valid_values_in_the_window_count(views: dict[str, View]) -> None:
    before = views[MONITORED]
    calibrating = copy.deepcopy(before)
    set_day(series(calibrating, "DA003", "a34013"), dt.date(2026, 11, 19), 45.0, flag="C")
    assert night(before, calibrating) == []  # HJ 212: only N values count
    old = copy.deepcopy(before)
    set_day(series(old, "DA003", "a34013"), dt.date(2026, 9, 1), 45.0)
    assert night(before, old) == []  # outside the 30 days the page shows
    already = copy.deepcopy(before)
    set_day(series(already, "DA003", "a34013"), dt.date(2026, 11, 19), 45.0)
    assert night(already, copy.deepcopy(already)) == []
    # Yesterday the value was flagged as calibration; tonight the platform confirms it as normal.
    assert [c.key for c in night(calibrating, already)] == ["DA003~a34013~2026-11-19"]


def test_many_new_exceedances_make_one_summary(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    s = series(after, "DA003", "a34013")
    for n in range(10):
        set_day(s, dt.date(2026, 11, 10) + dt.timedelta(days=n), 40.0 + n)
    [change] = night(before, after)
    assert change.title == "新增 10 条超标记录：DA003 颗粒物，2026年11月10日至2026年11月19日"


def test_rectification_closed_opened_and_reopened(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    after["rectifications"]["items"][0] |= {"status": "closed", "closed": "2026-11-19"}
    [closed] = night(before, after)
    assert (closed.kind, closed.title) == (
        "rectification_closed",
        "整改事项已关闭：DA003排放口颗粒物日均值超标（49.5，限值30.0）",
    )
    assert closed.key == "ZG-2026-8842"
    assert titles(night(after, before)) == ["整改事项重新打开：DA003排放口颗粒物日均值超标（49.5，限值30.0）"]
    grown = copy.deepcopy(before)
    grown["rectifications"]["items"].append(
        before["rectifications"]["items"][0] | {"id": "ZG-2026-9000", "problem": "废水" * 40}
    )
    [opened] = night(before, grown)
    assert opened.kind == "rectification_opened"
    assert opened.title == "新增整改事项：" + ("废水" * 40)[:59] + "…"
    grown["rectifications"]["items"][-1]["problem"] = "雨水排放口\r\n未设置标志牌"
    assert titles(night(before, grown)) == ["新增整改事项：雨水排放口 未设置标志牌"]


@pytest.mark.parametrize(
    ("permit", "block", "emptied"),
    [
        (PENALISED, "penalties", lambda v: v["penalties"].update(items=[])),
        (PENALISED, "rectifications", lambda v: v["rectifications"].update(items=[])),
        (MONITORED, "online_monitoring", lambda v: v["online_monitoring"].update(series=[])),
    ],
)
def test_withheld_blocks_produce_no_events(permit: str, block: str, emptied: Any) -> None:
    public = withheld_view(permit)
    hidden = withheld_view(permit, **{block: True})
    assert hidden[block]["withheld"] is True
    empty = copy.deepcopy(public)
    emptied(empty)
    assert len(night(empty, public)) >= 2  # what the block holds would be news if it were public
    assert night(hidden, public) == []  # withheld yesterday: nothing to tell what is new
    assert night(public, hidden) == []  # withheld tonight
    assert night(empty, hidden) == []


def test_a_withheld_rectification_item_says_nothing(views: dict[str, View]) -> None:
    before = views[MONITORED]
    after = copy.deepcopy(before)
    after["rectifications"]["items"].append(
        {"withheld": True, "id": "ZG-2026-9001", "found": "2026-11-18", "status": "open"}
    )
    assert night(before, after) == []


def test_events_of_a_night_are_sorted_by_consequence(views: dict[str, View]) -> None:
    before = views[PENALISED]
    after = copy.deepcopy(before)
    after["rectifications"]["items"] = []  # vanished items are not news; a closing would be
    after["penalties"]["items"] += [_penalty("防环罚〔2026〕2号", None), _penalty("防环罚〔2026〕1号", None)]
    after["permit"]["valid_until"] = "2026-11-01"
    after["rectifications"]["items"].append(
        before["rectifications"]["items"][0] | {"id": "ZG-1", "status": "open", "closed": None}
    )
    found = night(before, after)
    assert [c.kind for c in found] == ["status", "penalty", "penalty", "rectification_opened"]
    assert [c.key for c in found][1:3] == ["防环罚〔2026〕1号", "防环罚〔2026〕2号"]
    assert found == night(before, after)


def test_last_changed() -> None:
    assert changes.last_changed(None, False, AS_OF) == "2026-11-20"
    assert changes.last_changed("2026-10-01", False, AS_OF) == "2026-10-01"
    assert changes.last_changed("2026-10-01", True, AS_OF) == "2026-11-20"


# --- the feed --------------------------------------------------------------------------------


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)


def check_atom(root: ET.Element, site: Site) -> list[ET.Element]:
    """RFC 4287's required structure; returns the entries."""
    assert root.tag == f"{A}feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{name}")) == 1 and root.findtext(f"{A}{name}"), name
    assert root.findtext(f"{A}author/{A}name") == site.authority  # so entries need no author
    [self_link] = [link for link in root.findall(f"{A}link") if link.get("rel") == "self"]
    assert self_link.get("href") == site.base_url + "feed.xml"
    assert dt.datetime.fromisoformat(root.findtext(f"{A}updated") or "").date() == site.as_of
    entries = root.findall(f"{A}entry")
    ids = [e.findtext(f"{A}id") for e in entries]
    assert len(set(ids)) == len(ids)
    for e in entries:
        for name in ("id", "title", "updated"):
            assert len(e.findall(f"{A}{name}")) == 1 and e.findtext(f"{A}{name}"), name
        assert re.fullmatch(r"tag:ymt\.example\.gov\.cn,\d{4}-\d{2}-\d{2}:[\x21-\x7e]+", e.findtext(f"{A}id") or "")
        dt.datetime.fromisoformat(e.findtext(f"{A}updated") or "")
        [alternate] = e.findall(f"{A}link")
        assert alternate.get("rel") == "alternate"
    return entries


def link_of(entry: ET.Element) -> str:
    return entry.find(f"{A}link").get("href")  # type: ignore[union-attr]


def on(site: Site, day: dt.date) -> Site:
    return site.model_copy(update={"as_of": day})


def test_feed_entries_link_to_the_pages(views: dict[str, View], site: Site) -> None:
    after = copy.deepcopy(views[PENALISED])
    after["penalties"]["items"].append(_penalty("防环罚〔2026〕101号"))
    tonight = night(views[PENALISED], after) + night(None, views[MONITORED])
    entries = check_atom(parse(feed.atom(tonight, None, site)), site)
    assert [e.findtext(f"{A}title") for e in entries] == [
        "恒达·贵港新材料有限公司：新增排污许可证持证单位",
        "广西泓源粮油工业有限公司：新增行政处罚：防环罚〔2026〕101号（罚款 50,000 元）",
    ]
    assert [link_of(e) for e in entries] == [
        urls.absolute(site.base_url, urls.enterprise_path(MONITORED)),
        urls.absolute(site.base_url, urls.enterprise_path(PENALISED)),
    ]
    assert entries[1].findtext(f"{A}id", "").startswith(f"tag:ymt.example.gov.cn,2026-11-20:{PENALISED}/penalty/%E9")
    assert entries[1].find(f"{A}category").get("term") == "penalty"  # type: ignore[union-attr]


def test_feed_escapes_names(views: dict[str, View], site: Site) -> None:
    after = views[MONITORED]
    after["enterprise"]["name"] = '<script>alert(1)</script>&"公司'
    xml = feed.atom(night(None, after), None, site)
    assert b"<script>" not in xml
    [entry] = check_atom(parse(xml), site)
    assert entry.findtext(f"{A}title") == '<script>alert(1)</script>&"公司：新增排污许可证持证单位'
    assert feed.read(xml)[0].change.name == after["enterprise"]["name"]


def test_feed_is_byte_identical_for_the_same_input(views: dict[str, View], site: Site) -> None:
    tonight = [c for p, v in views.items() for c in night(None, v)]
    xml = feed.atom(tonight, None, site)
    shuffled = tonight[:]
    random.Random(7).shuffle(shuffled)
    assert feed.atom(shuffled, None, site) == xml
    assert feed.atom(tonight, xml, site) == xml  # the same night built twice: no duplicates
    assert feed.atom([], xml, site) == xml  # nothing new, same date: same bytes
    assert len(check_atom(parse(xml), site)) == len(views)


def test_an_empty_feed_is_valid_and_stable(site: Site) -> None:
    xml = feed.atom([], None, site)
    assert check_atom(parse(xml), site) == []
    assert feed.atom([], xml, site) == xml
    assert feed.recent(xml, 20) == []


def test_previous_entries_are_carried_over(views: dict[str, View], site: Site) -> None:
    monday = feed.atom(night(None, views[MONITORED]), None, site)
    tuesday_site = on(site, AS_OF + dt.timedelta(days=1))
    gone = events(PENALISED, views[PENALISED], None, AS_OF, tuesday_site.as_of)
    tuesday = feed.atom(gone, monday, tuesday_site)
    entries = check_atom(parse(tuesday), tuesday_site)
    assert [e.findtext(f"{A}title") for e in entries] == [
        "广西泓源粮油工业有限公司：持证单位不再出现在本次导出数据中",
        "恒达·贵港新材料有限公司：新增排污许可证持证单位",
    ]
    assert [e.findtext(f"{A}updated") for e in entries] == ["2026-11-21T00:00:00+08:00", "2026-11-20T00:00:00+08:00"]
    assert entries[1].findtext(f"{A}id") == parse(monday).find(f"{A}entry/{A}id").text  # type: ignore[union-attr]
    assert feed.recent(tuesday, 5) == [
        ("2026-11-21", "持证单位不再出现在本次导出数据中", "广西泓源粮油工业有限公司", "P/91450621MA5LDGE43A001P/"),
        ("2026-11-20", "新增排污许可证持证单位", "恒达·贵港新材料有限公司", "P/91450881066081464N001P/"),
    ]


def test_carried_entries_expire_after_the_window(views: dict[str, View], site: Site) -> None:
    monday = feed.atom(night(None, views[MONITORED]), None, site)
    kept = feed.atom([], monday, on(site, AS_OF + dt.timedelta(days=89)))
    dropped = feed.atom([], monday, on(site, AS_OF + dt.timedelta(days=90)))
    assert len(parse(kept).findall(f"{A}entry")) == 1
    assert parse(dropped).findall(f"{A}entry") == []
    assert parse(feed.atom([], monday, on(site, AS_OF + dt.timedelta(days=20)), days=10)).findall(f"{A}entry") == []


def test_feed_keeps_at_most_limit_entries_newest_first(views: dict[str, View], site: Site) -> None:
    permits = sorted(views)
    monday = feed.atom([c for p in permits[:5] for c in night(None, views[p])], None, site)
    tuesday_site = on(site, AS_OF + dt.timedelta(days=1))
    tonight = [c for p in permits[5:7] for c in events(p, views[p], None, AS_OF, tuesday_site.as_of)]
    entries = check_atom(parse(feed.atom(tonight, monday, tuesday_site, limit=4)), tuesday_site)
    assert [link_of(e)[len(site.base_url) :] for e in entries] == [
        urls.enterprise_path(p) for p in permits[5:7] + permits[:2]
    ]


def test_recent_reads_changes_or_a_feed(views: dict[str, View], site: Site) -> None:
    tonight = night(None, views[MONITORED]) + night(None, views[REGISTRATION])
    xml = feed.atom(tonight, None, site)
    from_feed = feed.recent(xml, 10)
    assert sorted(from_feed) == sorted(feed.recent(tonight, 10))
    assert [r.name for r in feed.recent(xml, 1)] == ["平南县中医医院"]  # feed order: by permit number


def test_an_unreadable_previous_feed_is_an_error(site: Site) -> None:
    with pytest.raises(feed.FeedUnreadable, match=r"feed\.xml"):
        feed.atom([], b"<feed><entry>", site)


def test_the_home_page_list_renders_recent_changes(views: dict[str, View], site: Site) -> None:
    from bs4 import BeautifulSoup

    after = views[MONITORED]
    after["enterprise"]["name"] = '<script>alert(1)</script>&"公司'
    xml = feed.atom(night(None, after) + night(None, views[REGISTRATION]), None, site)
    macro = pages.environment().get_template("_changes.html").module.recent_changes  # type: ignore[attr-defined]
    html = str(macro(feed.recent(xml, 20)))
    assert "<script>" not in html
    soup = BeautifulSoup(html, "html.parser")
    assert [li.get_text() for li in soup.select("li")] == [
        "2026年11月20日 · 平南县中医医院：新增排污登记单位",
        '2026年11月20日 · <script>alert(1)</script>&"公司：新增排污许可证持证单位',
    ]
    hrefs = [a["href"] for a in soup.select("a")]
    assert hrefs == [urls.enterprise_path(REGISTRATION), urls.enterprise_path(MONITORED), "feed.xml"]
    assert "暂无变更" in str(macro([]))


def test_entries_of_a_holder_whose_page_is_gone_link_home(views: dict[str, View], site: Site) -> None:
    """The verifier fails a build with a link to a missing page; a removed holder's page may be gone."""
    tonight = events(PENALISED, views[PENALISED], None, YESTERDAY, AS_OF) + night(None, views[MONITORED])
    present = {urls.enterprise_path(p) for p in views if p != PENALISED}
    entries = check_atom(parse(feed.atom(tonight, None, site, present=present)), site)
    assert [link_of(e) for e in entries] == [site.base_url, site.base_url + urls.enterprise_path(MONITORED)]
    assert [r.path for r in feed.recent(tonight, 5, present)] == ["", urls.enterprise_path(MONITORED)]
    assert [r.path for r in feed.recent(tonight, 5)] == [
        urls.enterprise_path(PENALISED),
        urls.enterprise_path(MONITORED),
    ]
