"""What changed since last night: events from two public views of one permit holder.

The nightly build compares each permit's public view of the previous export with tonight's and
says, in plain words, what a reader of the page would want to know: a new permit holder, a permit
status that moved, a new penalty, new exceedances, a rectification opened or closed, a holder that
left the export. Only the public view is read, and a withheld block or item yields no event: from a
withheld value (or a withheld side of the comparison) we cannot tell what is new, and an event must
never hint at what the page withholds.

Everything here is a pure function of the two views and their as-of dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import facts, urls
from .context import cn_date, pollutant_names
from .facts import View

# The kinds of change, in the order a night's events are listed: the most consequential first.
KINDS: tuple[str, ...] = (
    "removed",
    "new",
    "status",
    "penalty",
    "exceedance",
    "rectification_opened",
    "rectification_closed",
)
KIND_LABELS: dict[str, str] = {
    "removed": "退出公开名录",
    "new": "新增持证单位",
    "status": "许可状态变化",
    "penalty": "行政处罚",
    "exceedance": "在线监测超标",
    "rectification_opened": "新增整改",
    "rectification_closed": "整改销号",
}
# Beyond this many new exceedance days for one permit in one night, one summary event says how many:
# a lowered limit or a late batch of data must not bury every other change in the feed.
EXCEEDANCE_CAP = 3
PROBLEM_CHARS = 60  # a rectification's problem text is free text of up to 4,000 characters


@dataclass(frozen=True)
class Change:
    """One thing that changed for one permit holder, detected on the export date `date`."""

    permit_no: str
    name: str
    kind: str
    date: str  # ISO date: the as-of date of the export in which the change was seen
    title: str  # plain Chinese, without the holder's name (lists show the name beside it)
    path: str  # the holder's page, site-relative (urls.enterprise_path)
    key: str  # what identifies the change within its permit and kind (a decision number, a day…)

    @property
    def id(self) -> str:
        """Stable within a night: '<permit>/<kind>/<key>', the key percent-encoded so the id is
        plain ASCII that fits in a tag URI (feed.py prefixes the host and the date)."""
        return f"{self.permit_no}/{self.kind}/{quote(self.key, safe='')}"

    @property
    def order(self) -> int:
        """Rank of the kind in KINDS (an unknown kind, e.g. from an older feed, last)."""
        return KINDS.index(self.kind) if self.kind in KINDS else len(KINDS)


def events(
    permit_no: str, before: View | None, after: View | None, before_as_of: dt.date | None, after_as_of: dt.date
) -> list[Change]:
    """The changes between the previous export's view (`before`, None if the permit is new) and
    tonight's (`after`, None if it left the export), each side judged on its own as-of date."""
    if before is None and after is None:
        return []
    path = urls.enterprise_path(permit_no)
    date = after_as_of.isoformat()
    if before is None:
        assert after is not None
        holder = "排污许可证持证单位" if after["permit"]["kind"] == "permit" else "排污登记单位"
        return [Change(permit_no, _name(after), "new", date, f"新增{holder}", path, after["permit"]["issued"])]
    if after is None:
        key = before_as_of.isoformat() if before_as_of else "-"
        return [Change(permit_no, _name(before), "removed", date, "持证单位不再出现在本次导出数据中", path, key)]
    assert before_as_of is not None, "a previous view needs its as-of date"
    name = _name(after)
    found = [
        Change(permit_no, name, kind, date, title, path, key)
        for kind, title, key in (
            *_status(before, after, before_as_of, after_as_of),
            *_penalties(before, after),
            *_exceedances(before, after, after_as_of),
            *_rectifications(before, after),
        )
    ]
    return sorted(found, key=lambda c: (c.order, c.key))


def last_changed(previous: str | None, changed: bool, as_of: dt.date) -> str:
    """The date a page last changed: tonight if it changed (or was never seen), else as before."""
    return as_of.isoformat() if changed or previous is None else previous


def from_document(document: dict[str, Any]) -> tuple[View, dt.date]:
    """The view and as-of date from a published `P/<permit>/data.json` (opendata.document), which
    is where last night's view can be read back from the live site."""
    view = {k: v for k, v in document.items() if k not in ("url", "as_of")}
    return view, dt.date.fromisoformat(document["as_of"])


# --- the kinds of change -----------------------------------------------------------------------

Found = Iterator[tuple[str, str, str]]  # kind, title, key


def _name(view: View) -> str:
    return view["enterprise"]["name"]


def _status(before: View, after: View, before_as_of: dt.date, after_as_of: dt.date) -> Found:
    old, new = facts.permit_status(before, before_as_of), facts.permit_status(after, after_as_of)
    if old != new:
        what = "许可证状态" if after["permit"]["kind"] == "permit" else "排污登记状态"
        yield "status", f"{what}：{facts.STATUS_LABELS[old]} → {facts.STATUS_LABELS[new]}", f"{old}-{new}"


