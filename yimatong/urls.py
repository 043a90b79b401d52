"""Permanent addresses. Pages, QR codes, the sitemap and verification all call these.

Signs are printed on steel and hang for years, so these must never change. Paths use only
upper-case letters, digits and '/', so with the scheme and host upper-cased (they are
case-insensitive) a URL fits QR alphanumeric mode, giving coarser, easier-to-scan codes.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .identifiers import OUTLET_PATTERN, PERMIT_PATTERN, city_code

_PERMIT = re.compile(PERMIT_PATTERN)
_OUTLET = re.compile(OUTLET_PATTERN)


def enterprise_path(permit_no: str) -> str:
    """The site-relative directory of a permit holder's page, e.g. 'P/91450600MA5K3XY21D001P/'."""
    if not _PERMIT.match(permit_no):  # the schema guarantees it; this guards every other caller
        raise ValueError(f"not a permit number: {permit_no!r}")
    return f"P/{permit_no}/"


def outlet_path(permit_no: str, outlet: str) -> str:
    if not _OUTLET.match(outlet):
        raise ValueError(f"not an outlet code: {outlet!r}")
    return f"{enterprise_path(permit_no)}{outlet}/"


def signs_listing_path(region: str) -> str:
    """The sign downloads of a county's permit holders (a city's own, for a city-level region code),
    e.g. 'signs/450100/450103/': per county, since a city's list reaches 7,000 holders at scale."""
    if not re.fullmatch(r"[0-9]{6}", region):
        raise ValueError(f"not a region code: {region!r}")
    return f"signs/{city_code(region)}/{region}/"


def absolute(base_url: str, path: str) -> str:
    return base_url + path


def qr_url(base_url: str, path: str) -> str:
    """The URL a sign's QR code carries: the permanent address in QR alphanumeric form. Only the
    scheme and host are upper-cased (they are case-insensitive); a path prefix of the base URL keeps
    its case, since web servers match paths case-sensitively (it then costs a byte-mode segment)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}".upper() + parts.path + path
