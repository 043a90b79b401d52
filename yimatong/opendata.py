"""Open data: a JSON file beside every enterprise page, nightly bulk downloads, the data page.

Everything here reads the public view (`public_view`, cached and read through `iter_views`) and the
derived facts (`facts`), the same sources as the pages, so a download says what the pages say and
nothing a page withholds.

- `P/<permit>/data.json`: the page's public view with its permanent URL and the as-of date;
  validated by `schema/public-enterprise-v1.json` (generated in docs.py from the model).
- `data/yimatong-<as_of>-<table>.{csv,jsonl}.zip`: one table per file, declared once in `TABLES`
  (columns, types, descriptions, getters): the CSV header, the JSON Lines keys, the data dictionary
  on the data page and `data/index.json` all come from that declaration.
- `data/archive/<YYYY-MM>/`: the first snapshot of each month, kept unchanged for 12 months.

Memory stays flat: records are streamed one at a time and rows go straight to open files; only
the counters stay in memory. Output is byte-identical for the same input: rows follow the permit
number order of `loaded.entries`, and the only date written anywhere (zip entry times included)
is `site.as_of`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from . import charts, docs, facts, pages, urls
from .context import BLOCKS, Common, Place, _block, cn_date, pollutant_names, root_of
from .facts import View
from .load import Loaded, iter_views
from .schema import (
    HJ212_FLAGS,
    SCHEMA_VERSION,
    Credit,
    Enterprise,
    HazardousWaste,
    Industry,
    Inspection,
    OnlineMonitoring,
    Outlet,
    Penalty,
    Permit,
    PollutantLimit,
    Rectification,
    SelfSeries,
    Source,
    WasteItem,
)

DATA = "data/"
ARCHIVE = "archive/"
ARCHIVE_MONTHS = 12
MANIFEST = "index.json"
SUMS = "SHA256SUMS"
PREFIX = "yimatong"
# Names we write, and the only names copied back from a previous output's archive.
_FILE = re.compile(r"^yimatong-[0-9]{4}-[0-9]{2}-[0-9]{2}-[a-z_]+\.(csv|jsonl)\.zip$")
_MONTH = re.compile(r"^[0-9]{4}-[0-9]{2}$")
Progress = Callable[[int, int], None]

# --- the data dictionary: every column of every table, declared once ---------------------------

ColumnType = Literal["text", "date", "integer", "number", "boolean", "list"]
TYPE_LABELS: dict[str, str] = {
    "text": "文本",
    "date": "日期（YYYY-MM-DD）",
    "integer": "整数",
    "number": "数字",
    "boolean": "true / false",
    "list": "列表（CSV 中以英文分号 ; 分隔，JSON Lines 中为数组）",
}
WITHHELD = "_withheld"  # key of a row that stands for a withheld block or list


@dataclass(frozen=True)
class Rec:
    """One enterprise as the tables read it: its public view and what the pages add."""

    view: View
    as_of: dt.date
    base_url: str
    place: Place

    @cached_property
    def url(self) -> str:
        return urls.absolute(self.base_url, urls.enterprise_path(self.view["permit_no"]))

    @cached_property
    def names(self) -> dict[str, str]:
        return pollutant_names(self.view)

    @cached_property
    def recent_penalties(self) -> list[View]:
        return facts.recent_penalties(self.view, self.as_of)


Getter = Callable[[Rec, View], Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    get: Getter = field(repr=False, compare=False)
    values: tuple[str, ...] = ()  # the codes a coded column may hold


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    row: str  # what one row is
    rows: Callable[[Rec], Iterable[View]] = field(repr=False, compare=False)
    columns: tuple[Column, ...]


@cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()["properties"]


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _typed(prop: dict[str, Any]) -> tuple[ColumnType, tuple[str, ...]]:
    p = next(o for o in prop.get("anyOf", [prop]) if o.get("type") != "null")
    if "enum" in p:
        return "text", tuple(p["enum"])
    if p.get("format") == "date":
        return "date", ()
    kinds: dict[str, ColumnType] = {"number": "number", "integer": "integer", "boolean": "boolean", "array": "list"}
    return kinds.get(p.get("type", ""), "text"), ()


def of(
    model: type[BaseModel],
    name: str,
    column: str | None = None,
    *,
    at: tuple[str, ...] | None = None,
    within: tuple[str, ...] = (),
) -> Column:
    """A column copied from a model field: its type and description are the export format's own.
    The value is the row's field (under `within`), or with `at` the field at that path of the view."""
    prop = _properties(model)[name]
    kind, values = _typed(prop)
    if at is None:
        in_row = (*within, name)
        get: Getter = lambda r, it: _dig(it, in_row)  # noqa: E731
    else:
        in_view = (*at, name)
        get = lambda r, it: _dig(r.view, in_view)  # noqa: E731
    return Column(column or name, kind, prop["description"], get, values)


