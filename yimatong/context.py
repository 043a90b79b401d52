"""Declared template contexts, built from the public view by pure functions.

Templates branch and loop over these; every figure and label is decided here, so a template never
computes and every fact on a page can be tested without rendering.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from . import charts, facts, urls
from .facts import View
from .schema import Site

LABELS: dict[str, dict[str, str]] = {
    "outlet_kind": {"air": "废气", "water": "废水", "solid_waste": "固体废物贮存/处置"},
    "outlet_type": {"main": "主要排放口", "general": "一般排放口", "special": "特殊排放口"},
    "enterprise_status": {"operating": "在营", "suspended": "停产", "deregistered": "已注销"},
    "permit_kind": {"permit": "排污许可证", "registration": "排污登记"},
    "eia_kind": {"report": "报告书", "table": "报告表", "marine": "海洋工程", "nuclear_radiation": "核与辐射"},
    "acceptance_kind": {"self": "企业自主验收", "authority": "部门验收"},
    "level": {"province": "省级", "city": "市级", "county": "县级"},
    "inspection_kind": {
        "double_random": "双随机抽查",
        "special": "专项检查",
        "complaint": "信访举报核查",
        "routine": "日常检查",
    },
    "result": {"compliant": "未发现问题", "problems_found": "发现问题"},
    "penalty_status": {"executing": "执行中", "completed": "执行完毕"},
    "rect_status": {"open": "整改中", "submitted": "已提交待审核", "closed": "已整改销号"},
    "origin": {"inspection": "检查发现", "online_monitoring": "在线监控", "complaint": "投诉举报", "other": "其他"},
    "method": {"manual": "手工", "automatic": "自动"},
    "month_state": {"ok": "达标", "exceed": "有超标", "nodata": "无有效数据"},
}

TONE_OF_STATUS = {
    "valid": "good",
    "expiring": "warning",
    "expired": "bad",
    "revoked": "bad",
    "cancelled": "bad",
    "deregistered": "bad",
}


@dataclass(frozen=True)
class Stamp:
    """The dates a page states about itself. None of them is the build's own date, so a page that
    did not change tomorrow is the same bytes tomorrow."""

    data_as_of: str | None  # the data shown is as of this date (a permit's pages: the record's own date)
    changed: str  # the export date of the night this page last changed
    kept_since: str | None = None  # tonight's record was rejected: the page shows the last good one


@dataclass(frozen=True)
class Common:
    """What every page's frame needs."""

    site: Site
    root: str  # relative path from the page to the site root, e.g. '../../'
    title: str
    path: str  # the page's own site-relative path ('' for the home page)
    labels: dict[str, dict[str, str]] = field(default_factory=lambda: LABELS)
    stamp: Stamp | None = None

    @property
    def url(self) -> str:
        return urls.absolute(self.site.base_url, self.path)


@dataclass(frozen=True)
class Place:
    city: str
    city_code: str
    county: str | None


@dataclass(frozen=True)
class Fact:
    """One line of the first screen: the answer and how it reads (good / warning / bad / neutral)."""

    label: str
    value: str
    tone: str
    href: str


@dataclass(frozen=True)
class Source:
    system: str
    extracted: str


@dataclass(frozen=True)
class Block:
    """A disclosure block's frame: where it comes from, and whether it is withheld or empty."""

    id: str
    title: str
    source: Source | None
    withheld: bool
    empty: bool


@dataclass(frozen=True)
class SelfResult:
    """A self-monitoring result as a row, judged against its limit."""

    date: str
    outlet: str
    pollutant: str  # the pollutant's name
    value: float | None
    unit: str
    limit: facts.Limit
    over: bool


@dataclass(frozen=True)
class OutletView:
    code: str
    name: str
    kind: str
    type: str | None
    href: str
    pollutants: list[View]
    strip: list[facts.MonthCell]
    monitored: bool
    raw: View
    # The outlet page's share of what the enterprise page computed: made once per enterprise.
    charts: list[charts.Chart]
    exceedances: list[facts.Exceedance]
    self_results: list[SelfResult]


