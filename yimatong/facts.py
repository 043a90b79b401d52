"""Derived facts: pure functions of the public view and the data's as-of date."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

PermitStatus = Literal["valid", "expiring", "expired", "revoked", "cancelled", "deregistered"]
EXPIRY_WARNING_DAYS = 90

STATUS_LABELS: dict[str, str] = {
    "valid": "有效",
    "expiring": "即将到期",
    "expired": "已过期",
    "revoked": "已撤销",
    "cancelled": "已注销",
    "deregistered": "企业已注销",
}


def permit_status(view: dict[str, Any], as_of: dt.date) -> PermitStatus:
    """The permit's status on `as_of`: the exporter states revocation; expiry is computed."""
    if view["enterprise"]["status"] == "deregistered":
        return "deregistered"
    permit = view["permit"]
    if permit["status"] != "valid":
        return permit["status"]
    until = dt.date.fromisoformat(permit["valid_until"])
    if until < as_of:
        return "expired"
    if (until - as_of).days <= EXPIRY_WARNING_DAYS:
        return "expiring"
    return "valid"
