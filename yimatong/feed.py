"""The "what changed" feed: `feed.xml`, Atom 1.0 (RFC 4287), and the home page's recent changes.

Each night's changes (changes.py) come first; entries of the previous night's feed are carried over
for `days` days, at most `limit` entries in all, so a reader who checks weekly misses nothing. The
feed is the store of past changes: nothing else keeps them, and the home page's list reads it too.

Output is byte-identical for the same input: the only date written is the export's as-of date
(never the wall clock), entries keep a fixed order, and XML is written by ElementTree, which escapes
every name and title. Entry ids are tag URIs (RFC 4151) made from the host, the night the change was
seen and the change's id, so a reader never sees the same change twice and a rebuild of the same
night replaces its own entries instead of adding to them.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from . import urls
from .changes import KIND_LABELS, Change
from .errors import YimatongError
from .schema import Site

ATOM = "http://www.w3.org/2005/Atom"
FEED_PATH = "feed.xml"
LIMIT = 500
DAYS = 90
# The export dates are Chinese calendar days; Atom needs a time, so midnight in China.
_MIDNIGHT = "T00:00:00+08:00"
_TAG = re.compile(r"^tag:[^,]+,([0-9]{4}-[0-9]{2}-[0-9]{2}):([0-9A-Z]+)/([a-z_]+)/(.+)$")
_A = f"{{{ATOM}}}"


class FeedUnreadable(YimatongError):
    """The previous feed.xml is not XML: its entries cannot be carried over."""


@dataclass(frozen=True)
class Entry:
    """A feed entry: its id as published (kept verbatim, so it never changes) and its change."""

    id: str
    change: Change


class Recent(NamedTuple):
    """A line of the home page's list of recent changes (fits pages.Event: `Event(*r)`)."""

    date: str
    title: str
    name: str
    path: str


def tag(site: Site, change: Change) -> str:
    host = urlsplit(site.base_url).hostname
    return f"tag:{host},{change.date}:{change.id}"


def atom(
    changes: list[Change],
    previous_feed: bytes | None,
    site: Site,
    limit: int = LIMIT,
    days: int = DAYS,
    present: Collection[str] | None = None,
) -> bytes:
    """The feed for tonight: `changes` first (most consequential kinds first), then the previous
    feed's entries dated within the `days` days up to site.as_of, at most `limit` entries in all.
    `present`: the enterprise page paths of tonight's build, when given; an entry of a holder whose
    page is gone (removed from the export) then links to the home page, not to a missing page."""
    tonight = sorted(changes, key=lambda c: (c.order, c.permit_no, c.key))
    since = (site.as_of - dt.timedelta(days=days)).isoformat()
    until = site.as_of.isoformat()
    older = [e for e in (read(previous_feed) if previous_feed else []) if since < e.change.date <= until]
    chosen: dict[str, Entry] = {}
    for e in [Entry(tag(site, c), c) for c in tonight] + older:
        chosen.setdefault(e.id, e)  # tonight's wording wins over a rebuild's earlier one
    return _write(list(chosen.values())[:limit], site, present)


def read(feed: bytes) -> list[Entry]:
    """The entries of a feed this module wrote, in feed order. Entries it cannot read back
    (not written here) are skipped; a file that is not XML at all is an error."""
    try:
        root = ET.fromstring(feed)
    except ET.ParseError as e:
        raise FeedUnreadable(f"{FEED_PATH} 无法解析，以往的变更无法保留：{e}") from e
    found = []
    for node in root.iter(f"{_A}entry"):
        entry = _entry(node)
        if entry is not None:
            found.append(entry)
    return found


def recent(source: bytes | list[Change], n: int, present: Collection[str] | None = None) -> list[Recent]:
    """The newest `n` changes, from a feed (what the home page should read: it holds past nights
    too) or from a list of changes; ties keep the feed's order. With `present` (as for atom()), a
    holder whose page is gone gets the path '' (the home page)."""
    changes = [e.change for e in read(source)] if isinstance(source, bytes) else source
    newest = sorted(changes, key=lambda c: c.date, reverse=True)  # stable: keeps order within a night
    return [Recent(c.date, c.title, c.name, _path(c, present)) for c in newest[:n]]


def _path(change: Change, present: Collection[str] | None) -> str:
    return change.path if present is None or change.path in present else ""


# --- writing and reading ---------------------------------------------------------------------


def _write(entries: list[Entry], site: Site, present: Collection[str] | None) -> bytes:
    feed = ET.Element("feed", {"xmlns": ATOM, "{http://www.w3.org/XML/1998/namespace}lang": "zh-CN"})
    self_url = urls.absolute(site.base_url, FEED_PATH)
    _text(feed, "id", self_url)  # a feed's id must stay put; its own address does
    _text(feed, "title", f"{site.program_name}：信息变更")
    _text(feed, "subtitle", f"{site.province}排污许可持证（登记）单位公开信息的逐日变化")
    ET.SubElement(feed, "link", {"rel": "self", "type": "application/atom+xml", "href": self_url})
    ET.SubElement(feed, "link", {"rel": "alternate", "type": "text/html", "href": site.base_url})
    _text(feed, "updated", site.as_of.isoformat() + _MIDNIGHT)
    _text(ET.SubElement(feed, "author"), "name", site.authority)
    for e in entries:
        c = e.change
        node = ET.SubElement(feed, "entry")
        _text(node, "id", e.id)
        _text(node, "title", f"{c.name}：{c.title}")
        href = urls.absolute(site.base_url, _path(c, present))
        ET.SubElement(node, "link", {"rel": "alternate", "type": "text/html", "href": href})
        _text(node, "updated", c.date + _MIDNIGHT)
        ET.SubElement(node, "category", {"term": c.kind, "label": KIND_LABELS.get(c.kind, c.kind)})
        _text(node, "summary", c.title)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _entry(node: ET.Element) -> Entry | None:
    """Back from what _write wrote: the id gives date, permit, kind and key; the summary is the
    change's title and the entry title is '<name>：<title>'. The path is recomputed (urls.py)."""
    ident = node.findtext(f"{_A}id") or ""
    title = node.findtext(f"{_A}title") or ""
    summary = node.findtext(f"{_A}summary") or ""
    m = _TAG.match(ident)
    if not m or not summary or not title.endswith("：" + summary):
        return None
    date, permit_no, kind, key = m.groups()
    try:
        dt.date.fromisoformat(date)
        path = urls.enterprise_path(permit_no)
    except ValueError:
        return None
    name = title[: -len(summary) - 1]
    return Entry(ident, Change(permit_no, name, kind, date, summary, path, unquote(key)))