def fields(model: type[BaseModel], names: str, at: tuple[str, ...] | None = None) -> tuple[Column, ...]:
    """Several model fields as columns of the same names, e.g. fields(Penalty, "date authority")."""
    return tuple(of(model, name, at=at) for name in names.split())


def derived(name: str, kind: ColumnType, description: str, get: Getter, values: Iterable[str] = ()) -> Column:
    """A column computed by the same functions the pages use."""
    return Column(name, kind, description, get, tuple(values))


KEY = derived(
    "permit_no", "text", "排污许可证编号或登记编号：每张表都有，用它把各表连起来", lambda r, it: r.view["permit_no"]
)


def withheld_columns() -> tuple[Column, Column]:
    def state(r: Rec, it: View) -> str | None:
        if WITHHELD in it:
            return it[WITHHELD]
        if it.get("withheld") is True:
            return "item"
        return "fields" if it.get("withheld_fields") else None

    return (
        derived(
            "withheld",
            "text",
            "依法不予公开（《办法》第七条）：空 = 公开；block = 该块整体不予公开（本行只说明这一点）；"
            "item = 本条整体不予公开（只保留编号、日期等标识字段）；fields = 部分字段不予公开，见 withheld_fields",
            state,
            ("block", "item", "fields"),
        ),
        derived("withheld_fields", "list", "不予公开的字段名（这些列为空）", lambda r, it: it.get("withheld_fields")),
    )


def source_columns(block: str) -> tuple[Column, Column]:
    """Each block names its source system and extract date (Art. 10); rows repeat them for citing."""
    return (
        of(Source, "system", "source_system", at=(block, "source")),
        of(Source, "extracted", "source_extracted", at=(block, "source")),
    )


def _rows_of(rec: Rec, block_key: str, list_key: str) -> Iterator[View]:
    """The items of a block's list; one marker row when the block or the list is withheld."""
    block = rec.view.get(block_key)
    if block is None:
        return
    if facts.withheld(block):
        yield {WITHHELD: "block"}
    elif list_key in block.get("withheld_fields", []):
        yield {WITHHELD: "fields", "withheld_fields": [list_key]}
    else:
        yield from block.get(list_key) or []


# --- derived facts for the enterprises table (None where the page says 依法不予公开) ---------------


def _unless_withheld(block: str, fn: Callable[[Rec], Any]) -> Getter:
    return lambda r, it: None if facts.withheld(r.view.get(block)) else fn(r)


def _exceedances(r: Rec, it: View) -> int | None:
    online = r.view["online_monitoring"]
    if facts.withheld(online) or not online.get("installed") or not online.get("series"):
        return None  # the page says 依法不予公开 / 未安装在线监测, not a number
    return len(facts.exceedances(r.view, r.as_of))


def _latest_inspection(r: Rec, it: View) -> str | None:
    latest = None if facts.withheld(r.view["inspections"]) else facts.latest_inspection(r.view)
    return latest["date"] if latest else None


def _status(r: Rec, it: View) -> str:
    return facts.permit_status(r.view, r.as_of)


STATUS = derived(
    "permit_status",
    "text",
    "许可状态（按数据截止日期推算，与页面一致）：" + "，".join(f"{k} {v}" for k, v in facts.STATUS_LABELS.items()),
    _status,
    facts.STATUS_LABELS,
)

E, P = ("enterprise",), ("permit",)  # where in the view the one-per-page blocks are

