"""Identifier formats: unified social credit code, permit number, outlet code, region code.

Pure functions; the patterns are also used by the schema, so a value that passes validation is
safe to use in a file name or URL (only ASCII letters and digits).
"""

from __future__ import annotations

import re

# GB 32100-2015: 18 characters from this alphabet (no I, O, S, V, Z); the last is a check character.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{18}$"
# HJ 608-2017: USCC + 3-digit site sequence + one letter (P for a permit, W/X for registrations).
PERMIT_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{18}[0-9]{3}[A-Z]$"
# Air outlets DA###, water outlets DW###; solid-waste storage/disposal facilities: two letters + 3 digits.
OUTLET_PATTERN = r"^(D[AW]|[A-Z]{2})[0-9]{3}$"
REGION_PATTERN = r"^45[0-9]{4}$"

_USCC_RE = re.compile(USCC_PATTERN)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters of a USCC."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_check_ok(uscc: str) -> bool:
    """True when the USCC's last character is the right check character."""
    return bool(_USCC_RE.match(uscc)) and uscc_check_char(uscc[:17]) == uscc[17]


def normalise_code(text: str) -> str:
    """A code as people type or paste it: upper case, no spaces or hyphens."""
    return re.sub(r"[\s\-]", "", text).upper()


def city_code(region: str) -> str:
    """The prefecture-level city that a city or county code (GB/T 2260) belongs to."""
    return region[:4] + "00"
