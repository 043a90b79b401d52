"""Monitoring charts as inline-SVG geometry (no JavaScript), plus the same data as table rows.

The chart is drawn in a 0..N × 0..100 box stretched to the page width; strokes do not scale, and
dots are zero-length round-capped segments, so a year of daily values stays a few kilobytes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

from .facts import Limit, Reading, View, limit_for, months_back, readings
from .schema import HJ212_FLAGS

HEIGHT = 100


@dataclass(frozen=True)
class MonthRow:
    month: str
    valid: int
    low: float | None
    mean: float | None
    high: float | None
    exceed: int
    other: str  # non-N days by flag, e.g. "停运 6，校准 2"


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    value: float | None
    flag: str
    flag_label: str
    exceed: bool


@dataclass(frozen=True)
class Chart:
    id: str
    outlet: str
    pollutant: str
    name: str
    unit: str
    limit: Limit
    width: int
    line: str  # valid (N) values
    exceed: str  # dots on valid values over the limit
    other: str  # ticks at the foot for days without a valid value
    limit_y: float | None
    low_y: float | None
    top: float  # the value at the top of the box
    ticks: list[tuple[float, str]]  # left edge in % of the width, month label
    first: dt.date
    last: dt.date
    exceed_days: int
    valid_days: int
    months: list[MonthRow]
    days: list[DayRow]


def nice_top(value: float) -> float:
    """A round number a little above `value` for the top of the axis."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * exp >= value * 1.05:
            return step * exp
    return 10 * exp


def _y(value: float, top: float) -> float:
    return round(HEIGHT - min(value, top) / top * HEIGHT, 1)


def _num(x: float) -> str:
    return f"{x:g}"


def chart(view: View, series: View, pollutant_name: str, as_of: dt.date) -> Chart:
    limit = limit_for(view, series["outlet"], series["pollutant"], series.get("limit"))
    days = [r for r in readings(series) if r.day <= as_of]
    valid = [r for r in days if r.valid]
    top = nice_top(max([r.value for r in valid] + [limit.high or 0], default=1))
    line, dots, other = [], [], []
    prev: float | None = None
    for x, r in enumerate(days):
        if not r.valid:
            other.append(f"M{x} {HEIGHT}v-5")
            prev = None
            continue
        y = _y(r.value, top)
        line.append(f"l1 {_num(round(y - prev, 1))}" if prev is not None else f"M{x} {_num(y)}")
        prev = y
        if limit.exceeded_by(r.value):
            dots.append(f"M{x} {_num(y)}h0")
    width = max(len(days), 2)
    ticks = [(round(x / width * 100, 1), str(r.day.month)) for x, r in enumerate(days) if r.day.day == 1]
    flags = series["flags"]
    return Chart(
        id=f"{series['outlet']}-{series['pollutant']}",
        outlet=series["outlet"],
        pollutant=series["pollutant"],
        name=pollutant_name,
        unit=series["unit"],
        limit=limit,
        width=width,
        line="".join(line),
        exceed="".join(dots),
        other="".join(other),
        limit_y=_y(limit.high, top) if limit.high is not None else None,
        low_y=_y(limit.low, top) if limit.low is not None else None,
        top=top,
        ticks=ticks,
        first=days[0].day if days else as_of,
        last=days[-1].day if days else as_of,
        exceed_days=len(dots),
        valid_days=len(valid),
        months=month_rows(days, limit, as_of),
        days=[
            DayRow(r.day, r.value, r.flag, HJ212_FLAGS.get(r.flag, r.flag), r.valid and limit.exceeded_by(r.value))
            for r in days
        ]
        if flags
        else [],
    )


def month_rows(days: list[Reading], limit: Limit, as_of: dt.date) -> list[MonthRow]:
    by_month: dict[str, list[Reading]] = defaultdict(list)
    for r in days:
        by_month[r.day.isoformat()[:7]].append(r)
    rows = []
    for month in months_back(as_of):
        got = by_month.get(month, [])
        values = [r.value for r in got if r.valid]
        others: dict[str, int] = defaultdict(int)
        for r in got:
            if not r.valid:
                others[HJ212_FLAGS.get(r.flag, r.flag) if r.flag != "N" else "无数据"] += 1
        rows.append(
            MonthRow(
                month,
                len(values),
                min(values) if values else None,
                round(sum(values) / len(values), 2) if values else None,
                max(values) if values else None,
                sum(1 for v in values if limit.exceeded_by(v)),
                "，".join(f"{k} {n}" for k, n in sorted(others.items())),
            )
        )
    return rows