ENTERPRISES = Table(
    "enterprises",
    "持证（登记）单位",
    "一个排污许可证或排污登记（一个页面）",
    lambda r: [r.view],
    (
        KEY,
        derived("url", "text", "页面的永久地址（门牌二维码指向它）", lambda r, it: r.url),
        *fields(Enterprise, "name uscc region", E),
        derived("city", "text", "地级市", lambda r, it: r.place.city),
        derived("county", "text", "县（区）；市辖单位为空", lambda r, it: r.place.county),
        of(Enterprise, "address", at=E),
        of(Industry, "code", "industry_code", at=("enterprise", "industry")),
        of(Industry, "name", "industry_name", at=("enterprise", "industry")),
        of(Enterprise, "status", "enterprise_status", at=E),
        *fields(Enterprise, "deregistered legal_representative phone longitude latitude", E),
        of(Permit, "kind", "permit_kind", at=P),
        *fields(Permit, "category valid_until", P),
        STATUS,
        derived("permit_status_label", "text", "许可状态的中文", lambda r, it: facts.STATUS_LABELS[_status(r, it)]),
        derived(
            "days_to_expiry",
            "integer",
            "距许可有效期届满的天数（负数为已过期）",
            lambda r, it: facts.days_to_expiry(r.view, r.as_of),
        ),
        of(Credit, "level", "credit_level", at=("credit",)),
        of(Credit, "year", "credit_year", at=("credit",)),
        of(OnlineMonitoring, "installed", "online_monitoring_installed", at=("online_monitoring",)),
        derived(
            "exceedances_30d",
            "integer",
            f"近 {facts.EXCEEDANCE_DAYS} 天在线监测超标的日均值个数（只计数据标记为 N 的值）；"
            "未安装在线监测或不予公开时为空",
            _exceedances,
        ),
        derived(
            "penalties_3y",
            "integer",
            f"近 {facts.PENALTY_YEARS} 年行政处罚次数；不予公开时为空",
            _unless_withheld("penalties", lambda r: len(r.recent_penalties)),
        ),
        derived(
            "inspections_this_year",
            "integer",
            "数据截止日期所在年度的检查次数；不予公开时为空",
            _unless_withheld("inspections", lambda r: facts.inspections_this_year(r.view, r.as_of).total),
        ),
        derived("latest_inspection", "date", "最近一次检查的日期", _latest_inspection),
        derived(
            "open_rectifications",
            "integer",
            "未完成（整改中、已提交待审核）的整改问题数；不予公开时为空",
            _unless_withheld("rectifications", lambda r: len(facts.open_rectifications(r.view))),
        ),
        derived(
            "overdue_rectifications",
            "integer",
            "其中已过整改期限的问题数",
            _unless_withheld(
                "rectifications", lambda r: sum(facts.overdue(x, r.as_of) for x in facts.open_rectifications(r.view))
            ),
        ),
        of(HazardousWaste, "key_supervision", "hazardous_waste_key_supervision", at=("hazardous_waste",)),
        derived(
            "withheld_blocks",
            "list",
            "整体不予公开的信息块（block 列的取值见 blocks 表）",
            lambda r, it: [k for k, _ in BLOCKS if facts.withheld(r.view.get(k))],
        ),
        derived(
            "withheld_fields",
            "list",
            "单位基本信息中不予公开的字段名",
            lambda r, it: r.view["enterprise"]["withheld_fields"],
        ),
        *source_columns("enterprise"),
    ),
)


def _blocks(r: Rec) -> Iterator[View]:
    for key, title in BLOCKS:
        data = r.view.get(key)
        b = _block(r.view, key, title)  # the frame the page draws: the same withheld / empty judgement
        state = "absent" if data is None else "withheld" if b.withheld else "empty" if b.empty else "shown"
        yield {"block": key, "title": title, "state": state, "source": data.get("source") if data else None}


BLOCKS_TABLE = Table(
    "blocks",
    "信息块与来源",
    "一个单位的一个信息块（页面上的一节）",
    _blocks,
    (
        KEY,
        derived("block", "text", "信息块", lambda r, it: it["block"], (k for k, _ in BLOCKS)),
        derived("title", "text", "信息块名称（页面上的小标题）", lambda r, it: it["title"]),
        derived(
            "state",
            "text",
            "shown 有内容；empty 暂无记录；withheld 依法不予公开；absent 不适用（尚未评价信用、非“两高”项目）",
            lambda r, it: it["state"],
            ("shown", "empty", "withheld", "absent"),
        ),
        of(Source, "system", "source_system", within=("source",)),
        of(Source, "extracted", "source_extracted", within=("source",)),
    ),
)

PERMITS = Table(
    "permits",
    "排污许可证与排污登记",
    "一个排污许可证或排污登记",
    lambda r: [r.view],
    (
        KEY,
        *fields(Permit, "kind category issued valid_from valid_until status status_date status_reason authority", P),
        STATUS,
        derived(
            "outlets",
            "integer",
            "排放口与固废设施个数（含不予公开的）",
            lambda r, it: None if it["permit"]["outlets"] is None else len(it["permit"]["outlets"]),
        ),
        derived("withheld_fields", "list", "不予公开的字段名", lambda r, it: it["permit"]["withheld_fields"]),
        *source_columns("permit"),
    ),
)

WITHHELD_COLUMNS = withheld_columns()