def _penalties(before: View, after: View) -> Found:
    """New decision numbers. A number seen before, even on a withheld item (the number is always
    public), is not new; a withheld new item says nothing, as its page entry does not either."""
    if facts.withheld(before["penalties"]):
        return
    known = {p["decision_no"] for p in before["penalties"].get("items", [])}
    seen: set[str] = set()
    for p in facts.items(after["penalties"]):
        number = p["decision_no"]
        if p.get("withheld") or number in known or number in seen:
            continue
        seen.add(number)
        fine = p.get("fine_yuan")  # None when withheld as a field
        yield "penalty", f"新增行政处罚：{number}" + (f"（罚款 {_yuan(fine)} 元）" if fine else ""), number


def _yuan(amount: float) -> str:
    return f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"


def _exceedances(before: View, after: View, after_as_of: dt.date) -> Found:
    """Valid (HJ 212 'N') daily values over the limit in the window the page shows
    (facts.EXCEEDANCE_DAYS) that were not such in `before`: new days, revised values or flags.
    Older days that turn into exceedances (a lowered limit re-reading a year of data) are left out:
    the page does not show them either."""
    if facts.withheld(before["online_monitoring"]):
        return
    if before["online_monitoring"] == after["online_monitoring"] and before["permit"] == after["permit"]:
        return  # same data, same limits: nothing in the window can be new (and most records are unchanged)
    fresh = [e for e in facts.exceedances(after, after_as_of) if not _was_exceedance(before, e)]
    if not fresh:
        return
    names = pollutant_names(after)
    if len(fresh) > EXCEEDANCE_CAP:
        days = sorted(e.day for e in fresh)
        pairs = sorted({(e.outlet, names.get(e.pollutant, e.pollutant)) for e in fresh})
        where = "、".join(f"{o} {p}" for o, p in pairs[:2]) + ("等" if len(pairs) > 2 else "")
        span = f"{cn_date(days[0])}至{cn_date(days[-1])}"
        yield "exceedance", f"新增 {len(fresh)} 条超标记录：{where}，{span}", f"{days[0]}~{days[-1]}~{len(fresh)}"
        return
    for e in fresh:
        unit = f" {e.limit.unit}" if e.limit.unit else ""
        title = (
            f"新增超标记录：{e.outlet} {names.get(e.pollutant, e.pollutant)} {cn_date(e.day)}"
            f"（日均值 {e.value:g}{unit}，限值 {_limit(e.limit)}{unit}）"
        )
        yield "exceedance", title, f"{e.outlet}~{e.pollutant}~{e.day}"


def _limit(limit: facts.Limit) -> str:
    if limit.high is not None and limit.low is not None:
        return f"{limit.low:g}–{limit.high:g}"
    return f"{limit.high:g}" if limit.high is not None else f"≥{limit.low:g}"


def _was_exceedance(before: View, e: facts.Exceedance) -> bool:
    """Whether `before` held the same day as an exceedance, by facts' rules and before's own limit.
    Looked up by index rather than re-reading every series: this runs for every permit each night."""
    for s in facts.online_series(before, e.outlet):
        if s["pollutant"] != e.pollutant:
            continue
        i = (e.day - facts.date(s["start"])).days
        if 0 <= i < len(s["values"]):
            reading = facts.Reading(e.day, s["values"][i], s["flags"][i])
            limit = facts.limit_for(before, e.outlet, e.pollutant, s.get("limit"))
            if reading.valid and limit.exceeded_by(reading.value):  # type: ignore[arg-type]
                return True
    return False


def _rectifications(before: View, after: View) -> Found:
    """By rectification id. The status is always public, so a closing is told even when the item
    was withheld before; the title quotes the problem, so withheld items of tonight say nothing."""
    if facts.withheld(before["rectifications"]):
        return
    was = {r["id"]: r.get("status") for r in before["rectifications"].get("items", [])}
    seen: set[str] = set()
    for r in facts.items(after["rectifications"]):
        rid = r["id"]
        if r.get("withheld") or rid in seen:
            continue
        seen.add(rid)
        problem = _short(r["problem"])
        if r["status"] == "closed" and was.get(rid, "new") != "closed":
            yield "rectification_closed", f"整改事项已关闭：{problem}", rid
        elif r["status"] != "closed" and rid not in was:
            yield "rectification_opened", f"新增整改事项：{problem}", rid
        elif r["status"] != "closed" and was[rid] == "closed":  # a closing the department took back
            yield "rectification_opened", f"整改事项重新打开：{problem}", rid


def _short(text: str) -> str:
    """One line (a title in a feed reader or a list), cut to PROBLEM_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= PROBLEM_CHARS else text[: PROBLEM_CHARS - 1] + "…"
