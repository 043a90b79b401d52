"""Derived facts: pure functions of the public view and the data's as-of date.

Everything a page states that is not copied from the export is computed here and tested on its
own: permit status, recent penalties, exceedances, inspection caps, the monthly compliance strip.
A withheld block ({"withheld": True, ...}) yields no facts, never a wrong "none".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

View = dict[str, Any]
PermitStatus = Literal["valid", "expiring", "expired", "revoked", "cancelled", "deregistered"]
EXPIRY_WARNING_DAYS = 90
PENALTY_YEARS = 3
EXCEEDANCE_DAYS = 30
# Seed 002: each level inspects a firm at most twice a year, six times in all.
INSPECTION_CAP_PER_LEVEL = 2
INSPECTION_CAP_TOTAL = 6

STATUS_LABELS: dict[str, str] = {
    "valid": "有效",
    "expiring": "即将到期",
    "expired": "已过期",
    "revoked": "已撤销",
    "cancelled": "已注销",
    "deregistered": "企业已注销",
}


def date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def withheld(block: View | None) -> bool:
    return bool(block and block.get("withheld"))


def items(block: View | None) -> list[View]:
    """The public items of a block (withheld items included, marked); none when withheld whole."""
    if not block or withheld(block):
        return []
    return list(block.get("items", []))


def permit_status(view: View, as_of: dt.date) -> PermitStatus:
    """The permit's status on `as_of`: the exporter states revocation; expiry is computed."""
    if view["enterprise"]["status"] == "deregistered":
        return "deregistered"
    permit = view["permit"]
    if permit["status"] != "valid":
        return permit["status"]
    days = days_to_expiry(view, as_of)
    if days < 0:
        return "expired"
    return "expiring" if days <= EXPIRY_WARNING_DAYS else "valid"


def days_to_expiry(view: View, as_of: dt.date) -> int:
    return (date(view["permit"]["valid_until"]) - as_of).days


def recent_penalties(view: View, as_of: dt.date, years: int = PENALTY_YEARS) -> list[View]:
    """Penalties decided in the last `years` years, newest first."""
    since = as_of - dt.timedelta(days=round(365.25 * years))
    return sorted(
        (p for p in items(view["penalties"]) if date(p["date"]) > since), key=lambda p: p["date"], reverse=True
    )


def latest_inspection(view: View) -> View | None:
    found = items(view["inspections"])
    return max(found, key=lambda i: i["date"]) if found else None


@dataclass(frozen=True)
class InspectionCount:
    year: int
    by_level: dict[str, int]
    total: int
    cap_per_level: int = INSPECTION_CAP_PER_LEVEL
    cap_total: int = INSPECTION_CAP_TOTAL

    @property
    def over_cap(self) -> bool:
        return self.total > self.cap_total or any(n > self.cap_per_level for n in self.by_level.values())


def inspections_this_year(view: View, as_of: dt.date) -> InspectionCount:
    counts = Counter(
        i["level"] for i in items(view["inspections"]) if "level" in i and date(i["date"]).year == as_of.year
    )
    by_level = {level: counts.get(level, 0) for level in ("province", "city", "county")}
    return InspectionCount(as_of.year, by_level, sum(by_level.values()))


def open_rectifications(view: View) -> list[View]:
    return [r for r in items(view["rectifications"]) if r.get("status") in ("open", "submitted")]


def overdue(rectification: View, as_of: dt.date) -> bool:
    deadline = rectification.get("deadline")
    return rectification.get("status") != "closed" and deadline is not None and date(deadline) < as_of


# --- monitoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    high: float | None
    low: float | None
    unit: str | None

    def exceeded_by(self, value: float) -> bool:
        return (self.high is not None and value > self.high) or (self.low is not None and value < self.low)


def limit_for(view: View, outlet: str, pollutant: str, series_limit: float | None = None) -> Limit:
    """The series' own limit, else the permitted limit of that outlet and pollutant."""
    for o in view["permit"].get("outlets", []):
        if o["code"] == outlet:
            for p in o.get("pollutants", []):
                if p["code"] == pollutant:
                    high = series_limit if series_limit is not None else p.get("limit")
                    return Limit(high, p.get("limit_min"), p.get("unit"))
    return Limit(series_limit, None, None)


@dataclass(frozen=True)
class Reading:
    day: dt.date
    value: float | None
    flag: str

    @property
    def valid(self) -> bool:
        """Only HJ 212 'N' values count toward exceedances."""
        return self.flag == "N" and self.value is not None


def readings(series: View) -> Iterator[Reading]:
    day, one = date(series["start"]), dt.timedelta(days=1)
    for value, flag in zip(series["values"], series["flags"], strict=True):
        yield Reading(day, value, flag)
        day += one


def positions(start: dt.date, length: int, first: dt.date, last: dt.date) -> range:
    """Where the days `first`..`last` (inclusive) fall among `length` daily values from `start`.

    A series' days are consecutive, so a date window is an index window: the hot paths below read
    values by position instead of making a date (and a Reading) for every value of the series."""
    return range(max(0, (first - start).days), max(0, min(length, (last - start).days + 1)))


def online_series(view: View, outlet: str | None = None) -> list[View]:
    block = view["online_monitoring"]
    if withheld(block):
        return []
    return [s for s in block.get("series", []) if outlet is None or s["outlet"] == outlet]