OUTLETS = Table(
    "outlets",
    "排放口与固废设施",
    "一个排放口或固体废物贮存/处置设施（一个排放口页面）",
    lambda r: _rows_of(r, "permit", "outlets"),
    (
        KEY,
        of(Outlet, "code", "outlet"),
        *fields(Outlet, "name kind type longitude latitude height_m receiving_water"),
        derived(
            "url",
            "text",
            "排放口页面的永久地址（排放口标识牌二维码指向它）",
            lambda r, it: r.base_url + urls.outlet_path(r.view["permit_no"], it["code"]) if "code" in it else None,
        ),
        derived(
            "online_monitored",
            "boolean",
            "是否有在线监测数据；在线监测不予公开时为空",
            lambda r, it: (
                None
                if facts.withheld(r.view["online_monitoring"]) or "code" not in it
                else bool(facts.online_series(r.view, it["code"]))
            ),
        ),
        *WITHHELD_COLUMNS,
        *source_columns("permit"),
    ),
)


def _limits(r: Rec) -> Iterator[View]:
    for o in _rows_of(r, "permit", "outlets"):
        if WITHHELD in o:  # the list of outlets itself is withheld
            yield o
        elif o["withheld"]:  # the outlet is withheld whole: say so once, under its code
            yield {WITHHELD: "item", "_outlet": o["code"]}
        elif "pollutants" in o["withheld_fields"]:
            yield {WITHHELD: "fields", "withheld_fields": ["pollutants"], "_outlet": o["code"]}
        else:
            for p in o["pollutants"]:
                yield {**p, "_outlet": o["code"]}


LIMITS = Table(
    "limits",
    "许可排放限值",
    "一个排放口的一种污染物及其许可限值",
    _limits,
    (
        KEY,
        derived("outlet", "text", "排放口编号", lambda r, it: it.get("_outlet")),
        of(PollutantLimit, "code", "pollutant"),
        of(PollutantLimit, "name", "pollutant_name"),
        *fields(PollutantLimit, "standard limit limit_min unit annual_tonnes"),
        *WITHHELD_COLUMNS,
        *source_columns("permit"),
    ),
)

FLAG_COLUMNS = {"F": "stopped_days", "M": "maintenance_days", "S": "manual_days", "D": "fault_days"}
FLAG_COLUMNS |= {"C": "calibration_days", "T": "over_range_days", "B": "comm_error_days"}
assert FLAG_COLUMNS.keys() == HJ212_FLAGS.keys() - {"N"}, "a new HJ 212 flag needs a column"


def _last_months(series: View, as_of: dt.date) -> View:
    """The series from the first day of the 12 months `month_rows` reports: the same rows, at half
    the cost when a series holds two years (this table is the stage's hot loop)."""
    first = dt.date.fromisoformat(facts.months_back(as_of)[0] + "-01")
    skip = (first - facts.date(series["start"])).days
    if skip <= 0:
        return series
    return {**series, "start": first.isoformat(), "values": series["values"][skip:], "flags": series["flags"][skip:]}


def _monthly(r: Rec) -> Iterator[View]:
    """The monthly table under each chart of the page, from the same `charts.month_rows`."""
    for s in _rows_of(r, "online_monitoring", "series"):
        if WITHHELD in s:
            yield s
            continue
        limit = facts.limit_for(r.view, s["outlet"], s["pollutant"], s.get("limit"))
        days = [x for x in facts.readings(_last_months(s, r.as_of)) if x.day <= r.as_of]  # as charts.chart()
        flags: dict[str, Counter[str]] = defaultdict(Counter)
        for x in days:
            if not x.valid:
                flags[x.day.isoformat()[:7]][x.flag] += 1
        base = {"outlet": s["outlet"], "pollutant": s["pollutant"], "unit": s["unit"], "_limit": limit}
        for m in charts.month_rows(days, limit, r.as_of):
            yield {**base, "_month": m, "_flags": flags[m.month]}


def _month(attr: str) -> Getter:
    return lambda r, it: getattr(it["_month"], attr) if "_month" in it else None


def _limit(attr: str) -> Getter:
    return lambda r, it: getattr(it["_limit"], attr) if "_limit" in it else None


def _flag(flag: str) -> Getter:
    return lambda r, it: it["_flags"][flag] if "_flags" in it else None


def _name(r: Rec, it: View) -> str | None:
    return r.names.get(it["pollutant"], it["pollutant"]) if "pollutant" in it else None


