"""Monitoring charts as inline-SVG geometry (no JavaScript), plus the same data as table rows.

The chart is drawn in a 0..N × 0..100 box stretched to the page width; strokes do not scale, and
dots are zero-length round-capped segments, so a year of daily values stays a few kilobytes.

Everything here reads a series by position (its days are consecutive from `start`): a chart is
built once per series and a page can show thousands of daily values, so no date or object is made
per value except where a row shows one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from .facts import Limit, Reading, View, date, limit_for, month_spans, positions
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
    day_count: int  # rows of the daily table: the days up to as_of
    day_rows: Markup  # the daily table's rows, escaped (see `day_rows`)


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


def _num(x: float | None) -> str:
    """As the templates' `num` filter writes a number."""
    return "—" if x is None else f"{x:g}"


def _bounds(limit: Limit) -> tuple[float, float]:
    """The limit as two comparisons that need no None check: `v > high or v < low` is
    `limit.exceeded_by(v)`."""
    return (math.inf if limit.high is None else limit.high, -math.inf if limit.low is None else limit.low)


def chart(view: View, series: View, pollutant_name: str, as_of: dt.date) -> Chart:
    limit = limit_for(view, series["outlet"], series["pollutant"], series.get("limit"))
    start, values, flags = date(series["start"]), series["values"], series["flags"]
    if len(values) != len(flags):
        raise ValueError(f"series {series['outlet']}/{series['pollutant']}: {len(values)} values, {len(flags)} flags")
    n = len(positions(start, len(values), start, as_of))  # the days up to as_of
    valid = [v for v, f in zip(values[:n], flags, strict=False) if f == "N" and v is not None]
    top = nice_top(max([*valid, limit.high or 0], default=1))
    high, low = _bounds(limit)
    line, dots, other = [], [], []
    heights: dict[float, float] = {}  # value → y; readings repeat, and rounding is the costly part
    steps: dict[float, str] = {}  # y - previous y → its path segment
    prev: float | None = None
    for x in range(n):
        value = values[x]
        if flags[x] != "N" or value is None:
            other.append(f"M{x} {HEIGHT}v-5")
            prev = None
            continue
        y = heights.get(value)
        if y is None:
            y = heights[value] = _y(value, top)
        if prev is None:
            line.append(f"M{x} {y:g}")
        else:
            step = steps.get(y - prev)
            if step is None:
                step = steps[y - prev] = f"l1 {_num(round(y - prev, 1))}"
            line.append(step)
        prev = y
        if value > high or value < low:
            dots.append(f"M{x} {y:g}h0")
    width = max(n, 2)
    ticks = []
    month = start if start.day == 1 else dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    while (x := (month - start).days) < n:
        ticks.append((round(x / width * 100, 1), str(month.month)))
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
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
        first=start if n else as_of,
        last=start + dt.timedelta(days=n - 1) if n else as_of,
        exceed_days=len(dots),
        valid_days=len(valid),
        months=_month_rows(start, values[:n], flags[:n], limit, as_of),
        day_count=n,
        day_rows=day_rows(start, values[:n], flags[:n], limit),
    )


DAY_ROW = '<tr><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>\n'


def day_rows(start: dt.date, values: Sequence[float | None], flags: str, limit: Limit) -> Markup:
    """The daily table's rows: date, value, flag, 超标 when a valid value is over the limit.

    Made here rather than looped over in the template: an outlet page holds a row per day of each of
    its series (thousands), and a template loop over them cost more than the rest of the page. The
    template keeps the table around them; the only text that is not a date or a number, the flag's
    label, is escaped."""
    labels = {f: escape(HJ212_FLAGS.get(f, f)) for f in set(flags)}
    high, low = _bounds(limit)
    shown = ["—" if v is None else f"{v:g}" for v in values]  # _num, inlined
    names = [labels[f] for f in flags]
    over = [
        "超标" if f == "N" and v is not None and (v > high or v < low) else ""
        for v, f in zip(values, flags, strict=True)
    ]
    return Markup("".join(map(DAY_ROW.format, iso_days(start, len(values)), shown, names, over)))


DAY_OF_MONTH = [f"-{d:02d}" for d in range(32)]


def iso_days(start: dt.date, n: int) -> list[str]:
    """The ISO dates of `n` consecutive days from `start`, as month prefix + day (no date objects)."""
    out: list[str] = []
    month, day = start.replace(day=1), start.day
    while len(out) < n:
        following = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        last = min((following - month).days, day + n - len(out) - 1)
        prefix = month.isoformat()[:7]
        out += [prefix + DAY_OF_MONTH[d] for d in range(day, last + 1)]
        month, day = following, 1
    return out


def month_rows(days: list[Reading], limit: Limit, as_of: dt.date) -> list[MonthRow]:
    """The monthly table of consecutive daily readings (as `facts.readings` yields them)."""
    if not days:
        return _month_rows(as_of, [], "", limit, as_of)
    if (days[-1].day - days[0].day).days != len(days) - 1:
        raise ValueError("month_rows takes consecutive days")
    return _month_rows(days[0].day, [r.value for r in days], "".join(r.flag for r in days), limit, as_of)


def _month_rows(
    start: dt.date, values: Sequence[float | None], flags: str, limit: Limit, as_of: dt.date
) -> list[MonthRow]:
    high, low = _bounds(limit)
    rows = []
    for month, first, last in month_spans(as_of):
        span = positions(start, len(values), first, last)
        month_values, month_flags = values[span.start : span.stop], flags[span.start : span.stop]
        got = [v for v, f in zip(month_values, month_flags, strict=True) if f == "N" and v is not None]
        others: dict[str, int] = defaultdict(int)
        if len(got) < len(month_values):
            for v, f in zip(month_values, month_flags, strict=True):
                if f != "N" or v is None:
                    others[HJ212_FLAGS.get(f, f) if f != "N" else "无数据"] += 1
        rows.append(
            MonthRow(
                month,
                len(got),
                min(got) if got else None,
                round(sum(got) / len(got), 2) if got else None,
                max(got) if got else None,
                sum(1 for v in got if v > high or v < low),
                "，".join(f"{k} {n}" for k, n in sorted(others.items())),
            )
        )
    return rows
