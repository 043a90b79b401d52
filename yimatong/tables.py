"""The open-data tables, declared once: columns, types, descriptions and getters.

The CSV header, the JSON Lines keys, the data dictionary on the data page and `data/index.json` all
come from `TABLES`. Every value is read from the public view and the derived facts (`facts`), the
same sources as the pages, so a download says what the pages say and nothing a page withholds.
Writing them (and caching what was written) is opendata.py's job.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, Literal

from pydantic import BaseModel

from . import charts, facts, urls
from .context import BLOCKS, Place, _block, pollutant_names
from .facts import View
from .schema import (
    HJ212_FLAGS,
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
        # No days-to-expiry column: it would change every row every night (the nightly build re-encodes
        # only what changed); valid_until and permit_status say the same, and the status changes only
        # on the dates facts.stable_until knows.
        *fields(Permit, "category valid_until", P),
        STATUS,
        derived("permit_status_label", "text", "许可状态的中文", lambda r, it: facts.STATUS_LABELS[_status(r, it)]),
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


# --- cells -------------------------------------------------------------------------------------


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


_CSV_BUFFER = io.StringIO()
_CSV = csv.writer(_CSV_BUFFER)


def encode(table: Table, rec: Rec) -> tuple[bytes, bytes, int]:
    """One enterprise's rows of `table`: (CSV bytes, JSON Lines bytes, number of rows)."""
    names = [c.name for c in table.columns]
    _CSV_BUFFER.seek(0)
    _CSV_BUFFER.truncate()
    lines: list[str] = []
    for it in table.rows(rec):
        values = [c.get(rec, it) for c in table.columns]
        _CSV.writerow([csv_cell(v) for v in values])
        lines.append(_json_line(dict(zip(names, values, strict=True))))
    return _CSV_BUFFER.getvalue().encode(), "".join(lines).encode(), len(lines)


def csv_header(table: Table) -> bytes:
    """The first bytes of a table's CSV: the BOM that makes Excel on a Chinese Windows read UTF-8
    instead of GBK, then the column names."""
    _CSV_BUFFER.seek(0)
    _CSV_BUFFER.truncate()
    _CSV.writerow([c.name for c in table.columns])
    return "\ufeff".encode() + _CSV_BUFFER.getvalue().encode()