MONITORING = Table(
    "monitoring_monthly",
    "在线监测逐月统计",
    "一个排放口的一种污染物在一个月的日均值统计（近 12 个月，与页面曲线下的“按月数据表”一致）",
    _monthly,
    (
        KEY,
        derived("outlet", "text", "排放口编号", lambda r, it: it.get("outlet")),
        derived("pollutant", "text", "污染物代码（HJ 212-2017）", lambda r, it: it.get("pollutant")),
        derived("pollutant_name", "text", "污染物名称", _name),
        derived("unit", "text", "单位", lambda r, it: it.get("unit")),
        derived("limit", "number", "判定所用的限值（监测数据自带的限值，缺省取许可限值）", _limit("high")),
        derived("limit_min", "number", "下限（如 pH）", _limit("low")),
        derived("month", "text", "月份（YYYY-MM）", _month("month")),
        derived("valid_days", "integer", "有效日均值天数（数据标记 N 且有数值）", _month("valid")),
        derived("min", "number", "有效日均值的最小值", _month("low")),
        derived("mean", "number", "有效日均值的平均值（保留两位小数）", _month("mean")),
        derived("max", "number", "有效日均值的最大值", _month("high")),
        derived("exceedance_days", "integer", "超过限值（或低于下限）的有效日均值天数", _month("exceed")),
        derived("no_value_days", "integer", "数据标记为 N 但没有数值的天数", _flag("N")),
        *(
            derived(name, "integer", f"数据标记为 {flag}（{HJ212_FLAGS[flag]}）的天数，不参与超标判定", _flag(flag))
            for flag, name in FLAG_COLUMNS.items()
        ),
        *WITHHELD_COLUMNS,
        *source_columns("online_monitoring"),
    ),
)


def _self_results(r: Rec) -> Iterator[View]:
    for s in _rows_of(r, "self_monitoring", "series"):
        if WITHHELD in s:
            yield s
            continue
        limit = facts.limit_for(r.view, s["outlet"], s["pollutant"], s.get("limit"))
        for day, value in zip(s["dates"], s["values"], strict=True):
            row = {"outlet": s["outlet"], "pollutant": s["pollutant"], "unit": s["unit"], "date": day}
            yield {**row, "value": value, "_limit": limit}


SELF_MONITORING = Table(
    "self_monitoring",
    "自行监测结果",
    "一次自行监测（手工）结果",
    _self_results,
    (
        KEY,
        *fields(SelfSeries, "outlet pollutant"),
        derived("pollutant_name", "text", "污染物名称", _name),
        derived("date", "date", "采样日期", lambda r, it: it.get("date")),
        derived("value", "number", "监测值；空为未检出或缺测", lambda r, it: it.get("value")),
        of(SelfSeries, "unit"),
        derived("limit", "number", "判定所用的限值（监测数据自带的限值，缺省取许可限值）", _limit("high")),
        derived("limit_min", "number", "下限（如 pH）", _limit("low")),
        derived(
            "over_limit",
            "boolean",
            "是否超标（与页面判定一致）",
            lambda r, it: it["_limit"].exceeded_by(it["value"]) if it.get("value") is not None else None,
        ),
        *WITHHELD_COLUMNS,
        *source_columns("self_monitoring"),
    ),
)

INSPECTIONS = Table(
    "inspections",
    "监督检查",
    "一次检查（含“双随机、一公开”抽查）",
    lambda r: _rows_of(r, "inspections", "items"),
    (
        KEY,
        *fields(Inspection, "date level kind authority result findings"),
        *WITHHELD_COLUMNS,
        *source_columns("inspections"),
    ),
)


def _within_3y(r: Rec, it: View) -> bool | None:
    # The very items facts.recent_penalties() counted for the page's "近3年行政处罚 n 起".
    return any(p is it for p in r.recent_penalties) if "date" in it else None


PENALTIES = Table(
    "penalties",
    "行政处罚",
    "一个行政处罚决定",
    lambda r: _rows_of(r, "penalties", "items"),
    (
        KEY,
        *fields(Penalty, "decision_no date authority violation basis penalty fine_yuan status"),
        derived(
            "within_3y",
            "boolean",
            f"是否在近 {facts.PENALTY_YEARS} 年内（计入 enterprises 表 penalties_3y）",
            _within_3y,
        ),
        *WITHHELD_COLUMNS,
        *source_columns("penalties"),
    ),
)

