"""Derived facts, each a pure function tested on its own."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yimatong import charts, facts

AS_OF = dt.date(2026, 11, 20)


def view(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "permit_no": "91450600MA5K3XY21D001P",
        "enterprise": {"status": "operating", "name": "测试"},
        "permit": {
            "status": "valid",
            "valid_until": "2028-01-01",
            "outlets": [
                {
                    "code": "DA001",
                    "pollutants": [
                        {"code": "a21026", "name": "二氧化硫", "limit": 35, "limit_min": None, "unit": "mg/m³"}
                    ],
                },
                {
                    "code": "DW001",
                    "pollutants": [{"code": "w01001", "name": "pH值", "limit": 9, "limit_min": 6, "unit": "无量纲"}],
                },
            ],
        },
        "online_monitoring": {"installed": True, "series": [], "warnings": []},
        "penalties": {"items": []},
        "inspections": {"items": []},
        "rectifications": {"items": []},
    }
    for key, value in over.items():
        base[key] = value if not isinstance(value, dict) else {**base.get(key, {}), **value}
    return base


def test_permit_status_boundaries() -> None:
    assert facts.permit_status(view(permit={"valid_until": "2027-02-19"}), AS_OF) == "valid"  # 91 days
    assert facts.permit_status(view(permit={"valid_until": "2027-02-18"}), AS_OF) == "expiring"  # 90 days
    assert facts.permit_status(view(permit={"valid_until": "2026-11-20"}), AS_OF) == "expiring"  # last day
    assert facts.permit_status(view(permit={"valid_until": "2026-11-19"}), AS_OF) == "expired"
    assert facts.permit_status(view(permit={"status": "revoked"}), AS_OF) == "revoked"
    assert (
        facts.permit_status(view(enterprise={"status": "deregistered"}, permit={"status": "cancelled"}), AS_OF)
        == "deregistered"
    )


def _series(
    values: list[float | None], flags: str, outlet: str = "DA001", pollutant: str = "a21026", start: str = "2026-11-16"
) -> dict[str, Any]:
    return {
        "outlet": outlet,
        "pollutant": pollutant,
        "unit": "mg/m³",
        "limit": None,
        "start": start,
        "step": "day",
        "values": values,
        "flags": flags,
    }


def test_only_valid_values_count_as_exceedances() -> None:
    s = _series([40, 50, 60, 10, 36], "NFMNN")  # 16th N 40 over; 17th F; 18th M; 19th ok; 20th N 36 over
    found = facts.exceedances(view(online_monitoring={"series": [s]}), AS_OF)
    assert [(e.day.day, e.value) for e in found] == [(20, 36), (16, 40)]


def test_low_limits_count_too_and_the_window_is_thirty_days() -> None:
    ph = _series([5.5, 7.0], "NN", outlet="DW001", pollutant="w01001", start="2026-10-21")  # 30 days back: outside
    ph2 = _series([5.5], "N", outlet="DW001", pollutant="w01001", start="2026-10-22")
    assert facts.exceedances(view(online_monitoring={"series": [ph]}), AS_OF) == []
    assert len(facts.exceedances(view(online_monitoring={"series": [ph2]}), AS_OF)) == 1


def test_withheld_monitoring_gives_no_facts() -> None:
    v = view(online_monitoring={"withheld": True, "series": [_series([99], "N")]})
    assert facts.exceedances(v, AS_OF) == [] and facts.online_series(v) == []


def test_monthly_strip_states() -> None:
    sep = _series([10.0] * 30, "N" * 30, start="2026-09-01")
    octo = _series([10.0] * 30 + [99.0], "N" * 31, start="2026-10-01")
    nov = _series([99.0] * 5, "FFFFF", start="2026-11-01")  # only stopped values: no valid data
    strip = facts.monthly_strip(view(online_monitoring={"series": [sep, octo, nov]}), "DA001", AS_OF)
    assert [c.month for c in strip][-3:] == ["2026-09", "2026-10", "2026-11"]
    assert [c.state for c in strip][-3:] == ["ok", "exceed", "nodata"]
    assert strip[0].month == "2025-12" and strip[0].state == "nodata"


def test_inspection_caps_per_level_and_total() -> None:
    items = [
        {"date": f"2026-0{m}-01", "level": lvl} for m, lvl in [(1, "city"), (2, "city"), (3, "city"), (4, "county")]
    ]
    items.append({"date": "2025-05-01", "level": "province"})  # last year: not counted
    count = facts.inspections_this_year(view(inspections={"items": items}), AS_OF)
    assert count.by_level == {"province": 0, "city": 3, "county": 1} and count.total == 4
    assert count.over_cap  # three by the city bureau


def test_recent_penalties_and_open_rectifications() -> None:
    v = view(
        penalties={"items": [{"date": "2023-11-21"}, {"date": "2023-11-19"}, {"date": "2026-01-05"}]},
        rectifications={
            "items": [{"status": "open", "deadline": "2026-10-01"}, {"status": "closed"}, {"status": "submitted"}]
        },
    )
    assert [p["date"] for p in facts.recent_penalties(v, AS_OF)] == ["2026-01-05", "2023-11-21"]
    pending = facts.open_rectifications(v)
    assert len(pending) == 2 and facts.overdue(pending[0], AS_OF) and not facts.overdue(pending[1], AS_OF)


def test_chart_geometry() -> None:
    assert charts.nice_top(37) == 40 and charts.nice_top(0.8) == 1.0 and charts.nice_top(120) == 150
    c = charts.chart(view(), _series([10, None, 20, 40], "NNNN", start="2026-11-17"), "二氧化硫", AS_OF)
    assert c.valid_days == 3 and c.exceed_days == 1
    assert c.line.startswith("M0 ") and c.line.count("M") == 2  # the gap breaks the line
    assert c.other == "M1 100v-5"
    assert c.limit_y is not None and 0 < c.limit_y < 100
