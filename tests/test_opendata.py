"""Open data on the sample site: the downloads say what the pages say, and nothing they withhold."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import urllib.request
import zipfile
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jsonschema
import pytest
from bs4 import BeautifulSoup

from yimatong import facts, opendata, urls
from yimatong import generate as gen
from yimatong.docs import PUBLIC_SCHEMA
from yimatong.load import Entry, Loaded, iter_views
from yimatong.manifest import Manifest, Output, Reuse
from yimatong.opendata import FLAG_COLUMNS, TABLES, _crc_combine_py, crc_combine, csv_cell, write_open_data
from yimatong.pipeline import BuildResult
from yimatong.schema import HJ212_FLAGS

from .browser import serve

AS_OF = "2026-11-20"
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@pytest.fixture(scope="module")
def site(sample_build: tuple[BuildResult, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Loaded, Path]:
    """The built sample with its open data: the session build once pipeline.build() runs the stage,
    until then a copy of it with the stage run on top (the session build is shared: never written)."""
    result, public = sample_build
    if not (public / "data" / "index.json").exists():
        public = Path(shutil.copytree(public, tmp_path_factory.mktemp("opendata") / "public"))
        write_open_data(result.loaded, public, None)
    return result.loaded, public


@pytest.fixture(scope="module")
def public(site: tuple[Loaded, Path]) -> Path:
    return site[1]


@pytest.fixture(scope="module")
def manifest(public: Path) -> dict:
    return json.loads((public / "data" / "index.json").read_text(encoding="utf-8"))


def unzip(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        (name,) = zf.namelist()
        return zf.read(name)


def table_rows(public: Path, manifest: dict, table: str) -> list[dict[str, str]]:
    """A table's CSV read as Excel's users' tools read it: BOM first, then the csv module."""
    (name,) = [f["name"] for f in manifest["files"] if f["table"] == table and f["format"] == "csv"]
    raw = unzip(public / "data" / name)
    assert raw.startswith(b"\xef\xbb\xbf"), f"{name}: no UTF-8 BOM"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def enterprise_pages(public: Path) -> dict[str, BeautifulSoup]:
    return {
        p.parent.name: BeautifulSoup(p.read_text(encoding="utf-8"), "html.parser")
        for p in sorted((public / "P").glob("*/index.html"))
    }


@pytest.fixture(scope="module")
def pages(public: Path) -> dict[str, BeautifulSoup]:
    return enterprise_pages(public)


def fact(page: BeautifulSoup, label: str) -> str:
    for li in page.select("ul.facts li"):
        if li.select_one(".label").get_text() == label:
            return li.select_one(".value").get_text()
    raise AssertionError(f"no first-screen line {label!r}")


def cn(iso: str) -> str:
    day = dt.date.fromisoformat(iso)
    return f"{day.year}年{day.month}月{day.day}日"


# --- per-enterprise JSON ----------------------------------------------------------------------