RECTIFICATIONS = Table(
    "rectifications",
    "问题整改",
    "一个需要整改的环境问题",
    lambda r: _rows_of(r, "rectifications", "items"),
    (
        KEY,
        *fields(Rectification, "id found origin problem deadline status closed measures"),
        derived(
            "overdue",
            "boolean",
            "未销号且已过整改期限",
            lambda r, it: facts.overdue(it, r.as_of) if "found" in it else None,
        ),
        *WITHHELD_COLUMNS,
        *source_columns("rectifications"),
    ),
)

HAZARDOUS_WASTE = Table(
    "hazardous_waste",
    "危险废物",
    "一种危险废物在一个年度的产生、转移、利用处置与贮存量",
    lambda r: _rows_of(r, "hazardous_waste", "items"),
    (
        KEY,
        of(HazardousWaste, "key_supervision", at=("hazardous_waste",)),
        *fields(WasteItem, "code name year generated_t transferred_t utilised_t stored_t receiver"),
        *WITHHELD_COLUMNS,
        *source_columns("hazardous_waste"),
    ),
)

TABLES: tuple[Table, ...] = (ENTERPRISES, BLOCKS_TABLE, PERMITS, OUTLETS, LIMITS, MONITORING, SELF_MONITORING)
TABLES += (INSPECTIONS, PENALTIES, RECTIFICATIONS, HAZARDOUS_WASTE)
RECORDS = "records"  # every data.json, one per line: the complete public data, blocks the tables leave out too

# --- writing -------------------------------------------------------------------------------


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: Any) -> str:
    """A value as a CSV cell. Text that Excel would run as a formula (a complaint's wording reaches
    the rectifications table) gets a leading ' (OWASP's advice); JSON Lines keeps the original."""
    kind = type(v)  # exact types, most common first: this runs for every cell of every table
    if kind is str:
        return "'" + v if v.startswith(FORMULA_START) else v
    if v is None:
        return ""
    if kind is bool:
        return "true" if v else "false"
    if kind is float:
        # The shortest exact digits, never in exponent form (5e-05 for a mercury limit reads badly).
        return str(int(v)) if v.is_integer() else format(Decimal(repr(v)), "f")
    if kind is list:
        return csv_cell(";".join(csv_cell(x) for x in v))
    return str(v)


def _json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