@dataclass(frozen=True)
class EnterprisePage:
    common: Common
    view: View
    place: Place
    status: str
    status_label: str
    facts: list[Fact]
    blocks: dict[str, Block]
    outlets: list[OutletView]
    charts: list[charts.Chart]
    exceedances: list[facts.Exceedance]
    penalties: list[View]
    inspections: list[View]
    inspection_count: facts.InspectionCount
    rectifications: list[View]
    self_results: list[SelfResult]
    credit_tone: str | None
    months: list[str]  # labels of the strip's 12 months, oldest first
    names: dict[str, str]  # pollutant code → name
    signs_href: str  # site-relative: its signs on the county's download page


@dataclass(frozen=True)
class OutletPage:
    common: Common
    view: View
    place: Place
    outlet: OutletView
    enterprise_href: str
    status: str
    status_label: str
    status_tone: str
    charts: list[charts.Chart]
    exceedances: list[facts.Exceedance]
    self_results: list[SelfResult]
    months: list[str]
    names: dict[str, str]


BLOCKS = [
    ("permit", "排污许可与排放口"),
    ("online_monitoring", "在线监测"),
    ("self_monitoring", "自行监测"),
    ("inspections", "监督检查"),
    ("penalties", "行政处罚"),
    ("rectifications", "问题整改"),
    ("credit", "信用评价"),
    ("eia", "环评审批与竣工验收"),
    ("licenses", "行政许可"),
    ("total_emissions", "“两高”项目排放总量"),
    ("hazardous_waste", "危险废物"),
]


def month_labels(as_of: dt.date) -> list[str]:
    return [str(int(m[5:])) for m in facts.months_back(as_of)]


def root_of(path: str) -> str:
    return "../" * path.count("/")


def cn_date(value: dt.date | str) -> str:
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.year}年{day.month}月{day.day}日"


def _block(view: View, key: str, title: str) -> Block:
    data = view.get(key)
    source = Source(data["source"]["system"], data["source"]["extracted"]) if data and "source" in data else None
    if data is None:
        return Block(key, title, None, False, True)
    empty = not any(data.get(k) for k in ("items", "outlets", "series", "plan", "warnings", "level"))
    return Block(key, title, source, facts.withheld(data), empty)


# Monitored parameters that permits list without a limit (HJ 212-2017 codes).
PARAMETERS = {
    "w00000": "废水流量",
    "a00000": "废气流量",
    "a01011": "烟气流速",
    "a01012": "烟气温度",
    "a01014": "烟气湿度",
    "a19001": "氧含量",
}


def pollutant_names(view: View) -> dict[str, str]:
    return PARAMETERS | {
        p["code"]: p["name"] for o in view["permit"].get("outlets", []) for p in o.get("pollutants", []) if "name" in p
    }


def _outlets(
    view: View,
    permit_no: str,
    as_of: dt.date,
    from_path: str,
    all_charts: list[charts.Chart],
    exceedances: list[facts.Exceedance],
    self_results: list[SelfResult],
) -> list[OutletView]:
    """The permit's outlets, each with its part of the enterprise's charts, exceedances and
    self-monitoring rows (a filter keeps their order, so these are what the outlet alone gives)."""
    monitored = {s["outlet"] for s in facts.online_series(view)}
    out = []
    for o in view["permit"].get("outlets", []):
        code = o["code"]
        href = root_of(from_path) + urls.outlet_path(permit_no, code)
        strip = facts.monthly_strip(view, code, as_of) if code in monitored else []
        out.append(
            OutletView(
                code,
                o["name"],
                o["kind"],
                o.get("type"),
                href,
                o.get("pollutants", []),
                strip,
                code in monitored,
                o,
                charts=[c for c in all_charts if c.outlet == code],
                exceedances=[e for e in exceedances if e.outlet == code],
                self_results=[r for r in self_results if r.outlet == code],
            )
        )
    return out