def test_every_enterprise_json_validates_against_the_published_schema(public: Path, pages: dict) -> None:
    schema = json.loads((public / "schema" / PUBLIC_SCHEMA).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for permit_no, page in pages.items():
        doc = json.loads((public / urls.enterprise_path(permit_no) / "data.json").read_text(encoding="utf-8"))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{permit_no}: {errors[:3]}"
        assert doc["url"] == page.find("link", rel="canonical")["href"]
        # The record's own data date (its latest block extract), not the export date: an unchanged
        # record is an unchanged file.
        extracted = [b["source"]["extracted"] for b in doc.values() if isinstance(b, dict) and "source" in b]
        assert doc["as_of"] == max(extracted) <= AS_OF and doc["schema_version"] == 1
        assert doc["enterprise"]["name"] == page.h1.get_text()
        for key in ("enterprise", "permit", "penalties", "online_monitoring", "hazardous_waste"):
            assert set(doc[key]["source"]) == {"system", "extracted"}


def test_the_public_schema_refuses_what_must_not_be_published(public: Path, manifest: dict) -> None:
    schema = json.loads((public / "schema" / PUBLIC_SCHEMA).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    withheld = next(r for r in table_rows(public, manifest, "enterprises") if r["withheld_blocks"])
    doc = json.loads((public / urls.enterprise_path(withheld["permit_no"]) / "data.json").read_text(encoding="utf-8"))
    block = withheld["withheld_blocks"].split(";")[0]
    assert validator.is_valid(doc)
    assert not validator.is_valid({**doc, block: {**doc[block], "items": []}}), "a withheld block carries content"
    assert not validator.is_valid({**doc, "confidential": False}), "an export-only key"
    assert not validator.is_valid({**doc, "url": None})


def test_records_download_holds_every_enterprise_json(public: Path, manifest: dict) -> None:
    (name,) = [f["name"] for f in manifest["files"] if f["table"] == "records"]
    lines = unzip(public / "data" / name).decode("utf-8").splitlines(keepends=True)
    assert len(lines) == len(list((public / "P").glob("*/data.json")))
    for line in lines:
        permit_no = json.loads(line)["permit_no"]
        assert line == (public / urls.enterprise_path(permit_no) / "data.json").read_text(encoding="utf-8")


# --- bulk downloads ---------------------------------------------------------------------------


def test_each_table_parses_with_the_csv_module_and_matches_the_dictionary(public: Path, manifest: dict) -> None:
    assert [t["name"] for t in manifest["tables"]] == [t.name for t in TABLES]
    for table in TABLES:
        header = [c.name for c in table.columns]
        rows = table_rows(public, manifest, table.name)
        files = {f["format"]: f for f in manifest["files"] if f["table"] == table.name}
        assert rows and list(rows[0]) == header, table.name  # the dictionary is the header, in order
        assert all(None not in r and len(r) == len(header) for r in rows), f"{table.name}: ragged rows"
        assert files["csv"]["rows"] == files["jsonl"]["rows"] == len(rows)
        assert [r["permit_no"] for r in rows] == sorted(r["permit_no"] for r in rows), f"{table.name}: order"
        lines = unzip(public / "data" / files["jsonl"]["name"]).decode("utf-8").splitlines()
        assert len(lines) == len(rows)
        for line, row in zip(lines, rows, strict=True):
            obj = json.loads(line)
            assert list(obj) == header
            for c in table.columns:
                value, text = obj[c.name], row[c.name]
                if value is None:
                    assert text == "", (table.name, c.name)
                elif c.type == "date":
                    assert ISO_DATE.match(value) and text == value, (table.name, c.name, value)
                elif c.type in ("integer", "number"):
                    assert float(text) == value, (table.name, c.name, text, value)
                elif c.type == "boolean":
                    assert text == str(value).lower()
                elif c.type == "list":
                    assert text == csv_cell(value)
                else:
                    assert text == csv_cell(value) and text.removeprefix("'") == value
                if c.values and value is not None:
                    assert value in c.values, (table.name, c.name, value)


def test_csv_cells_are_plain_for_people_and_inert_for_excel() -> None:
    assert [csv_cell(v) for v in (None, True, 35.0, 0.00005, 1234567.5, 12, "2026-11-20")] == [
        "",
        "true",
        "35",
        "0.00005",
        "1234567.5",
        "12",
        "2026-11-20",
    ]
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("-1+1") == "'-1+1"
    assert csv_cell(["fine_yuan", "basis"]) == "fine_yuan;basis"
    assert csv_cell(-3.5) == "-3.5"  # numbers are numbers


def test_row_counts_and_values_match_the_pages(public: Path, manifest: dict, pages: dict) -> None:
    rows = {t.name: table_rows(public, manifest, t.name) for t in TABLES}
    assert len(rows["enterprises"]) == len(pages) == len(rows["permits"])
    outlet_pages = list((public / "P").glob("*/*/index.html"))
    assert len([r for r in rows["outlets"] if r["url"]]) == len(outlet_pages)

    def per_page(table: str) -> Counter[str]:
        return Counter(r["permit_no"] for r in rows[table] if r["withheld"] != "block")

    def section(page: BeautifulSoup, block: str) -> BeautifulSoup:
        return page.select_one(f'section[aria-labelledby="{block}"]')

    for permit_no, page in pages.items():
        for table in ("inspections", "penalties", "rectifications"):
            assert len(section(page, table).select("ul.rows li")) == per_page(table)[permit_no], (permit_no, table)
        waste = section(page, "hazardous_waste").select("table tr")
        assert max(len(waste) - 1, 0) == per_page("hazardous_waste")[permit_no], permit_no
        for block in ("online_monitoring", "penalties", "hazardous_waste", "inspections", "rectifications"):
            shown = section(page, block).select_one("p.withheld") is not None
            marked = any(r["permit_no"] == permit_no and r["withheld"] == "block" for r in rows[_table_of(block)])
            assert shown == marked, (permit_no, block)

    # The monthly table under each chart, cell for cell.
    monthly = {(r["permit_no"], r["outlet"], r["pollutant"], r["month"]): r for r in rows["monitoring_monthly"]}
    seen = 0
    for permit_no, page in pages.items():
        for fig in section(page, "online_monitoring").select("figure"):
            outlet, pollutant = fig["id"].removeprefix("chart-").split("-")
            for tr in fig.select("details table tr")[1:]:
                month = tr.th.get_text()
                valid, low, mean, high, exceed, other = (td.get_text() for td in tr.select("td"))
                r = monthly[(permit_no, outlet, pollutant, month)]
                assert (valid, exceed) == (r["valid_days"], r["exceedance_days"])
                for shown, key in ((low, "min"), (mean, "mean"), (high, "max")):
                    assert shown == ("—" if r[key] == "" else f"{float(r[key]):g}"), (permit_no, month, key)
                assert other == _other(r), (permit_no, outlet, month)
                seen += 1
    assert seen == sum(1 for r in rows["monitoring_monthly"] if r["withheld"] != "block") > 0


def _table_of(block: str) -> str:
    return {"online_monitoring": "monitoring_monthly"}.get(block, block)


def _other(row: dict[str, str]) -> str:
    """The page's "无效数据" cell (charts.month_rows), rebuilt from the CSV's per-flag columns."""
    counts = {HJ212_FLAGS[flag]: row[name] for flag, name in FLAG_COLUMNS.items()} | {"无数据": row["no_value_days"]}
    return "，".join(f"{k} {n}" for k, n in sorted(counts.items()) if n not in ("", "0")) or "—"


def test_enterprise_figures_are_the_first_screen_of_each_page(public: Path, manifest: dict, pages: dict) -> None:
    for r in table_rows(public, manifest, "enterprises"):
        page = pages[r["permit_no"]]
        assert page.h1.get_text() == r["name"]
        permit = fact(page, "排污许可证" if r["permit_kind"] == "permit" else "排污登记")
        assert permit.startswith(r["permit_status_label"]), (permit, r["permit_status_label"])
        penalties = fact(page, "近3年行政处罚")
        assert penalties == ("依法不予公开" if r["penalties_3y"] == "" else f"{r['penalties_3y']} 起").replace(
            "0 起", "无"
        )
        exceed = fact(page, "近30天在线监测超标")
        if r["exceedances_30d"] == "":
            assert exceed in ("依法不予公开", "未安装在线监测")
        else:
            assert exceed == ("无" if r["exceedances_30d"] == "0" else f"{r['exceedances_30d']} 次（日均值）")
        rect = fact(page, "未完成整改")
        if r["open_rectifications"] in ("", "0"):
            assert rect == ("依法不予公开" if r["open_rectifications"] == "" else "无")
        else:
            assert rect.startswith(f"{r['open_rectifications']} 项")
            assert (f"（{r['overdue_rectifications']} 项已逾期）" in rect) == (r["overdue_rectifications"] != "0")
        credit = fact(page, "信用评价")
        assert credit == (f"{r['credit_level']}（{r['credit_year']} 年度）" if r["credit_level"] else credit)
        if r["latest_inspection"]:
            assert fact(page, "最近检查").startswith(cn(r["latest_inspection"]))


def test_the_tables_agree_with_each_other(public: Path, manifest: dict) -> None:
    rows = {t.name: table_rows(public, manifest, t.name) for t in TABLES}

    def count(table: str, pred) -> Counter[str]:
        return Counter(r["permit_no"] for r in rows[table] if pred(r))

    within = count("penalties", lambda r: r["within_3y"] == "true")
    overdue = count("rectifications", lambda r: r["overdue"] == "true")
    pending = count("rectifications", lambda r: r["status"] in ("open", "submitted"))
    this_year = count("inspections", lambda r: r["date"].startswith(AS_OF[:4]))
    outlets = count("outlets", lambda r: r["withheld"] != "block")
    assert sum(within.values()) and sum(pending.values()) and sum(this_year.values())
    for e, p in zip(rows["enterprises"], rows["permits"], strict=True):
        n = e["permit_no"]
        assert p["permit_no"] == n and p["permit_status"] == e["permit_status"]
        assert e["penalties_3y"] in ("", str(within[n])), n
        assert e["open_rectifications"] in ("", str(pending[n])), n
        assert e["overdue_rectifications"] in ("", str(overdue[n])), n
        assert e["inspections_this_year"] in ("", str(this_year[n])), n
        assert p["outlets"] == str(outlets[n]), n


def test_no_confidential_or_planted_value_in_any_download(public: Path, manifest: dict) -> None:
    texts = [unzip(public / "data" / f["name"]).decode("utf-8") for f in manifest["files"]]
    texts += [p.read_text(encoding="utf-8") for p in (public / "P").glob("*/data.json")]
    planted = [gen.PLANTED_MOBILE, gen.PLANTED_ID, gen.SECRET_MARK, f"{gen.PLANTED_FINE:g}"]
    for text in texts:
        for value in planted:
            assert value not in text
        assert '"confidential' not in text
    # The withheld fine is marked, not silently absent.
    penalties = table_rows(public, manifest, "penalties")
    assert any(
        r["withheld"] == "fields" and r["withheld_fields"] == "fine_yuan" and not r["fine_yuan"] for r in penalties
    )


def test_latest_files_keep_their_names_and_the_archive_carries_the_date(public: Path, manifest: dict) -> None:
    data = public / "data"
    assert manifest["as_of"] == AS_OF
    sums = dict(line.split("  ")[::-1] for line in (data / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {f["name"] for f in manifest["files"]}
    for f in manifest["files"]:
        path = data / f["name"]
        # A permanent address: no date in the name, nor anywhere in the zip (same content, same bytes).
        assert f["name"] == f"yimatong-{f['table']}.{f['format']}.zip" and path.stat().st_size == f["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"] == sums[f["name"]]
        with zipfile.ZipFile(path) as zf:
            (info,) = zf.infolist()
            assert info.filename == f["name"].removesuffix(".zip") and info.file_size == f["uncompressed_bytes"]
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and AS_OF not in zf.comment.decode()
            assert zf.testzip() is None  # the CRC of the whole, combined from its segments', is right
    (snapshot,) = manifest["archive"]
    assert snapshot == {"month": "2026-11", "as_of": AS_OF, "path": "archive/2026-11/"}
    archived = json.loads((data / "archive" / "2026-11" / "index.json").read_text(encoding="utf-8"))
    assert len(archived["files"]) == len(manifest["files"])
    for f, a in zip(manifest["files"], archived["files"], strict=True):
        assert a["name"] == f["name"].replace("yimatong-", f"yimatong-{AS_OF}-") and a["sha256"] == f["sha256"]
        assert (data / "archive" / "2026-11" / a["name"]).read_bytes() == (data / f["name"]).read_bytes()


def test_the_crc_of_a_zip_is_combined_from_its_segments() -> None:
    first, second = "许可证 permit\n".encode() * 3000, b"".join(i.to_bytes(3, "little") for i in range(5000))
    whole = zlib.crc32(first + second)
    for combine in (crc_combine, _crc_combine_py):
        assert combine(zlib.crc32(first), zlib.crc32(second), len(second)) == whole
        assert combine(whole, 0, 0) == whole


def test_the_same_input_gives_byte_identical_downloads(site: tuple[Loaded, Path], tmp_path: Path) -> None:
    loaded, public = site
    again = write_open_data(loaded, tmp_path, None)
    for f in again.downloads:
        assert (tmp_path / "data" / f.name).read_bytes() == (public / "data" / f.name).read_bytes(), f.name
    for name in ("index.json", "SHA256SUMS", "index.html"):
        assert (tmp_path / "data" / name).read_bytes() == (public / "data" / name).read_bytes()


class _Store:
    """Tonight's records: last night's, with some replaced."""

    def __init__(self, store: Any, changed: dict[str, dict]) -> None:
        self.store, self.changed = store, changed

    def get(self, digest: str) -> dict:
        return self.changed[digest] if digest in self.changed else self.store.get(digest)


def renamed_tonight(loaded: Loaded, changed: Entry) -> tuple[Loaded, dict[str, Any]]:
    """Tonight's export: `changed` with a new name (a new digest), the others as they were."""
    view = loaded.store.get(changed.digest)
    view["enterprise"]["name"] += "（新名称）"
    tonight = replace(
        loaded,
        entries=[replace(e, digest="f" * 32) if e is changed else e for e in loaded.entries],
        store=_Store(loaded.store, {"f" * 32: view}),
    )
    return tonight, view


def test_a_night_with_one_changed_record_encodes_one_and_links_the_rest(
    site: tuple[Loaded, Path], tmp_path: Path
) -> None:
    loaded = site[0]
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()  # staging exists before a build starts (publish.begin)
    reuse = Reuse(None, None, first)
    cold = write_open_data(loaded, first, None, cache_dir=cache, reuse=reuse)
    assert cold.encoded == len(loaded.entries) and cold.compressed == cold.segments

    changed = loaded.entries[3]
    tonight, view = renamed_tonight(loaded, changed)
    live = Manifest({path: Output("", key) for path, key in reuse.keys.items()})
    stats = write_open_data(tonight, second, first, cache_dir=cache, reuse=Reuse(first, live, second))
    assert stats.encoded == 1 and stats.linked == len(loaded.entries) - 1
    assert 0 < stats.compressed < stats.segments / 2  # the rest copied from last night's zips
    for e in loaded.entries:
        path = urls.enterprise_path(e.permit_no) + "data.json"
        same_file = (first / path).stat().st_ino == (second / path).stat().st_ino
        assert same_file == (e is not changed), e.permit_no
    assert "（新名称）" in (second / urls.enterprise_path(changed.permit_no) / "data.json").read_text(encoding="utf-8")

    # What the cache saved is exactly what a build from nothing writes.
    scratch = write_open_data(tonight, tmp_path / "scratch", None)
    assert scratch.encoded == len(loaded.entries)
    for d in stats.downloads:
        assert (second / "data" / d.name).read_bytes() == (tmp_path / "scratch/data" / d.name).read_bytes(), d.name
    names = [r["name"] for r in table_rows(second, json.loads((second / "data/index.json").read_text()), "enterprises")]
    assert names.count(view["enterprise"]["name"]) == 1


def test_a_nights_zips_come_with_where_their_bytes_are_the_live_zips(
    site: tuple[Loaded, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the verifier is told (`OpenDataStats.zips`): each zip's deflate data is its pieces in
    order, those called copies are the live zip's bytes, and each piece decompressed on its own is
    its stretch of the table, so the pieces' texts one after the other are the file's."""
    monkeypatch.setattr(opendata, "SEGMENT_BYTES", 2048)  # many segments in the 60-record sample
    loaded = site[0]
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    cold = write_open_data(loaded, first, None, cache_dir=cache)
    assert cold.zips == {}  # nothing live to copy from
    tonight, _ = renamed_tonight(loaded, loaded.entries[7])
    stats = write_open_data(tonight, second, first, cache_dir=cache)
    assert sorted(stats.zips) == sorted(f"data/{d.name}" for d in stats.downloads)
    new = copied = claimed = plain = 0
    for path, layout in stats.zips.items():
        raw, live = (second / path).read_bytes(), (first / path).read_bytes()
        with zipfile.ZipFile(second / path) as z:
            (info,) = z.infolist()
            member = z.read(info)
        assert layout.start == raw.index(info.filename.encode()) + len(info.filename)
        assert layout.end == layout.start + info.compress_size and raw[layout.end - 2 : layout.end] == b"\x03\x00"
        at, texts = layout.start, []
        for p in layout.pieces:
            assert p.at == at
            at += p.size
            data = raw[p.at : p.at + p.size]
            if p.source >= 0:
                assert data == live[p.source : p.source + p.size]
            d = zlib.decompressobj(-15)
            text = d.decompress(data)
            assert not d.eof and d.unused_data == b""
            assert (len(text), zlib.crc32(text), text.count(b"\n")) == (p.plain, p.crc, p.lines)
            texts.append(text)
            # In a piece compressed tonight, the unchanged records' text is a live segment's text.
            assert p.source < 0 or p.same == ()
            done = 0
            for same in p.same:
                assert same.start >= done and same.size > 0
                done = same.start + same.size
                source = zlib.decompressobj(-15).decompress(live[same.source : same.source + same.source_size])
                assert text[same.start : done] == source[same.offset : same.offset + same.size]
                claimed += same.size
            plain += len(text) if p.source < 0 else 0
        assert at == layout.end - 2 and b"".join(texts) == member
        new += sum(p.source < 0 for p in layout.pieces)
        copied += layout.copied
    assert 0 < new <= stats.compressed and copied > 0.8 * sum(z.end - z.start for z in stats.zips.values())
    assert claimed > plain / 2  # one record of the 60 changed: most of the new pieces' text is last night's

    # A live zip that is not the one the cache copies from (a --full build published in between):
    # no claims.
    scratch = tmp_path / "scratch"
    write_open_data(tonight, scratch, None)
    assert write_open_data(tonight, tmp_path / "third", scratch, cache_dir=cache).zips == {}


def test_a_new_reading_leaves_the_zips_of_the_tables_it_does_not_touch_as_they_were(
    site: tuple[Loaded, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most nights bring new readings, not new names: a table whose rows did not change keeps its
    zip, every piece copied from the live one, and nothing in it is compressed again."""
    monkeypatch.setattr(opendata, "SEGMENT_BYTES", 2048)  # many segments in the 60-record sample
    loaded = site[0]
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    write_open_data(loaded, first, None, cache_dir=cache)

    def measured(e: Entry) -> bool:
        return any(v is not None for s in loaded.store.get(e.digest)["self_monitoring"]["series"] for v in s["values"])

    changed = next(e for e in loaded.entries if measured(e))
    view = loaded.store.get(changed.digest)
    values = next(s for s in view["self_monitoring"]["series"] if any(v is not None for v in s["values"]))["values"]
    last = max(i for i, v in enumerate(values) if v is not None)
    values[last] = round(values[last] * 0.9, 2)  # lower: no new exceedance to count elsewhere
    tonight = replace(
        loaded,
        entries=[replace(e, digest="f" * 32) if e is changed else e for e in loaded.entries],
        store=_Store(loaded.store, {"f" * 32: view}),
    )
    stats = write_open_data(tonight, second, first, cache_dir=cache)

    def text(root: Path, name: str) -> bytes:
        with zipfile.ZipFile(root / "data" / name) as z:
            return z.read(z.infolist()[0])

    moved = {d.name for d in stats.downloads if text(first, d.name) != text(second, d.name)}
    assert {"yimatong-self_monitoring.csv.zip", "yimatong-records.jsonl.zip"} <= moved
    assert len(moved) <= 5 and len(stats.downloads) == 23
    new = 0
    for d in stats.downloads:
        pieces = stats.zips[f"data/{d.name}"].pieces
        new += sum(p.source < 0 for p in pieces)
        if d.name not in moved:
            assert (second / "data" / d.name).read_bytes() == (first / "data" / d.name).read_bytes()
            assert all(p.source >= 0 for p in pieces), d.name
        else:
            assert 0 < sum(p.source < 0 for p in pieces) < len(pieces) / 2, d.name
    assert stats.compressed == new

    scratch = write_open_data(tonight, tmp_path / "scratch", None)
    for d in scratch.downloads:
        assert (second / "data" / d.name).read_bytes() == (tmp_path / "scratch/data" / d.name).read_bytes(), d.name


def test_the_next_day_reencodes_only_records_whose_dated_facts_move(site: tuple[Loaded, Path], tmp_path: Path) -> None:
    loaded = site[0]
    cache = tmp_path / "cache"
    write_open_data(loaded, tmp_path / "first", None, cache_dir=cache)
    tomorrow = loaded.site.as_of + dt.timedelta(days=1)
    moved = sum(facts.stable_until(v, loaded.site.as_of) <= tomorrow for _, v in iter_views(loaded))
    later = replace(loaded, site=loaded.site.model_copy(update={"as_of": tomorrow}))
    stats = write_open_data(later, tmp_path / "second", None, cache_dir=cache)
    assert stats.encoded == moved < len(loaded.entries)
    write_open_data(later, tmp_path / "scratch", None)
    for d in stats.downloads:
        assert (tmp_path / "second/data" / d.name).read_bytes() == (tmp_path / "scratch/data" / d.name).read_bytes()


# --- the monthly archive ----------------------------------------------------------------------


def _snapshot(out: Path, month: str, as_of: str, content: bytes = b"old") -> None:
    folder = out / "data" / "archive" / month
    folder.mkdir(parents=True)
    name = f"yimatong-{as_of}-enterprises.csv.zip"
    (folder / name).write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    entry = {"name": name, "table": "enterprises", "format": "csv", "rows": 1, "bytes": len(content)}
    files = [entry | {"uncompressed_bytes": 1, "sha256": sha}]
    (folder / "index.json").write_text(json.dumps({"as_of": as_of, "files": files}), encoding="utf-8")


def test_archive_keeps_twelve_months_and_never_rewrites_a_snapshot(site: tuple[Loaded, Path], tmp_path: Path) -> None:
    loaded = site[0]
    previous = tmp_path / "previous"
    _snapshot(previous, "2025-11", "2025-11-01")  # 13 months back: dropped
    for month in ("2025-12", "2026-06", "2026-10"):
        _snapshot(previous, month, f"{month}-01")
    _snapshot(previous, "2026-09", "2026-09-01")
    next((previous / "data/archive/2026-09").glob("*.zip")).unlink()  # broken: dropped, with a note
    (previous / "data/archive/notes").mkdir()  # not ours: ignored

    first = write_open_data(loaded, tmp_path / "first", previous)
    assert first.archive == ["2026-11", "2026-10", "2026-06", "2025-12"]
    assert any("2026-09" in n for n in first.notes)
    kept = tmp_path / "first/data/archive/2025-12/yimatong-2025-12-01-enterprises.csv.zip"
    assert kept.read_bytes() == b"old"

    # Tonight's snapshot of this month is the one a story cites: a later build keeps it unchanged.
    shutil.rmtree(previous / "data")
    _snapshot(previous, "2026-11", "2026-11-02", b"cited")
    second = write_open_data(loaded, tmp_path / "second", previous)
    assert second.archive == ["2026-11"]
    assert (tmp_path / "second/data/archive/2026-11/yimatong-2026-11-02-enterprises.csv.zip").read_bytes() == b"cited"
    listing = json.loads((tmp_path / "second/data/index.json").read_text(encoding="utf-8"))["archive"]
    assert listing == [{"month": "2026-11", "as_of": "2026-11-02", "path": "archive/2026-11/"}]


# --- the data page, as a journalist uses it -----------------------------------------------------


def test_data_page_lists_every_download_and_documents_every_column(public: Path, manifest: dict) -> None:
    page = BeautifulSoup((public / "data" / "index.html").read_text(encoding="utf-8"), "html.parser")
    hrefs = {a["href"] for a in page.select("a[href]")}
    for f in manifest["files"]:
        assert f["name"] in hrefs and f["sha256"] in page.get_text()
    for table in TABLES:
        heading = page.find(id=f"table-{table.name}")
        documented = [code.get_text() for code in heading.find_next("dl").select("dt > code")]
        assert documented == [c.name for c in table.columns], table.name
    assert f"../schema/{PUBLIC_SCHEMA}" in hrefs
    assert page.find(id="archive") and "2026-11" in page.select_one('section[aria-labelledby="archive"]').get_text()


def test_home_page_links_to_the_data_page(sample_build: tuple[BuildResult, Path]) -> None:
    home = BeautifulSoup((sample_build[1] / "index.html").read_text(encoding="utf-8"), "html.parser")
    if not (sample_build[1] / "data").is_dir():
        pytest.skip("open data is not wired into pipeline.build() yet (nor the links in base.html / home.html)")
    assert any(urljoin("https://x/", a["href"]) == "https://x/data/" for a in home.select("a[href]"))


def test_a_journalist_downloads_the_enterprises_csv_and_the_numbers_match(public: Path) -> None:
    with serve(public) as base:

        def get(url: str) -> bytes:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read()

        data_page = BeautifulSoup(get(base + "data/").decode("utf-8"), "html.parser")
        link = next(a for a in data_page.select("a[href]") if a["href"] == "yimatong-enterprises.csv.zip")
        raw = zipfile.ZipFile(io.BytesIO(get(urljoin(base + "data/", link["href"]))))
        (name,) = raw.namelist()
        assert name == "yimatong-enterprises.csv"
        rows = list(csv.DictReader(io.StringIO(raw.read(name).decode("utf-8-sig"), newline="")))

        home = BeautifulSoup(get(base).decode("utf-8"), "html.parser")
        figures = home.select_one('section[aria-labelledby="figures"]').get_text(" ", strip=True)
        assert f"持证（登记）单位 {len(rows)} 家" in figures
        for category, n in Counter(r["category"] for r in rows).items():
            assert f"{category} {n} 家" in figures
        with_penalties = sum(1 for r in rows if r["penalties_3y"] not in ("", "0"))
        with_exceedances = sum(1 for r in rows if r["exceedances_30d"] not in ("", "0"))
        with_open = sum(1 for r in rows if r["open_rectifications"] not in ("", "0"))
        assert f"近 3 年受到行政处罚的单位 {with_penalties} 家" in figures
        assert f"近 30 天在线监测有超标的单位 {with_exceedances} 家" in figures
        assert f"有未完成整改问题的单位 {with_open} 家" in figures
        statuses = next(li for li in home.select('section[aria-labelledby="figures"] li') if "许可状态" in li.text)
        shown = dict(pair.rsplit(" ", 1) for pair in statuses.get_text().split("：", 1)[1].split("，"))
        assert shown == {k: str(n) for k, n in Counter(r["permit_status_label"] for r in rows).items()}

        # A city's list says how many; the CSV agrees.
        city_link = home.select_one('section[aria-labelledby="cities"] a')
        city_page = BeautifulSoup(get(urljoin(base, city_link["href"])).decode("utf-8"), "html.parser")
        in_city = sum(1 for r in rows if r["city"] == city_link.get_text())
        assert f"共 {in_city} 家" in city_page.get_text()
