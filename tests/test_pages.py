"""The public pages of the sample site, read the way a person would read them."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import shutil
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from yimatong import generate as gen
from yimatong import pages, urls
from yimatong.pipeline import BuildResult, build
from yimatong.schema import Site

from .conftest import SAMPLE

AS_OF = dt.date(2026, 11, 20)
BASE = yaml.safe_load((SAMPLE / "site.yaml").read_text(encoding="utf-8"))["base_url"]


def raw(permit_no: str) -> dict:
    return yaml.load(
        (SAMPLE / "enterprises" / f"{permit_no}.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader
    )


def records() -> list[dict]:
    return [
        yaml.load(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        for p in sorted((SAMPLE / "enterprises").glob("*.yaml"))
    ]


def soup(public: Path, path: str) -> BeautifulSoup:
    return BeautifulSoup((public / path / "index.html").read_text(encoding="utf-8"), "html.parser")


def fact(page: BeautifulSoup, label: str) -> str:
    for li in page.select("ul.facts li"):
        if li.select_one(".label").get_text() == label:
            return li.select_one(".value").get_text()
    raise AssertionError(f"no first-screen line {label!r}")


def section(page: BeautifulSoup, block: str) -> str:
    return page.select_one(f'section[aria-labelledby="{block}"]').get_text(" ", strip=True)


@pytest.fixture(scope="module")
def public(sample_build: tuple[BuildResult, Path]) -> Path:
    return sample_build[1]


def find(pred) -> dict:
    return next(r for r in records() if pred(r))


def test_every_permit_and_outlet_has_a_page_at_its_permanent_address(public: Path) -> None:
    for r in records():
        page = soup(public, urls.enterprise_path(r["permit_no"]))
        assert page.h1.get_text() == r["enterprise"]["name"]
        assert page.find("link", rel="canonical")["href"] == BASE + urls.enterprise_path(r["permit_no"])
        for o in r["permit"]["outlets"]:
            sub = soup(public, urls.outlet_path(r["permit_no"], o["code"]))
            assert f"（{o['code']}）" in sub.h1.get_text()
            assert sub.select_one(".meta a").get_text() == r["enterprise"]["name"]


def test_first_screen_answers_is_it_in_order(public: Path) -> None:
    expired = find(
        lambda r: (
            r["permit"]["status"] == "valid"
            and r["enterprise"]["status"] == "operating"
            and dt.date.fromisoformat(str(r["permit"]["valid_until"])) < AS_OF
        )
    )
    page = soup(public, urls.enterprise_path(expired["permit_no"]))
    assert fact(page, "排污许可证" if expired["permit"]["kind"] == "permit" else "排污登记").startswith("已过期")

    expiring = find(
        lambda r: (
            r["permit"]["status"] == "valid"
            and 0 <= (dt.date.fromisoformat(str(r["permit"]["valid_until"])) - AS_OF).days <= 90
        )
    )
    days = (dt.date.fromisoformat(str(expiring["permit"]["valid_until"])) - AS_OF).days
    text = fact(soup(public, urls.enterprise_path(expiring["permit_no"])), "排污许可证")
    assert text.startswith("即将到期") and f"还有 {days} 天" in text

    revoked = find(lambda r: r["permit"]["status"] == "revoked")
    assert fact(soup(public, urls.enterprise_path(revoked["permit_no"])), "排污许可证").startswith("已撤销")

    gone = find(lambda r: r["enterprise"]["status"] == "deregistered")
    page = soup(public, urls.enterprise_path(gone["permit_no"]))
    assert page.select_one("ul.facts li .value").get_text().startswith("企业已注销")
    assert "已注销" in page.select_one(".meta").get_text()


def _exceedances_by_hand(r: dict) -> int:
    limits = {
        (o["code"], p["code"]): (p.get("limit"), p.get("limit_min"))
        for o in r["permit"]["outlets"]
        for p in o.get("pollutants", [])
    }
    n = 0
    for s in r["online_monitoring"].get("series", []):
        high, low = limits.get((s["outlet"], s["pollutant"]), (None, None))
        high = s.get("limit", high)
        for i, (v, f) in enumerate(zip(s["values"], s["flags"], strict=True)):
            day = s["start"] + dt.timedelta(days=i)
            if f == "N" and v is not None and AS_OF - dt.timedelta(days=30) < day <= AS_OF:
                n += (high is not None and v > high) or (low is not None and v < low)
    return n


def test_exceedances_match_the_raw_data_and_only_valid_values_count(public: Path) -> None:
    with_exceedances = [r for r in records() if r["online_monitoring"].get("series") and _exceedances_by_hand(r)]
    assert with_exceedances, "the sample has enterprises with exceedances in the last 30 days"
    for r in with_exceedances:
        page = soup(public, urls.enterprise_path(r["permit_no"]))
        assert fact(page, "近30天在线监测超标") == f"{_exceedances_by_hand(r)} 次（日均值）"
        strip_cells = page.select("table.strip td.exceed")
        assert strip_cells, "the 12-month strip marks the month"
    quiet = find(lambda r: r["online_monitoring"].get("series") and not _exceedances_by_hand(r))
    assert fact(soup(public, urls.enterprise_path(quiet["permit_no"])), "近30天在线监测超标") == "无"
    unmonitored = find(lambda r: r["permit"]["category"] == "重点管理" and not r["online_monitoring"]["installed"])
    assert fact(soup(public, urls.enterprise_path(unmonitored["permit_no"])), "近30天在线监测超标") == "未安装在线监测"


def test_charts_are_inline_svg_with_limit_line_and_a_table(public: Path) -> None:
    r = find(lambda r: r["online_monitoring"].get("series") and _exceedances_by_hand(r))
    page = soup(public, urls.enterprise_path(r["permit_no"]))
    figures = page.select("section[aria-labelledby=online_monitoring] figure")
    assert len(figures) == len(r["online_monitoring"]["series"])
    for fig in figures:
        svg = fig.find("svg")
        assert svg["role"] == "img" and svg["aria-label"]
        assert svg.select("path.v")
        assert bool(svg.select("path.lim")) == ("限值" in fig.figcaption.get_text())
        assert len(fig.select("details table tr")) == 13  # header + 12 months
    assert any(fig.select("path.x") for fig in figures)
    outlet = r["online_monitoring"]["series"][0]["outlet"]
    sub = soup(public, urls.outlet_path(r["permit_no"], outlet))
    days = len(r["online_monitoring"]["series"][0]["values"])
    assert f"逐日数据（{days} 天）" in sub.get_text()


def test_every_block_names_its_source_or_says_it_is_empty(public: Path) -> None:
    for r in records()[:30]:
        page = soup(public, urls.enterprise_path(r["permit_no"]))
        for block, _ in [
            ("permit", 0),
            ("online_monitoring", 0),
            ("self_monitoring", 0),
            ("inspections", 0),
            ("penalties", 0),
            ("rectifications", 0),
            ("credit", 0),
            ("eia", 0),
            ("licenses", 0),
            ("total_emissions", 0),
            ("hazardous_waste", 0),
        ]:
            text = section(page, block)
            data = r.get(block)
            if data is None:
                assert "暂未评价" in text or "不适用" in text
            else:
                assert f"来源：{data['source']['system']}" in text
                if data.get("items") == [] and block not in ("inspections", "hazardous_waste"):
                    assert "暂无记录" in text, (r["permit_no"], block, text)


def test_penalties_inspections_and_rectifications_are_shown(public: Path) -> None:
    r = find(lambda r: len(r["penalties"]["items"]) >= 1 and not r["penalties"].get("confidential"))
    text = section(soup(public, urls.enterprise_path(r["permit_no"])), "penalties")
    for p in r["penalties"]["items"]:
        assert p["decision_no"] in text
    failed = find(lambda r: any(i["result"] == "problems_found" for i in r["inspections"]["items"]))
    assert "发现问题" in section(soup(public, urls.enterprise_path(failed["permit_no"])), "inspections")
    for status, label in (("open", "整改中"), ("closed", "已整改销号")):
        r = find(lambda r, s=status: any(x["status"] == s for x in r["rectifications"]["items"]))
        assert label in section(soup(public, urls.enterprise_path(r["permit_no"])), "rectifications")


def test_inspection_count_against_the_caps(public: Path) -> None:
    r = find(lambda r: r["inspections"]["items"])
    this_year = [i for i in r["inspections"]["items"] if i["date"].year == AS_OF.year]
    text = section(soup(public, urls.enterprise_path(r["permit_no"])), "inspections")
    assert f"{AS_OF.year} 年已检查 {len(this_year)} 次（上限 6 次）" in text


def _all_output(public: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in public.rglob("*")
        if p.is_file() and p.suffix in (".html", ".xml", ".txt", ".json")
    )


def test_nothing_confidential_or_personal_reaches_any_page(public: Path) -> None:
    text = _all_output(public)
    assert gen.SECRET_MARK not in text
    assert gen.PLANTED_MOBILE not in text and gen.PLANTED_ID not in text
    assert "386400" not in text and "386,400" not in text
    withheld = find(lambda r: r["hazardous_waste"].get("confidential"))
    page = soup(public, urls.enterprise_path(withheld["permit_no"]))
    assert "依法不予公开" in section(page, "hazardous_waste")
    fined = find(lambda r: any("fine_yuan" in p.get("confidential_fields", []) for p in r["penalties"]["items"]))
    assert "部分内容依法不予公开" in section(soup(public, urls.enterprise_path(fined["permit_no"])), "penalties")


def test_planted_script_id_and_phone_are_escaped_or_masked(tmp_path: Path) -> None:
    data = Path(shutil.copytree(SAMPLE, tmp_path / "data"))
    target = sorted((data / "enterprises").glob("*.yaml"))[0]
    text = target.read_text(encoding="utf-8")
    text = re.sub(r"(\n  name: )(.+)", r"\1\2<script>alert(1)</script>", text, count=1)
    text = re.sub(r"(\n  address: )(.+)", r"\1\2 联系人手机 13912345678 身份证 450103199001011234", text, count=1)
    target.write_text(text, encoding="utf-8")
    build(data, tmp_path / "public", tmp_path / "cache")
    public = tmp_path / "public"
    html = "\n".join(p.read_text(encoding="utf-8") for p in public.rglob("*.html"))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # JSON (search index, downloads) carries the name as data; the search client sets textContent.
    assert "textContent = rec[1]" in next(public.glob("search/search.*.js")).read_text(encoding="utf-8")
    out = _all_output(public)
    assert "13912345678" not in out and "450103199001011234" not in out


def test_pages_are_light_and_need_no_javascript(public: Path) -> None:
    heaviest = 0
    for page in public.glob("P/**/index.html"):
        body = page.read_bytes()
        heaviest = max(heaviest, len(gzip.compress(body, 9)))
        assert b"<script" not in body
        assert not re.search(rb'src="https?://|rel="stylesheet"', body), page  # nothing loaded from elsewhere
    assert heaviest <= 30 * 1024, f"heaviest page {heaviest} bytes compressed"


def test_internal_links_resolve(public: Path) -> None:
    broken = []
    for page in public.rglob("*.html"):
        if page.name == "404.html":
            continue
        for a in BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").find_all("a", href=True):
            href = a["href"].split("#")[0]
            if not href or href.startswith(("tel:", "mailto:", "http")):
                continue
            target = (page.parent / href).resolve()
            if not (target / "index.html").exists() and not target.is_file():
                broken.append(f"{page.relative_to(public)} → {a['href']}")
    assert not broken, broken[:10]


def test_browsing_lists_cover_every_enterprise_once(public: Path) -> None:
    listed = []
    for city in public.glob("city/45*/"):
        for page in [city, *city.glob("[0-9]*/")]:
            listed += [a["href"] for a in soup(public, page.relative_to(public).as_posix()).select("ol.rows li > a")]
    assert sorted(re.search(r"P/([0-9A-Z]{22})/$", h).group(1) for h in listed) == sorted(
        r["permit_no"] for r in records()
    )
    home = soup(public, "")
    assert len(home.select("#cities ~ ul a")) == 14


def test_lists_are_paged() -> None:
    site = Site.model_validate(yaml.safe_load((SAMPLE / "site.yaml").read_text(encoding="utf-8")))
    row = pages.Row(
        "91450600MA5K3XY21D001P",
        "甲",
        "P/91450600MA5K3XY21D001P/",
        "450600",
        None,
        "C1331",
        "x",
        "重点管理",
        "valid",
        "有效",
        "good",
        0,
        0,
        0,
        None,
    )
    listed = list(pages._paged("city/450600/", site, "防城港市", "", [row] * (pages.PAGE_SIZE * 2 + 1)))
    assert [p for p, _ in listed] == ["city/450600/", "city/450600/2/", "city/450600/3/"]
    last = listed[2][1]
    assert len(last.rows) == 1 and last.first == 2 * pages.PAGE_SIZE + 1
    assert [link.href for link in last.pages] == ["../../../city/450600/", "../../../city/450600/2/", ""]


def test_sitemap_robots_404_and_content_pages(public: Path) -> None:
    sitemap = (public / "sitemap.xml").read_text(encoding="utf-8")
    locs = re.findall(r"<loc>(.+?)</loc>", sitemap)
    assert locs and all(loc.startswith(BASE) for loc in locs)
    for loc in locs:
        path = loc.split("/", 3)[3]
        assert (public / path / "index.html").exists() or (public / path).is_file(), loc
    assert len([loc for loc in locs if "/P/" in loc]) == sum(1 + len(r["permit"]["outlets"]) for r in records())
    assert "Sitemap:" in (public / "robots.txt").read_text()
    assert "页面不存在" in (public / "404.html").read_text(encoding="utf-8")
    for name in ("about", "how-to-read", "complain", "rules", "export-format"):
        assert soup(public, f"{name}/").h1


def test_sitemaps_split_past_fifty_thousand() -> None:
    files = pages.sitemaps("https://x.example/", [f"P/{i}/" for i in range(50_001)])
    assert set(files) == {"sitemap.xml", "sitemaps/1.xml", "sitemaps/2.xml"}
    assert "<sitemapindex" in files["sitemap.xml"] and files["sitemaps/2.xml"].count("<url>") == 1


def test_two_builds_are_byte_identical(tmp_path: Path, sample_build: tuple[BuildResult, Path]) -> None:
    build(SAMPLE, tmp_path / "public", tmp_path / "cache")
    first, second = sample_build[1], tmp_path / "public"
    # every published file (the state folder records the inode numbers of its own tree)
    a = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file() and ".yimatong" not in p.parts}
    b = {p.relative_to(second): p.read_bytes() for p in second.rglob("*") if p.is_file() and ".yimatong" not in p.parts}
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_every_html_page_says_when_it_last_changed(public: Path) -> None:
    """The footer's "本页更新于" is on every page a reader lands on, the data and search pages too."""
    as_of = "2026年11月20日"  # the sample export's date, and its first night
    missing = []
    for page in sorted(public.rglob("*.html")):
        footer = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").select_one("footer")
        if footer is None or f"本页更新于 {as_of}" not in footer.get_text(" "):
            missing.append(page.relative_to(public).as_posix())
    assert missing == []


def test_an_enterprise_pages_sign_link_lands_on_its_own_signs(public: Path) -> None:
    for page in sorted(public.glob("P/*/index.html")):
        link = soup(public, page.parent.relative_to(public).as_posix()).find("a", string="门牌与排放口标识牌（PDF）")
        assert link is not None, page
        href, _, anchor = link["href"].partition("#")
        target = (page.parent / href / "index.html").resolve()
        assert anchor == page.parent.name and target.is_file(), (page, link["href"])
        assert f'<section id="{anchor}">' in target.read_text(encoding="utf-8")