def _charts(view: View, as_of: dt.date, names: dict[str, str]) -> list[charts.Chart]:
    return [charts.chart(view, s, names.get(s["pollutant"], s["pollutant"]), as_of) for s in facts.online_series(view)]


def _self_results(view: View, names: dict[str, str]) -> list[SelfResult]:
    """Self-monitoring results as rows, newest first, each judged against its limit."""
    block = view["self_monitoring"]
    if facts.withheld(block):
        return []
    rows = []
    for s in block.get("series", []):
        limit = facts.limit_for(view, s["outlet"], s["pollutant"], s.get("limit"))
        name = names.get(s["pollutant"], s["pollutant"])
        for day, value in zip(s["dates"], s["values"], strict=True):
            over = value is not None and limit.exceeded_by(value)
            rows.append(SelfResult(day, s["outlet"], name, value, s["unit"], limit, over))
    return sorted(rows, key=lambda r: (r.date, r.outlet, r.pollutant), reverse=True)


def first_screen(
    view: View, site: Site, status: str, credit_tone: str | None, exceedances: list[facts.Exceedance]
) -> list[Fact]:
    """The answers to "is this enterprise in order?", in the order the public asks them."""
    as_of = site.as_of
    permit = view["permit"]
    days = facts.days_to_expiry(view, as_of)
    if status == "valid":
        permit_text = f"有效，至 {cn_date(permit['valid_until'])}"
    elif status == "expiring":
        permit_text = f"即将到期：{cn_date(permit['valid_until'])}（还有 {days} 天）"
    elif status == "expired":
        permit_text = f"已过期：{cn_date(permit['valid_until'])} 到期"
    elif status == "deregistered":
        permit_text = "企业已注销" + (
            f"（{cn_date(view['enterprise']['deregistered'])}）" if view["enterprise"].get("deregistered") else ""
        )
    else:
        when = f"（{cn_date(permit['status_date'])}）" if permit.get("status_date") else ""
        permit_text = facts.STATUS_LABELS[status] + when
    out = [Fact(LABELS["permit_kind"][permit["kind"]], permit_text, TONE_OF_STATUS[status], "#permit")]

    credit = view.get("credit")
    if credit is None:
        out.append(Fact("信用评价", "暂未评价", "neutral", "#credit"))
    elif facts.withheld(credit):
        out.append(Fact("信用评价", "依法不予公开", "neutral", "#credit"))
    else:
        out.append(Fact("信用评价", f"{credit['level']}（{credit['year']} 年度）", credit_tone or "neutral", "#credit"))

    inspection = facts.latest_inspection(view)
    if facts.withheld(view["inspections"]):
        out.append(Fact("最近检查", "依法不予公开", "neutral", "#inspections"))
    elif inspection is None:
        out.append(Fact("最近检查", "暂无记录", "neutral", "#inspections"))
    else:
        result = inspection.get("result")
        text = (
            f"{cn_date(inspection['date'])}，{LABELS['result'][result]}"
            if result
            else f"{cn_date(inspection['date'])}（结果不予公开）"
        )
        out.append(
            Fact(
                "最近检查",
                text,
                "bad" if result == "problems_found" else "good" if result else "neutral",
                "#inspections",
            )
        )

    if facts.withheld(view["penalties"]):
        out.append(Fact(f"近{facts.PENALTY_YEARS}年行政处罚", "依法不予公开", "neutral", "#penalties"))
    else:
        n = len(facts.recent_penalties(view, as_of))
        out.append(
            Fact(f"近{facts.PENALTY_YEARS}年行政处罚", f"{n} 起" if n else "无", "bad" if n else "good", "#penalties")
        )

    online = view["online_monitoring"]
    if facts.withheld(online):
        out.append(Fact(f"近{facts.EXCEEDANCE_DAYS}天在线监测超标", "依法不予公开", "neutral", "#online_monitoring"))
    elif not online.get("installed") or not online.get("series"):
        out.append(Fact(f"近{facts.EXCEEDANCE_DAYS}天在线监测超标", "未安装在线监测", "neutral", "#online_monitoring"))
    else:
        n = len(exceedances)
        out.append(
            Fact(
                f"近{facts.EXCEEDANCE_DAYS}天在线监测超标",
                f"{n} 次（日均值）" if n else "无",
                "bad" if n else "good",
                "#online_monitoring",
            )
        )

    if facts.withheld(view["rectifications"]):
        out.append(Fact("未完成整改", "依法不予公开", "neutral", "#rectifications"))
    else:
        pending = facts.open_rectifications(view)
        late = sum(facts.overdue(r, as_of) for r in pending)
        text = (f"{len(pending)} 项" + (f"（{late} 项已逾期）" if late else "")) if pending else "无"
        out.append(Fact("未完成整改", text, "bad" if late else "warning" if pending else "good", "#rectifications"))
    return out