@dataclass(frozen=True)
class Exceedance:
    outlet: str
    pollutant: str
    day: dt.date
    value: float
    limit: Limit


def exceedances(view: View, as_of: dt.date, days: int = EXCEEDANCE_DAYS, outlet: str | None = None) -> list[Exceedance]:
    """Valid daily values over the limit in the `days` days up to `as_of`, newest first."""
    first = as_of - dt.timedelta(days=days - 1)
    found = []
    for s in online_series(view, outlet):
        limit = limit_for(view, s["outlet"], s["pollutant"], s.get("limit"))
        start, values, flags = date(s["start"]), s["values"], s["flags"]
        for i in positions(start, len(values), first, as_of):
            value = values[i]
            if flags[i] == "N" and value is not None and limit.exceeded_by(value):
                found.append(Exceedance(s["outlet"], s["pollutant"], start + dt.timedelta(days=i), value, limit))
    return sorted(found, key=lambda e: (e.day, e.outlet, e.pollutant), reverse=True)


MonthState = Literal["ok", "exceed", "nodata"]


@dataclass(frozen=True)
class MonthCell:
    month: str  # YYYY-MM
    state: MonthState
    valid_values: int  # valid daily values of all pollutants in the month
    exceed_values: int


def months_back(as_of: dt.date, n: int = 12) -> list[str]:
    """The `n` calendar months ending with as_of's month, oldest first."""
    y, m = as_of.year, as_of.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def month_spans(as_of: dt.date, n: int = 12) -> list[tuple[str, dt.date, dt.date]]:
    """`months_back` with each month's first day and last day up to `as_of`."""
    spans = []
    for month in months_back(as_of, n):
        first = dt.date(int(month[:4]), int(month[5:]), 1)
        following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
        spans.append((month, first, min(following - dt.timedelta(days=1), as_of)))
    return spans


def monthly_strip(view: View, outlet: str, as_of: dt.date, n: int = 12) -> list[MonthCell]:
    """ECHO-style compliance by month for one outlet: any valid exceedance → exceed; no valid data → nodata."""
    spans = month_spans(as_of, n)
    valid, exceed = [0] * n, [0] * n
    for s in online_series(view, outlet):
        limit = limit_for(view, outlet, s["pollutant"], s.get("limit"))
        start, values, flags = date(s["start"]), s["values"], s["flags"]
        for k, (_, first, last) in enumerate(spans):
            for i in positions(start, len(values), first, last):
                value = values[i]
                if flags[i] == "N" and value is not None:
                    valid[k] += 1
                    exceed[k] += limit.exceeded_by(value)
    cells = []
    for k, (month, _, _) in enumerate(spans):
        state: MonthState = "nodata" if not valid[k] else ("exceed" if exceed[k] else "ok")
        cells.append(MonthCell(month, state, valid[k], exceed[k]))
    return cells


# --- what the build may reuse ------------------------------------------------------------------


def data_date(view: View) -> str | None:
    """The record's own date: the latest extraction date of its blocks (ISO). Pages show it rather
    than the export's date, so a record that did not change gives the same page tomorrow."""
    dates = [b["source"]["extracted"] for b in view.values() if isinstance(b, dict) and "source" in b]
    return max(dates) if dates else None


def stable_until(view: View, as_of: dt.date) -> dt.date:
    """The first date after `as_of` on which any fact above that depends on the date may change for
    this record (status, the penalty, exceedance and overdue windows, the months shown). Until then a
    page made from the same record is the same page, so the nightly build can keep it."""
    y, m = as_of.year, as_of.month
    candidates = [dt.date(y + (m == 12), m % 12 + 1, 1)]  # month labels, strips, inspections this year
    if view["enterprise"]["status"] != "deregistered" and view["permit"]["status"] == "valid":
        until = date(view["permit"]["valid_until"])
        candidates += [until - dt.timedelta(days=EXPIRY_WARNING_DAYS), until + dt.timedelta(days=1)]
        if permit_status(view, as_of) == "expiring":
            candidates.append(as_of + dt.timedelta(days=1))  # "还有 N 天" counts down daily
    keep = dt.timedelta(days=round(365.25 * PENALTY_YEARS))
    candidates += [date(p["date"]) + keep for p in items(view["penalties"])]
    candidates += [
        date(r["deadline"]) + dt.timedelta(days=1)
        for r in items(view["rectifications"])
        if r.get("status") != "closed" and r.get("deadline")
    ]
    window = dt.timedelta(days=EXCEEDANCE_DAYS)
    for s in online_series(view):
        limit = limit_for(view, s["outlet"], s["pollutant"], s.get("limit"))
        start, values, flags = date(s["start"]), s["values"], s["flags"]
        last = start + dt.timedelta(days=len(values) - 1)
        if last > as_of:  # a reading dated after the export date enters the charts when its day comes
            candidates.append(max(start, as_of + dt.timedelta(days=1)))
        # By position, as exceedances(): a date only for the few values over the limit.
        for i, (value, flag) in enumerate(zip(values, flags, strict=True)):
            if flag == "N" and value is not None and limit.exceeded_by(value):
                day = start + dt.timedelta(days=i)
                candidates += [day, day + window]
    return min(d for d in candidates if d > as_of)