class _TableOut:
    """One table's two plain files, appended to row by row."""

    def __init__(self, table: Table, folder: Path, stack: ExitStack) -> None:
        self.table = table
        # Both files are closed by the caller's ExitStack, whatever happens (hence the noqa).
        # utf-8-sig: the BOM that makes Excel on a Chinese Windows read UTF-8 instead of GBK.
        csv_file = open(folder / f"{table.name}.csv", "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
        self.csv = csv.writer(stack.enter_context(csv_file))
        jsonl = open(folder / f"{table.name}.jsonl", "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.jsonl = stack.enter_context(jsonl)
        self.names = [c.name for c in table.columns]
        self.csv.writerow(self.names)
        self.rows = 0

    def add(self, rec: Rec) -> None:
        for it in self.table.rows(rec):
            values = [c.get(rec, it) for c in self.table.columns]
            self.csv.writerow([csv_cell(v) for v in values])
            self.jsonl.write(_json_line(dict(zip(self.names, values, strict=True))))
            self.rows += 1


@dataclass(frozen=True)
class Download:
    """One published file, as data/index.json lists it."""

    name: str  # the file name, beside the manifest that lists it
    table: str
    format: Literal["csv", "jsonl"]
    rows: int
    bytes: int
    uncompressed_bytes: int
    sha256: str


def file_name(as_of: dt.date, table: str, fmt: str) -> str:
    return f"{PREFIX}-{as_of.isoformat()}-{table}.{fmt}"


def _zip(plain: Path, target: Path, inner: str, as_of: dt.date, comment: str) -> None:
    """A zip that is the same bytes for the same content: fixed time, order and permissions."""
    info = zipfile.ZipInfo(inner, date_time=(as_of.year, as_of.month, as_of.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, wherever the build runs
    info.external_attr = 0o100644 << 16
    info.file_size = plain.stat().st_size  # known in advance: zipfile then decides on ZIP64 by itself
    with zipfile.ZipFile(target, "w") as zf:
        zf.comment = comment.encode("ascii")
        with plain.open("rb") as src, zf.open(info, "w") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _publish(
    plain: Path, folder: Path, as_of: dt.date, table: str, fmt: Literal["csv", "jsonl"], rows: int, base: str
) -> Download:
    inner = file_name(as_of, table, fmt)
    target = folder / f"{inner}.zip"
    _zip(plain, target, inner, as_of, f"yimatong open data; table {table}; as of {as_of.isoformat()}; {base}{DATA}")
    return Download(target.name, table, fmt, rows, target.stat().st_size, plain.stat().st_size, _sha256(target))


# --- the monthly archive ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    month: str  # YYYY-MM
    as_of: str
    files: list[Download]


def _link_or_copy(src: Path, dst: Path) -> None:
    # Published files are never changed in place, so a hard link is a safe copy that costs no disk.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _read_snapshot(folder: Path) -> Snapshot | None:
    """A previous month's snapshot, if it is whole: its manifest and every file it lists, at size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = [Download(**f) for f in manifest["files"]]
        as_of = str(manifest["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = files and all(_FILE.match(f.name) and (folder / f.name).is_file() for f in files)
    if not ok or any((folder / f.name).stat().st_size != f.bytes for f in files):
        return None
    return Snapshot(folder.name, as_of, files)


def _archive(
    previous: Path | None, out: Path, current: Snapshot, manifest: str, sums: str, notes: list[str]
) -> list[Snapshot]:
    """Keep the last 12 months' snapshots: those of `previous` unchanged (a cited file must stay the
    same), plus this month's if it has none yet. Newest first."""
    window = set(facts.months_back(dt.date.fromisoformat(current.as_of), ARCHIVE_MONTHS))
    kept: list[Snapshot] = []
    old = previous / DATA / ARCHIVE if previous else None
    if old and old.is_dir():
        for folder in sorted(old.iterdir()):
            if not (_MONTH.match(folder.name) and folder.name in window):
                continue  # older than 12 months (or not ours): dropped
            snap = _read_snapshot(folder)
            if snap is None:
                notes.append(f"开放数据存档 {folder.name} 不完整，已丢弃")
                continue
            target = out / ARCHIVE / folder.name
            target.mkdir(parents=True)
            for name in (MANIFEST, SUMS, *(f.name for f in snap.files)):
                if (folder / name).is_file():
                    _link_or_copy(folder / name, target / name)
            kept.append(snap)
    if current.month not in {s.month for s in kept}:
        target = out / ARCHIVE / current.month
        target.mkdir(parents=True)
        for f in current.files:
            _link_or_copy(out / f.name, target / f.name)
        (target / MANIFEST).write_text(manifest, encoding="utf-8")
        (target / SUMS).write_text(sums, encoding="utf-8")
        kept.append(current)
    return sorted(kept, key=lambda s: s.month, reverse=True)


# --- the data page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileLink:
    href: str
    name: str
    format: str
    rows: int
    size: str
    sha256: str


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str
    description: str
    values: str


@dataclass(frozen=True)
class TableDoc:
    name: str
    title: str
    row: str
    rows: int
    files: list[FileLink]
    columns: list[ColumnDoc]


@dataclass(frozen=True)
class SnapshotLink:
    month: str
    as_of: str
    href: str  # the snapshot's folder
    files: list[FileLink]


@dataclass(frozen=True)
class DataPage:
    common: Common
    tables: list[TableDoc]
    records: FileLink
    enterprises: int
    manifest: str
    sums: str
    example: str | None  # one enterprise's data.json, to show what it looks like
    export_schemas: list[pages.Link]
    public_schema: pages.Link
    archive: list[SnapshotLink]
    archive_months: int
    citation: str


def human_size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{max(n, 1) / 1000:.1f} kB"


def _links(files: list[Download], prefix: str = "") -> list[FileLink]:
    return [FileLink(prefix + f.name, f.name, f.format, f.rows, human_size(f.bytes), f.sha256) for f in files]


def _table_docs(files: list[Download]) -> list[TableDoc]:
    docs_: list[TableDoc] = []
    for t in TABLES:
        mine = [f for f in files if f.table == t.name]
        columns = [ColumnDoc(c.name, TYPE_LABELS[c.type], c.description, " / ".join(c.values)) for c in t.columns]
        docs_.append(TableDoc(t.name, t.title, t.row, mine[0].rows, _links(mine), columns))
    return docs_


def dictionary() -> list[dict[str, Any]]:
    """The data dictionary as data/index.json carries it."""
    return [
        {
            "name": t.name,
            "title": t.title,
            "row": t.row,
            "columns": [
                {"name": c.name, "type": c.type, "description": c.description, "values": list(c.values)}
                for c in t.columns
            ],
        }
        for t in TABLES
    ]


# --- the stage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDataStats:
    records: int  # data.json files written
    downloads: list[Download]
    archive: list[str]  # months kept, newest first
    notes: list[str]  # what the build log should say (an incomplete old snapshot dropped)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.downloads)


def document(view: View, base_url: str, as_of: dt.date) -> dict[str, Any]:
    """What `P/<permit>/data.json` holds: the public view with its permanent URL and as-of date."""
    url = urls.absolute(base_url, urls.enterprise_path(view["permit_no"]))
    return {"schema_version": view["schema_version"], "url": url, "as_of": as_of.isoformat(), **view}


def write_open_data(
    loaded: Loaded, staging: Path, previous: Path | None, progress: Progress | None = None
) -> OpenDataStats:
    """Write every data.json, the bulk downloads, the archive and the data page into `staging`.
    `previous` is the currently published output, whose archive is carried over."""
    site = loaded.site
    as_of = site.as_of
    out = staging / DATA
    plain = out / ".plain"  # uncompressed tables while they grow; removed once zipped
    plain.mkdir(parents=True)
    place = pages.places(loaded.regions)
    total = len(loaded.entries)
    count = 0
    with ExitStack() as stack:
        tables = [_TableOut(t, plain, stack) for t in TABLES]
        records = stack.enter_context(open(plain / f"{RECORDS}.jsonl", "w", encoding="utf-8", newline="\n"))
        for entry, view in iter_views(loaded):
            line = _json_line(document(view, site.base_url, as_of))
            pages.write(staging, urls.enterprise_path(entry.permit_no) + "data.json", line)
            records.write(line)
            rec = Rec(view, as_of, site.base_url, place(entry.region))
            for t in tables:
                t.add(rec)
            count += 1
            if progress and (count % 500 == 0 or count == total):
                progress(count, total)
    downloads = []
    for t in tables:
        for fmt in ("csv", "jsonl"):
            downloads.append(
                _publish(plain / f"{t.table.name}.{fmt}", out, as_of, t.table.name, fmt, t.rows, site.base_url)
            )
    downloads.append(_publish(plain / f"{RECORDS}.jsonl", out, as_of, RECORDS, "jsonl", count, site.base_url))
    shutil.rmtree(plain)

    snapshot = _manifest(site.program_name, as_of, downloads)
    sums = "".join(f"{d.sha256}  {d.name}\n" for d in downloads)  # `sha256sum -c SHA256SUMS`
    notes: list[str] = []
    current = Snapshot(as_of.strftime("%Y-%m"), as_of.isoformat(), downloads)
    archive = _archive(previous, out, current, _dump(snapshot), sums, notes)
    listing = [{"month": s.month, "as_of": s.as_of, "path": f"{ARCHIVE}{s.month}/"} for s in archive]
    (out / MANIFEST).write_text(_dump({**snapshot, "archive": listing}), encoding="utf-8")
    (out / SUMS).write_text(sums, encoding="utf-8")
    _page(loaded, staging, downloads, archive, count)
    return OpenDataStats(count, downloads, [s.month for s in archive], notes)


def _manifest(program: str, as_of: dt.date, downloads: list[Download]) -> dict[str, Any]:
    return {
        "title": f"{program} 开放数据",
        "as_of": as_of.isoformat(),
        "schema_version": SCHEMA_VERSION,
        "files": [asdict(d) for d in downloads],
        "tables": dictionary(),
    }


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1) + "\n"


def _page(loaded: Loaded, staging: Path, downloads: list[Download], archive: list[Snapshot], count: int) -> None:
    site = loaded.site
    path = DATA
    root = root_of(path)
    first = loaded.entries[0].permit_no if loaded.entries else None
    records = next(d for d in downloads if d.table == RECORDS)
    page = DataPage(
        common=Common(site, root, "开放数据", path),
        tables=_table_docs(downloads),
        records=_links([records])[0],
        enterprises=count,
        manifest=MANIFEST,
        sums=SUMS,
        example=root + urls.enterprise_path(first) + "data.json" if first else None,
        export_schemas=[
            pages.Link(f"{m.__name__}（{name}）", root + "schema/" + name) for name, m in docs.SCHEMAS.items()
        ],
        public_schema=pages.Link(docs.PUBLIC_SCHEMA, root + "schema/" + docs.PUBLIC_SCHEMA),
        archive=[
            SnapshotLink(s.month, s.as_of, f"{ARCHIVE}{s.month}/", _links(s.files, f"{ARCHIVE}{s.month}/"))
            for s in archive
        ],
        archive_months=ARCHIVE_MONTHS,
        citation=f"{site.program_name}开放数据，数据截至 {cn_date(site.as_of)}，{site.base_url}{DATA}",
    )
    pages.write(staging, path + "index.html", pages.environment().get_template("data.html").render(page=page))