def enterprise_page(
    view: View, site: Site, place: Place, tones: dict[str, str], stamp: Stamp | None = None
) -> EnterprisePage:
    permit_no = view["permit_no"]
    path = urls.enterprise_path(permit_no)
    status = facts.permit_status(view, site.as_of)
    credit = view.get("credit")
    credit_tone = tones.get(credit["level"]) if credit and not facts.withheld(credit) else None
    exceedances = facts.exceedances(view, site.as_of)  # computed once: first screen, lists, events
    inspections = sorted(facts.items(view["inspections"]), key=lambda i: i["date"], reverse=True)
    penalties = sorted(facts.items(view["penalties"]), key=lambda p: p["date"], reverse=True)
    order = {"open": 0, "submitted": 1, "closed": 2}
    rects = sorted(facts.items(view["rectifications"]), key=lambda r: (order.get(r.get("status", ""), 3), r["found"]))
    names = pollutant_names(view)
    all_charts = _charts(view, site.as_of, names)
    self_results = _self_results(view, names)
    return EnterprisePage(
        common=Common(site, root_of(path), view["enterprise"]["name"], path, stamp=stamp),
        view=view,
        place=place,
        status=status,
        status_label=facts.STATUS_LABELS[status],
        facts=first_screen(view, site, status, credit_tone, exceedances),
        blocks={key: _block(view, key, title) for key, title in BLOCKS},
        outlets=_outlets(view, permit_no, site.as_of, path, all_charts, exceedances, self_results),
        charts=all_charts,
        exceedances=exceedances,
        penalties=penalties,
        inspections=inspections,
        inspection_count=facts.inspections_this_year(view, site.as_of),
        rectifications=rects,
        self_results=self_results,
        credit_tone=credit_tone,
        months=month_labels(site.as_of),
        names=names,
        signs_href=f"{urls.signs_listing_path(view['enterprise']['region'])}#{permit_no}",
    )


def outlet_page(view: View, site: Site, place: Place, outlet: OutletView, stamp: Stamp | None = None) -> OutletPage:
    """The page of one of `enterprise_page(view, ...).outlets`."""
    permit_no = view["permit_no"]
    path = urls.outlet_path(permit_no, outlet.code)
    status = facts.permit_status(view, site.as_of)
    return OutletPage(
        common=Common(
            site, root_of(path), f"{outlet.name}（{outlet.code}）· {view['enterprise']['name']}", path, stamp=stamp
        ),
        view=view,
        place=place,
        outlet=dataclasses.replace(outlet, href="./"),
        enterprise_href="../",
        status=status,
        status_label=facts.STATUS_LABELS[status],
        status_tone=TONE_OF_STATUS[status],
        charts=outlet.charts,
        exceedances=outlet.exceedances,
        self_results=outlet.self_results,
        months=month_labels(site.as_of),
        names=pollutant_names(view),
    )
