"""The public view: the one place where confidential content and personal data are removed.

Pages, signs, search and downloads read only this view, so nothing withheld can leak by a side
door. A withheld block or item stays visible as withheld (seed 000, Art. 7), so an absence is never
silent; personal data that an exporter left in free text is masked.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel

from .schema import Block, EnterpriseFile, Withholdable

MASK = "＊＊＊"
# Codes validated against strict patterns: never masked (a USCC can look like an ID number).
_IDENTIFIERS = frozenset({"permit_no", "uscc", "region", "code", "outlet", "pollutant", "flags", "id"})
MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")
ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
)


def scrub(text: str) -> str:
    """Mask private mobile numbers and resident ID numbers (GB 11643 shape, any check digit: a
    mistyped number is still somebody's) in free text."""
    return MOBILE.sub(MASK, ID_CARD.sub(MASK, text))


def public_view(record: EnterpriseFile) -> dict[str, Any]:
    """The record as it may be published: JSON-ready values, withheld parts marked `withheld`."""
    return _public(record)


def _public(obj: BaseModel) -> dict[str, Any]:
    """Withholdable parts always say whether they are withheld, so templates need no guessing:
    a withheld whole keeps only its identifying fields (and its source); a withheld field is None
    and named in `withheld_fields`."""
    withholdable = isinstance(obj, Withholdable)
    if withholdable and obj.confidential:
        out: dict[str, Any] = {"withheld": True}
        if isinstance(obj, Block):
            out["source"] = _public(obj.source)
        return out | {k: _value(k, getattr(obj, k)) for k in type(obj).model_fields if k in obj.always_public}
    hidden = set(obj.confidential_fields) if withholdable else set()
    out = {"withheld": False, "withheld_fields": sorted(hidden)} if withholdable else {}
    for name in type(obj).model_fields:
        if name not in ("confidential", "confidential_fields"):
            out[name] = None if name in hidden else _value(name, getattr(obj, name))
    return out


def _value(name: str, value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _public(value)
    if isinstance(value, list):
        return [_value(name, v) for v in value]
    if isinstance(value, str):
        return value if name in _IDENTIFIERS else scrub(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def secrets(record: EnterpriseFile, view: dict[str, Any] | None = None) -> set[str]:
    """The values the public view (`view`, made here if not given) withholds, texts of 4+ characters
    and numbers of 5+ digits, that it does not also show elsewhere: the verifier searches the built
    site for them, so whatever route a value took, it must not arrive."""
    found: set[str] = set()
    public = _leaves(view if view is not None else public_view(record))
    _withheld_values(record, False, found)
    return {s for s in found if s not in public}


def _withheld_values(obj: Any, hidden: bool, found: set[str]) -> None:
    if isinstance(obj, BaseModel):
        withholdable = isinstance(obj, Withholdable)
        for name in type(obj).model_fields:
            if name in ("confidential", "confidential_fields", "source"):
                continue
            secret = hidden or (
                withholdable
                and ((obj.confidential and name not in obj.always_public) or name in obj.confidential_fields)
            )
            _withheld_values(getattr(obj, name), secret, found)
    elif isinstance(obj, list):
        for v in obj:
            _withheld_values(v, hidden, found)
    elif hidden and isinstance(obj, str) and len(obj.strip()) >= 4:
        found.add(obj.strip())
    elif hidden and isinstance(obj, int | float) and not isinstance(obj, bool):
        text = f"{obj:g}"
        if len(text.replace(".", "").lstrip("0-")) >= 5:  # an amount, not a concentration like 0.014
            found.add(text)


def _leaves(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_leaves(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_leaves(v) for v in obj)) if obj else set()
    if isinstance(obj, str):
        return {obj.strip()}
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return {f"{obj:g}"}
    return set()
