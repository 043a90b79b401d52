"""Verify a built tree before it goes live: a failed check publishes nothing.

What is checked, and why each check is shaped as it is:
- Links: every href/src/action of every HTML page (and every URL under base_url in the other text
  files: sitemap, JSON, CSV, the open-data zips) must name a file of the build. Attributes are
  found with one regular expression rather than an HTML parser: html.parser reads about 2 MB/s,
  too slow for 40,000 pages of charts; the templates are ours and always quote attributes.
  A same-page fragment (href="#x") must name an id on the page; a fragment on another page is not
  checked (that would mean reading the other page).
- Pages parse: strict UTF-8, a doctype, `</html>` at the end (a truncated write), one html, head
  and body, and the main structural elements opened as often as closed. Cheap counts, no tree.
- QR codes: each sign's URL lies under base_url (scheme and host compared without case: the URL is
  upper-cased for the QR alphanumeric mode) and names a page of the build. The path prefix of
  base_url is compared with its case, because web servers compare paths with case.
- Leaks, in every text file and every member of a zip: resident ID numbers (public.py's pattern,
  flagged only with a valid GB 11643 check digit, and never when the digits are the credit code
  of a permit holder of this site), private mobile numbers (public.py's pattern, not inside a
  longer run of letters or digits, such as a hash), and confidential values.
  Confidential values are checked two ways. A permit's own files (`P/<permit>/…`, a few pages
  and its data.json) are searched for each of that record's values as a substring: few values,
  small files, and `in` is a fast search. Aggregate files (lists, search shards, open data) hold
  every record: at 100,000 records, GBs of text against ~500,000 values, where a substring search
  per value would take hours (and a regular expression of 500,000 alternatives is no faster). So
  their text is cut into fields (JSON strings, CSV cells, HTML text and attribute values, lines)
  with str.split, and the set of fields is intersected with the set of values, all in C. The
  trade-off: a value that stands in an aggregate file only inside a longer field (glued into a
  sentence) is not found there; a leak through the data, a withheld field exported as it is,
  is a whole field, and the permit's own pages, which carry the same content, are searched by
  substring. Values shorter than 4 characters are ignored (too common to mean anything).
  Neither `secrets` nor `all_secrets` may hold a string that the build publishes anyway (a
  withheld waste name such as 电镀污泥 is public in another record; an authority's name is on
  every page): `confidential_values` takes out the record's own public strings, and the caller
  takes out every record's (`public_strings` of each view) and the site settings'.
- The search index: every file the search page names (directly, or through the index's
  directories) exists.
- Nothing published disappears: every page and sign path (`P/…`, `signs/…`) of the live build
  must still exist, and the number of HTML pages may drop by at most 5 %; `allow_shrink` turns
  both into warnings (a permit withdrawn on purpose).

With `changed` given, only those files are read: the unchanged files were verified on the night
they were built and their bytes are the same (the caller compares their sha256). Every other check
(QR codes, disappeared paths, shrink) always looks at the whole tree.

A changed open-data zip is mostly last night's: opendata builds it from deflate segments cut at
record boundaries and copies the compressed bytes of every unchanged one from the live zip. With
its `ZipLayout` (`zips`) and the live tree (`live`), only the rest is read (`_check_pieces`), and
nothing the layout says is taken on trust:
- the file must be what the layout describes: one member, its local header agreeing with the
  central directory, its deflate data exactly the pieces in order and an empty final block, the
  CRC-32 and size of the whole combined from the pieces'; otherwise the zip is read whole;
- a piece claimed as a copy counts as verified only if its bytes equal the live zip's at the
  claimed place (compared, in C), and there it starts a segment (the start of the live member's
  data, or just after a sync-flush marker, 00 00 ff ff) and ends one (the marker); otherwise it is
  read like a new piece;
- every other piece is decompressed on its own: it must be whole deflate blocks ending on a byte
  boundary, with no final block (what any other piece can follow), so what a reader of the whole
  member sees is the pieces' texts one after the other; a piece that is not is a wrong layout,
  and the zip is read whole;
- the pieces read are checked as one text per run of consecutive pieces, and a run must start and
  end at a line end (a value cannot stand half in a piece not read): a copied neighbour that does
  not end a line, or follow one, is read too.
- inside a piece read, stretches of text claimed to be copies of a live segment's text (the
  records that did not change, `Piece.same`) are not checked again when the live segment is one
  (between sync markers, as above, decompressing on its own, whole blocks and no final block) and
  holds the same bytes at the claimed place (compared, in C), cut down to whole lines in both texts:
  a stretch at a live segment's start counts from there only if the live segment before it (also
  named, and also checked to be one) ends a line. In CSV and JSON Lines (the only members this
  applies to) every check is line by line (a row names its permit on its line; fields, ID and
  mobile numbers and URLs stop at a line end), so equal lines checked in the live text need no
  second look. The rest of the piece is checked in whole lines,
  with its line numbers counted through the stretches.
What remains trusted: that bytes of the live zip between two sync markers are whole segments
there, whose text, verified on the night it was published, is what they decompress to on their
own. (Four bytes 00 00 ff ff may also stand inside compressed data: the markers catch a misplaced
claim, not a crafted one.) Line numbers past the pieces not read add up the layout's line counts
(`Piece.lines`); they are right when opendata is.
"""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import os
import posixpath
import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from . import search
from .errors import Problem
from .manifest import in_bundles, is_bundle, walk
from .opendata import Piece, ZipLayout, crc_combine
from .public import ID_CARD as _ID_CARD
from .public import MOBILE as _MOBILE  # one definition of what personal data looks like
from .schema import Block, Withholdable

MIN_SECRET = 4  # shorter confidential values are ignored: too common to mean anything
MAX_SHRINK = 0.05  # the share of HTML pages that may go without --allow-shrink
MAX_LISTED = 20  # per kind of whole-tree problem (disappeared paths); the rest are counted
PARALLEL_FROM = 500  # files to read before a pool of worker processes pays for itself
CHUNK_CHARS = 8 << 20  # large text files and zip members are read in pieces of this many characters
COMPARE_BYTES = 1 << 20  # copied bytes are compared with the live zip's in reads of this size

BINARY = frozenset({".pdf", ".bin", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".woff", ".woff2", ".gz"})
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PERMIT_DIR = re.compile(r"P/([0-9A-Z]{18})[0-9]{3}[A-Z]/")
# Elements that the templates always close; html/head/body must also appear exactly once.
_STRUCTURE = ("html", "head", "body", "main", "header", "footer", "nav", "section", "article", "table", "div")
_STRUCTURE_TAG = re.compile(r"<(/?)(" + "|".join(_STRUCTURE) + r")[\s>]")  # the templates write lower case
# Fast hints for public.py's patterns: literal digits first, so `re` scans with a fast search.
# Each ends like public.py's pattern: not followed by a letter or digit (a hint inside a permit
# number or a hash fails there, in C, instead of in the Python loop that checks each hint).
_ID_TAIL = r"[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])"
_ID_HINTS = tuple(re.compile(century + _ID_TAIL) for century in ("19", "20", "18"))
_MOBILE_HINT = re.compile(r"1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}(?![0-9])")
_ATTR = {
    (name, quote): re.compile(f"{name}={quote}([^{quote}]*){quote}")
    for name in ("href", "src", "action", "id", "name")
    for quote in ('"', "'")
}
_IGNORED_SCHEMES = ("mailto:", "tel:", "javascript:", "data:", "sms:")
_SYNC = b"\x00\x00\xff\xff"  # how a Z_SYNC_FLUSH ends, so how every segment of an open-data zip ends
_FINAL = b"\x03\x00"  # an empty final deflate block: what ends an open-data zip's member
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # a zip's local file header, before the name and extra field


@dataclass
class Reading:
    """What the verifier read (the tests, and the build log if it wants): files read, bytes of text
    checked (zip members decompressed), compressed bytes of changed zips found equal to the live
    zip's and so not read again, and text of the pieces read found equal to the live zip's."""

    files: int = 0
    text: int = 0
    copied: int = 0
    same: int = 0  # bytes of text in pieces read found equal to the live zip's text (`Piece.same`)

    def add(self, other: Reading) -> None:
        self.files += other.files
        self.text += other.text
        self.copied += other.copied
        self.same += other.same

    def take(self) -> Reading:
        """The counts so far, and start again from zero."""
        out = Reading(self.files, self.text, self.copied, self.same)
        self.files = self.text = self.copied = self.same = 0
        return out


def verify(
    staging: Path,
    base_url: str,
    *,
    changed: set[str] | None,
    previous: Collection[str] | None,
    qr_urls: Iterable[str],
    secrets: Callable[[str], Iterable[str]] | None = None,
    all_secrets: Iterable[str] | Mapping[str, Iterable[str]] = (),
    allow_shrink: bool = False,
    workers: int = 2,
    not_built: tuple[str, ...] = (),
    paths: set[str] | None = None,
    live: Path | None = None,
    zips: Mapping[str, ZipLayout] | None = None,
    reading: Reading | None = None,
    bundles: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Every problem of the tree at `staging` (site-relative paths), errors and warnings, sorted.

    `changed`: the site-relative paths new or changed since the live build (None: read every file);
    `previous`: the live build's paths, None on the first build; `qr_urls`: every
    URL a sign's QR code carries; `secrets(permit_no)`: that record's confidential strings;
    `all_secrets`: every record's confidential strings, or a mapping of each to the permits that
    withhold it (then an occurrence on a line that names only other permits is taken for their
    public data, not a leak); `not_built`: path
    prefixes this build leaves out on purpose (signs, with --no-signs and none to carry over): links
    into them are not followed; `paths`: the files of `staging` (as `tree` gives them), when the
    caller has walked it already, with `bundles` (a bundle's folder -> its packed files,
    `manifest.pack`) for the folders it names instead of their files; `live`: the live tree and
    `zips`: how opendata made tonight's zips (`OpenDataStats.zips`): a changed zip is then read
    only where it differs from the live one (see the module's docstring); `reading`: counts what
    was read, added to it.
    """
    paths = tree(staging) if paths is None else paths
    site = Site.of(base_url, paths, not_built, bundles or {})
    if changed is None:  # every file (a bundle's are PDFs, which are not read)
        to_read = sorted(p for p in paths if not is_bundle(p))
    else:
        to_read = sorted(p for p in changed if p in paths or site.in_bundle(p))
    owners: dict[str, frozenset[str]] = {}
    for v in all_secrets:
        mine = frozenset(all_secrets[v]) if isinstance(all_secrets, Mapping) else frozenset()
        if len(v.strip()) >= MIN_SECRET:
            owners[v.strip()] = owners.get(v.strip(), frozenset()) | mine
    job = _Job(staging, site, secrets, frozenset(owners), owners, live=live, zips=zips or {})
    problems, read = _read_all(job, to_read, workers)
    if reading is not None:
        reading.add(read)
    problems += check_qr_urls(site, qr_urls)
    problems += check_search_index(staging, paths)
    if previous is not None:
        problems += check_disappeared(paths, previous, allow_shrink)
        problems += check_shrink(paths, previous, allow_shrink)
    return sorted(set(problems), key=_order)


def _order(p: Problem) -> tuple[str, int, str, str, str]:
    return (p.file, p.line or 0, p.field, p.message, p.severity)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def tree(root: Path) -> set[str]:
    """Every file under root as site-relative paths; dot paths (the build's state, never deployed)
    left out."""
    return set(walk(root))


# --- the site's address space --------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    scheme: str  # lower case
    host: str  # lower case
    prefix: str  # base_url's path, with its case: '/' or '/ymt/'
    base_url: str
    paths: frozenset[str] | set[str]
    usccs: frozenset[str]  # the credit codes of this site's permit holders (they look like ID numbers)
    not_built: tuple[str, ...] = ()
    bundles: Mapping[str, str] = field(default_factory=dict)  # folders `paths` names whole (see `verify`)

    @classmethod
    def of(
        cls, base_url: str, paths: set[str], not_built: tuple[str, ...] = (), bundles: Mapping[str, str] | None = None
    ) -> Site:
        parts = urlsplit(base_url)
        # A permit's folder is "P/" and 22 characters: matched once per folder, not per file (430,000).
        folders = {p[:25] for p in paths if p.startswith("P/")}
        usccs = frozenset(m.group(1) for f in folders if (m := _PERMIT_DIR.match(f)))
        netloc, prefix = parts.netloc.lower(), parts.path or "/"
        return cls(parts.scheme.lower(), netloc, prefix, base_url, paths, usccs, not_built, bundles or {})

    def target(self, url: str, page: str) -> str | None:
        """The site path (query and fragment dropped) a link on `page` leads to; None for a link
        outside this site (another host, mailto:, …). Raises ValueError for a link that cannot
        lead anywhere on the site."""
        url = url.strip()
        if not url or url.startswith("#"):
            return None
        if ":" not in url and "%" not in url and not url.startswith("/"):
            return _relative(page, url)  # the templates' links, ~25 a page: the fast path
        if url.startswith(self.base_url) and "%" not in url:
            return _relative("", url[len(self.base_url) :])  # canonical links, open data, sitemap
        if url.lower().startswith(_IGNORED_SCHEMES):
            return None
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.scheme.lower() not in ("http", "https", "") or parts.netloc.lower() != self.host:
                return None
            if not parts.path.startswith(self.prefix):
                return None  # the same host, but not this site (another application)
            path = parts.path[len(self.prefix) :]
        elif parts.path.startswith("/"):
            if not parts.path.startswith(self.prefix):
                raise ValueError(f"以 / 开头的地址不在站点路径 {self.prefix} 之下")
            path = parts.path[len(self.prefix) :]
        else:
            path = _relative(page, parts.path)
        return unquote(path)

    @property
    def url_pattern(self) -> re.Pattern[str]:
        """This site's URLs written out in full, as the build writes them (re caches the pattern)."""
        return re.compile(re.escape(self.base_url) + r"""[^\s"'<>,\\]*""")

    def exists(self, path: str) -> bool:
        if self.not_built and path.startswith(self.not_built):
            return True
        if path == "" or path.endswith("/"):
            return f"{path}index.html" in self.paths
        return path in self.paths or f"{path}/index.html" in self.paths or self.in_bundle(path)

    def in_bundle(self, path: str) -> bool:
        return in_bundles(self.bundles, path)


def _relative(page: str, href: str) -> str:
    """`href` (no scheme, no leading '/') resolved against the directory of `page`."""
    for mark in ("#", "?"):
        cut = href.find(mark)
        if cut >= 0:
            href = href[:cut]
    directory = page.rsplit("/", 1)[0].split("/") if "/" in page else []
    out: list[str] = list(directory)
    parts = href.split("/")
    for i, part in enumerate(parts):
        if part == "..":
            if not out:
                raise ValueError("超出站点根目录")
            out.pop()
        elif part not in (".", "") or i == len(parts) - 1:
            out.append(part)
    if parts[-1] in (".", ".."):
        out.append("")  # 'x/..' names a directory
    return "/".join(out)


# --- reading files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    staging: Path
    site: Site
    secrets: Callable[[str], Iterable[str]] | None
    all_secrets: frozenset[str]
    owners: dict[str, frozenset[str]] = field(default_factory=dict)  # value -> permits withholding it
    links: dict[tuple[Any, str], str | None] = field(default_factory=dict)  # per process: why broken
    live: Path | None = None
    zips: Mapping[str, ZipLayout] = field(default_factory=dict)
    reading: Reading = field(default_factory=Reading)  # per process


_JOB: _Job | None = None  # set before the pool forks, read by the workers


def _read_all(job: _Job, files: list[str], workers: int) -> tuple[list[Problem], Reading]:
    global _JOB
    _JOB = job
    try:
        if workers <= 1 or len(files) < PARALLEL_FROM:
            return _check_files(files)
        # Big files (the open-data zips) first, each alone; then the pages in batches.
        size = {f: (job.staging / f).stat().st_size for f in files}
        ordered = sorted(files, key=lambda f: -size[f])
        big = [[f] for f in ordered if size[f] > (1 << 20)]
        small = [f for f in ordered if size[f] <= (1 << 20)]
        step = max(50, min(500, len(small) // (workers * 8) or 1))
        batches = big + [small[i : i + step] for i in range(0, len(small), step)]
        problems: list[Problem] = []
        reading = Reading()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for found, read in pool.imap_unordered(_check_files, batches):
                problems += found
                reading.add(read)
        return problems, reading
    finally:
        _JOB = None


def _check_files(files: list[str]) -> tuple[list[Problem], Reading]:
    job = _JOB
    assert job is not None
    job.reading.take()  # a worker's count is per batch
    _read_ahead(job.staging, files)
    out: list[Problem] = []
    for rel in files:
        out += check_file(job, rel)
    return out, job.reading.take()


def _read_ahead(root: Path, files: list[str]) -> None:
    """Ask the kernel to start reading a batch's files at once: one at a time, a build whose pages
    have left the page cache waits on the disk for each (6,000 pages read back: 1.4 s -> 0.6 s)."""
    for rel in files:
        if posixpath.splitext(rel)[1].lower() in (".zip", *BINARY):
            continue  # a zip is read in part (what the live one does not vouch for); PDFs not at all
        try:
            fd = os.open(root / rel, os.O_RDONLY)
        except OSError:
            continue  # check_file reports it
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def check_file(job: _Job, rel: str) -> list[Problem]:
    suffix = posixpath.splitext(rel)[1].lower()
    if suffix in BINARY:
        return []
    job.reading.files += 1
    path = job.staging / rel
    if suffix == ".zip":
        return _check_zip(job, rel, path)
    if suffix in (".html", ".htm"):
        raw = path.read_bytes()
        job.reading.text += len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return [Problem(rel, _line_at_byte(raw, err.start), "", "不是有效的 UTF-8 文本（文件损坏或编码错误）")]
        return check_html(job, rel, text) + check_text(job, rel, text, "html", 1)
    with path.open("rb") as stream:
        return _check_stream(job, rel, "", stream, suffix)


def _check_zip(job: _Job, rel: str, path: Path) -> list[Problem]:
    layout = job.zips.get(rel)
    if layout is not None and job.live is not None and any(p.source >= 0 for p in layout.pieces):
        try:
            return _check_pieces(job, rel, path, job.live / rel, layout)
        except _Unlike:
            pass  # not what the layout says: read it whole, as a zip without one
    out: list[Problem] = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                suffix = posixpath.splitext(info.filename)[1].lower()
                if info.is_dir() or suffix in BINARY or suffix == ".zip":
                    continue
                with archive.open(info) as stream:
                    out += _check_stream(job, rel, info.filename, stream, suffix)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        out.append(Problem(rel, None, "", f"zip 文件无法读取：{err}"))
    return out


# --- an open-data zip, where it differs from the live one ----------------------------------------


class _Unlike(Exception):
    """The zip is not what its layout says (or not as opendata writes zips)."""


@dataclass(frozen=True)
class _Member:
    """The one member of a zip as opendata writes it."""

    name: str
    start: int  # its deflate data: [start, end) of the file
    end: int
    crc: int
    size: int  # uncompressed


def _member(f: BinaryIO) -> _Member:
    """The zip's one deflated member, its local header agreeing with the central directory."""
    try:
        with zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            directory = getattr(archive, "start_dir", None)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise _Unlike from err
    if len(infos) != 1:
        raise _Unlike
    info = infos[0]
    suffix = posixpath.splitext(info.filename)[1].lower()
    if info.is_dir() or suffix in BINARY or suffix == ".zip" or info.compress_type != zipfile.ZIP_DEFLATED:
        raise _Unlike
    fd = f.fileno()
    head = os.pread(fd, _LOCAL.size, info.header_offset)
    if len(head) != _LOCAL.size:
        raise _Unlike
    sig, _, flags, method, _, _, crc, csize, usize, n_name, n_extra = _LOCAL.unpack(head)
    name_extra = os.pread(fd, n_name + n_extra, info.header_offset + _LOCAL.size)
    name, extra = name_extra[:n_name], name_extra[n_name:]
    if 0xFFFFFFFF in (csize, usize):  # ZIP64: the sizes are in the extra field (id 1), both
        usize, csize = _zip64_sizes(extra)
    start = info.header_offset + _LOCAL.size + n_name + n_extra
    end = start + info.compress_size
    if (
        sig != 0x04034B50
        or flags & 0x49  # encrypted, or sizes after the data: not written by opendata
        or flags != info.flag_bits
        or method != zipfile.ZIP_DEFLATED
        or (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size)
        or name.decode("utf-8" if flags & 0x800 else "cp437") != info.orig_filename
        or end > (directory if directory is not None else os.fstat(fd).st_size)
    ):
        raise _Unlike
    return _Member(info.filename, start, end, info.CRC, info.file_size)


def _zip64_sizes(extra: bytes) -> tuple[int, int]:
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        if kind == 1 and size >= 16:
            usize, csize = struct.unpack_from("<QQ", extra, at + 4)
            return usize, csize
        at += 4 + size
    raise _Unlike


def _check_pieces(job: _Job, rel: str, path: Path, live: Path, layout: ZipLayout) -> list[Problem]:
    """A changed open-data zip, read only where it is not a verified copy of the live zip's bytes
    (the module's docstring says what is checked). Raises _Unlike if the file is not as `layout` says."""
    try:
        with path.open("rb") as f, live.open("rb") as g:
            return _check_open_pieces(job, rel, f, g, layout)
    except OSError as err:
        raise _Unlike from err


def _check_open_pieces(job: _Job, rel: str, f: BinaryIO, g: BinaryIO, layout: ZipLayout) -> list[Problem]:
    """_check_pieces on the open files: tonight's zip `f`, the live one `g`."""
    new, old = _member(f), _member(g)
    pieces = layout.pieces
    at = new.start
    for p in pieces:  # the pieces, one after the other, are the member's data, then the final block
        if p.at != at or p.size < 0:
            raise _Unlike
        at += p.size
    if (layout.start, layout.end) != (new.start, new.end) or at + len(_FINAL) != new.end:
        raise _Unlike
    if os.pread(f.fileno(), len(_FINAL), at) != _FINAL:
        raise _Unlike
    trusted = _copies(f.fileno(), g.fileno(), pieces, old)
    return _read_pieces(job, rel, f.fileno(), new, pieces, trusted, _LiveText(g.fileno(), old))


def _copies(new: int, old: int, pieces: tuple[Piece, ...], live: _Member) -> list[bool]:
    """Per piece: whether its bytes are a whole run of segments of the live zip (descriptor `old`),
    compared. Pieces copied one after the other are compared as one run, and one by one if that fails."""
    trusted = [False] * len(pieces)
    i = 0
    while i < len(pieces):
        if pieces[i].source < 0:
            i += 1
            continue
        j = i + 1
        while j < len(pieces) and pieces[j].source == pieces[j - 1].source + pieces[j - 1].size:
            j += 1
        size = sum(p.size for p in pieces[i:j])
        if _copied(new, old, pieces[i].at, pieces[i].source, size, live):
            trusted[i:j] = [True] * (j - i)
        else:
            trusted[i:j] = [_copied(new, old, p.at, p.source, p.size, live) for p in pieces[i:j]]
        i = j
    return trusted


def _copied(new: int, old: int, at: int, source: int, size: int, live: _Member) -> bool:
    """The `size` bytes at `at` of tonight's zip are those at `source` of the live zip, and there they
    are whole segments: from the start of its member's data or just after a sync-flush marker, up to
    one, before the final block."""
    if size == 0:
        return True
    if size < len(_SYNC) or source < live.start or source + size > live.end - len(_FINAL):
        return False
    if source > live.start and os.pread(old, len(_SYNC), source - len(_SYNC)) != _SYNC:
        return False
    if os.pread(new, len(_SYNC), at + size - len(_SYNC)) != _SYNC:
        return False
    for done in range(0, size, COMPARE_BYTES):
        n = min(COMPARE_BYTES, size - done)
        if os.pread(new, n, at + done) != os.pread(old, n, source + done):
            return False
    return True


def _inflate(fd: int, piece: Piece) -> Iterator[bytes]:
    """A piece's text, decompressed on its own, in parts. It must be whole deflate blocks that end on
    a byte boundary, and no final block: what an empty final block (or any other piece) can follow.
    Raises _Unlike if not."""
    d = zlib.decompressobj(-15)
    try:
        for done in range(0, piece.size, COMPARE_BYTES):
            data = os.pread(fd, min(COMPARE_BYTES, piece.size - done), piece.at + done)
            while data:
                out = d.decompress(data, CHUNK_CHARS)
                data = d.unconsumed_tail
                if d.eof:
                    raise _Unlike  # a final block: a reader stops inside this piece
                if out:
                    yield out
        while out := d.decompress(b"", CHUNK_CHARS):  # what was held back by the size limit
            yield out
        probe = d.copy()
        if probe.decompress(_FINAL) or not probe.eof or probe.unused_data:
            raise _Unlike  # ends inside a block: the next piece would be read as its rest
    except zlib.error as err:
        raise _Unlike from err


def _ends_line(fd: int, piece: Piece) -> bool:
    """The piece's text ends with a line end (an empty one does not)."""
    last = b""
    try:
        for out in _inflate(fd, piece):
            last = out
    except _Unlike:
        return False
    return last.endswith(b"\n")


# Texts whose checks all stop at a line end (`fields` cuts CSV and JSON Lines at line ends too; an
# HTML text or attribute value may run over lines): equal lines, equal findings.
_LINE_KINDS = ("csv", "jsonl")


class _LiveText:
    """The texts of the live zip's segments that stretches of tonight's pieces claim to copy
    (`Piece.same`), each decompressed once (the claims of a piece come in order)."""

    def __init__(self, fd: int, member: _Member) -> None:
        self.fd = fd
        self.member = member
        self.texts: dict[tuple[int, int], bytes | None] = {}

    def get(self, at: int, size: int) -> bytes | None:
        """The text of the live segment at [at, at + size), or None unless it is one: whole
        segments there (from the member's start or a sync marker, to one) that decompress on their
        own, whole blocks with no final block, to at most CHUNK_CHARS bytes."""
        key = (at, size)
        if key not in self.texts:
            if len(self.texts) >= 4:
                self.texts.clear()
            self.texts[key] = self._read(at, size)
        return self.texts[key]

    def ends_line(self, before: int, at: int) -> bool:
        """The live segment [before, at) ends a line (there is one there, ending where `at` starts)."""
        text = self.get(before, at - before) if 0 <= before < at else None
        return text is not None and text.endswith(b"\n")

    def _read(self, at: int, size: int) -> bytes | None:
        live = self.member
        if size < len(_SYNC) or at < live.start or at + size > live.end - len(_FINAL):
            return None
        if at > live.start and os.pread(self.fd, len(_SYNC), at - len(_SYNC)) != _SYNC:
            return None
        if os.pread(self.fd, len(_SYNC), at + size - len(_SYNC)) != _SYNC:
            return None
        parts: list[bytes] = []
        total = 0
        try:
            for part in _inflate(self.fd, Piece(at, size, -1, 0, 0, 0)):
                total += len(part)
                if total > CHUNK_CHARS:
                    return None
                parts.append(part)
        except _Unlike:
            return None
        return b"".join(parts)


def _same_lines(text: bytes, piece: Piece, line_start: bool, live: _LiveText) -> list[tuple[int, int]]:
    """The stretches of a piece's `text` found byte for byte in the live segments its layout names
    (`Piece.same`), each cut down to whole lines in both texts: it starts at a line start (the
    piece's own start only if `line_start`; a live segment's start only if the live segment before
    it, `Same.before`, ends a line, and never at the start of the live member, where a BOM is not
    text) and ends with a line end. In order, not overlapping; claims that do not
    hold are left out (their text is checked)."""
    out: list[tuple[int, int]] = []
    done = 0
    for claim in piece.same:
        start, end, offset = claim.start, claim.start + claim.size, claim.offset
        if claim.size <= 0 or start < done or end > len(text) or offset < 0:
            continue
        source = live.get(claim.source, claim.source_size)
        if source is None or offset + claim.size > len(source):
            continue
        if text[start:end] != source[offset : offset + claim.size]:
            continue
        starts_line = (text[start - 1] == 0x0A if start else line_start) and (
            source[offset - 1] == 0x0A if offset else live.ends_line(claim.before, claim.source)
        )
        if not starts_line:
            start = text.find(b"\n", start, end) + 1
            if not start:
                continue
        end = text.rfind(b"\n", start, end) + 1
        if end > start:
            out.append((start, end))
            done = end
    return out


def _read_pieces(
    job: _Job,
    rel: str,
    fd: int,
    member: _Member,
    pieces: tuple[Piece, ...],
    trusted: list[bool],
    live: _LiveText | None = None,
) -> list[Problem]:
    """Check the text of every piece not `trusted`, in runs of whole lines; combine the CRC-32 and
    size of the whole from the pieces' (those read: computed; the others: the layout's) and compare
    them with the member's. Raises _Unlike when a piece read is not a piece or the sums disagree.
    Within a piece read, the stretches found equal to text of the live zip (`_same_lines`, with
    `live`) are not checked again; what is left is checked in whole lines, with its line numbers."""
    # A copied piece just before a piece read must end a line: a value could stand half in each.
    for i in range(len(pieces) - 1, 0, -1):
        if not trusted[i] and trusted[i - 1] and not _ends_line(fd, pieces[i - 1]):
            trusted[i - 1] = False
    kind = posixpath.splitext(member.name)[1].lower().lstrip(".")
    out: list[Problem] = []
    line = 1
    crc = total = 0
    buffer = bytearray()
    begin = True  # the buffer starts the member (a BOM there is not text)

    def check(raw: bytes) -> None:
        nonlocal line, begin
        try:
            text = raw.decode("utf-8-sig" if begin else "utf-8")
        except UnicodeDecodeError as err:
            out.append(Problem(rel, line + raw.count(b"\n", 0, err.start), member.name, _NOT_UTF8))
            raise _Broken from err
        begin = False
        job.reading.text += len(raw)
        out.extend(check_text(job, rel, text, kind, line, member.name))
        line += text.count("\n")

    try:
        for i, p in enumerate(pieces):
            if trusted[i]:
                crc, total, line = crc_combine(crc, p.crc, p.plain), total + p.plain, line + p.lines
                begin = begin and p.size == 0
                continue
            piece_crc = size = 0
            if live is not None and p.same and kind in _LINE_KINDS and 0 <= p.plain <= CHUNK_CHARS:
                text = b"".join(_inflate(fd, p))
                piece_crc, size = zlib.crc32(text), len(text)
                line_start = not begin and (not buffer or buffer.endswith(b"\n"))
                at = 0
                for start, end in _same_lines(text, p, line_start, live):
                    buffer += text[at:start]
                    if buffer:
                        check(bytes(buffer))
                        buffer.clear()
                    line += text.count(b"\n", start, end)
                    job.reading.same += end - start
                    at = end
                buffer += text[at:]
                if len(buffer) >= CHUNK_CHARS and (cut := buffer.rfind(b"\n") + 1):
                    check(bytes(buffer[:cut]))
                    del buffer[:cut]
            else:
                for part in _inflate(fd, p):
                    piece_crc, size = zlib.crc32(part, piece_crc), size + len(part)
                    buffer += part
                    if len(buffer) >= CHUNK_CHARS and (cut := buffer.rfind(b"\n") + 1):
                        check(bytes(buffer[:cut]))
                        del buffer[:cut]
            crc, total = crc_combine(crc, piece_crc, size), total + size
            last = i + 1 == len(pieces)
            if not last and trusted[i + 1] and buffer and not buffer.endswith(b"\n"):
                trusted[i + 1] = False  # the line goes on into the next piece: read that too
            if last or trusted[i + 1]:
                check(bytes(buffer))
                buffer.clear()
    except _Broken:
        return out  # not UTF-8: the rest is not worth reading
    if (crc, total) != (member.crc, member.size):
        raise _Unlike
    job.reading.copied += sum(p.size for p, ok in zip(pieces, trusted, strict=True) if ok)
    return out


class _Broken(Exception):
    """A piece's text is not UTF-8 (reported)."""


_NOT_UTF8 = "不是有效的 UTF-8 文本（文件损坏或编码错误）"


def _check_stream(job: _Job, rel: str, member: str, stream: IO[bytes], suffix: str) -> list[Problem]:
    """A text file or zip member, in pieces of whole lines (a 1 GB member is never held at once)."""
    out: list[Problem] = []
    kind = suffix.lstrip(".")
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    line = 1
    try:
        for chunk in _chunks(text):
            out += check_text(job, rel, chunk, kind, line, member)
            line += chunk.count("\n")
    except UnicodeDecodeError:
        out.append(Problem(rel, line, member, "不是有效的 UTF-8 文本（文件损坏或编码错误）"))
    finally:
        job.reading.text += _position(stream)  # the bytes read (decompressed, for a zip member)
    return out


def _position(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except (OSError, ValueError):
        return 0


def _chunks(text: io.TextIOBase) -> Iterator[str]:
    while True:
        piece = text.read(CHUNK_CHARS)
        if not piece:
            return
        if not piece.endswith("\n"):
            piece += text.readline()  # whole lines only: no value is cut in two
        yield piece


def _line_at_byte(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _line_of(text: str, needle: str, first_line: int) -> int | None:
    at = text.find(needle)
    return None if at < 0 else first_line + text.count("\n", 0, at)


# --- HTML ----------------------------------------------------------------------------------------


def check_html(job: _Job, rel: str, text: str) -> list[Problem]:
    """Structure and links of one page."""
    out = check_structure(rel, text)
    directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
    depth = directory.count("/") + 1 if directory else 0
    climb = "../" * depth
    ids: set[str] | None = None
    for attr in ("href", "src", "action"):
        for quoted in sorted(set(_attribute_values(text, attr))):
            href = unescape(quoted) if "&" in quoted else quoted
            if href.startswith("#"):
                if len(href) > 1:
                    if ids is None:
                        ids = {unescape(v) for a in ("id", "name") for v in _attribute_values(text, a)}
                    why = None if unquote(href[1:]) in ids else "页内锚点不存在"
                else:
                    why = None
            else:
                if ":" in href or href.startswith("/"):
                    key: tuple[Any, str] = (None, href)  # the same wherever it stands
                elif depth and href.startswith(climb):
                    key = (depth, href)  # the navigation: the same on every page as deep
                else:
                    key = (directory, href)
                why = job.links.get(key, _UNSEEN)
                if why is _UNSEEN:
                    why = job.links[key] = _why_broken(job.site, href, rel)
            if why:
                at = text.find(f'{attr}="{quoted}"')
                line = text.count("\n", 0, at) + 1 if at >= 0 else None
                out.append(Problem(rel, line, attr, f"链接 {href} 无效：{why}"))
    return out


_UNSEEN: Any = object()


def _why_broken(site: Site, href: str, page: str) -> str | None:
    try:
        target = site.target(href, page)
    except ValueError as err:
        return str(err)
    if target is not None and not site.exists(target):
        return f"指向的 {target or '首页'} 不在本次构建中"
    return None


def _attribute_values(text: str, name: str) -> list[str]:
    """Every `name="…"` (or '…'): a literal search, which `re` does at memory speed (a pattern
    that starts with a class such as \\s is tried at every position, ten times slower)."""
    return _ATTR[name, '"'].findall(text) + _ATTR[name, "'"].findall(text)


def check_structure(rel: str, text: str) -> list[Problem]:
    """A page that a browser would show whole: doctype, `</html>` at the end, and the structural
    elements balanced (a truncated or half-written page fails at least one of these)."""
    out: list[Problem] = []
    head = text.lstrip("\ufeff \t\r\n")[:15].lower()
    if not head.startswith("<!doctype html"):
        out.append(Problem(rel, 1, "", "页面不以 <!doctype html> 开头"))
    if not text[-256:].rstrip().lower().endswith("</html>"):
        out.append(Problem(rel, text.count("\n") + 1, "", "页面不以 </html> 结尾（文件被截断？）"))
    counts = Counter(_STRUCTURE_TAG.findall(text))
    for tag in _STRUCTURE:
        opened, closed = counts["", tag], counts["/", tag]
        if tag in ("html", "head", "body") and (opened, closed) != (1, 1):
            out.append(Problem(rel, None, "", f"页面应有且只有一个 <{tag}> 与 </{tag}>，实有 {opened} 与 {closed} 个"))
        elif opened != closed:
            out.append(Problem(rel, None, "", f"<{tag}> 开 {opened} 次、闭 {closed} 次，结构不完整"))
    return out


# --- text: leaks and URLs ------------------------------------------------------------------------


def check_text(job: _Job, rel: str, text: str, kind: str, first_line: int, member: str = "") -> list[Problem]:
    """Personal data, confidential values and (outside HTML) URLs of this site, in one piece of text."""
    out: list[Problem] = []

    def found(value: str, what: str) -> None:
        out.append(Problem(rel, _line_of(text, value, first_line), member, f"{what}：{_masked(value)}"))

    if not _CODE_LIST.match(rel):
        for value in id_numbers(text, job.site.usccs):
            found(value, "出现居民身份证号码")
        for value in mobile_numbers(text):
            found(value, "出现个人手机号码")
    permit = _permit_of(rel)
    if permit and job.secrets is not None:  # a permit's own files: its own values, as substrings
        for value in sorted({v for v in map(str.strip, job.secrets(permit)) if len(v) >= MIN_SECRET}):
            if value in text:
                found(value, "出现不予公开的内容")
    else:
        if job.secrets is not None:  # aggregate files: each row's own permit's values, in that row
            for value in sorted(row_secrets(text, job.secrets)):
                found(value, "出现不予公开的内容")
        if job.all_secrets:  # and everybody's values, as whole fields
            for value in sorted(fields(text, kind) & job.all_secrets):
                if not _public_elsewhere(text, value, job.owners.get(value)):
                    found(value, "出现不予公开的内容")
    if kind != "html" and job.site.base_url in text:
        out += _check_urls(job.site, rel, text, kind, first_line, member)
    return out


# The search index's sorted lists of permit numbers, forwards and reversed: nothing but validated
# identifiers, whose digit runs (reversed, "…8615…") can look like a phone number.
_CODE_LIST = re.compile(r"search/i/[cx]/")
_PERMIT_NO = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}[0-9]{3}[A-Z](?![0-9A-Za-z])")


def _public_elsewhere(text: str, value: str, owners: frozenset[str] | None) -> bool:
    """Every occurrence of `value` is on a line naming permits, none of which withholds it: another
    holder's own public data (a disposal company, a waste code) rather than a leak."""
    if not owners:
        return False
    at = text.find(value)
    while at >= 0:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        named = set(_PERMIT_NO.findall(text, start, end if end >= 0 else len(text)))
        if not named or named & owners:
            return False
        at = text.find(value, at + len(value))
    return True


def row_secrets(text: str, secrets: Callable[[str], Iterable[str]]) -> set[str]:
    """Values a permit withholds, found on a line (a CSV or JSON Lines row, a list entry) that names
    that permit. Rows are where aggregate files put a record's values; a value withheld by one
    holder is often public for another (a disposal company, a waste code), so matching every
    record's values against every row would cry wolf.

    One pass over the permit numbers notes the lines naming each permit; then each of its values is
    searched (str.find, in C) from its first such line to its last, and an occurrence counts when
    its line is one of them. Rows follow permit order, so that stretch is the permit's rows; a
    permit named again further on only makes the stretch longer, never a line missed. A value with
    a line end in it cannot stand on one line and is not searched."""
    naming: dict[str, list[int]] = {}  # permit -> the starts of the lines naming it, in order
    last_end: dict[str, int] = {}  # permit -> the end of the last line naming it
    start, end = 0, -1  # the line of the previous match: [start, end)
    for m in _PERMIT_NO.finditer(text):
        if m.start() > end:  # a match cannot hold a line end: past `end`, it is on a later line
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = end if end >= 0 else len(text)
        permit = m.group(0)
        starts = naming.get(permit)
        if starts is None:
            naming[permit] = [start]
        elif starts[-1] != start:
            starts.append(start)
        last_end[permit] = end
    found: set[str] = set()
    for permit, starts in naming.items():
        lo, hi = starts[0], last_end[permit]
        lines = set(starts) if len(starts) > 1 else None
        for value in {v for v in map(str.strip, secrets(permit)) if len(v) >= MIN_SECRET and "\n" not in v}:
            if value in found:
                continue
            at = text.find(value, lo, hi)
            while at >= 0:
                if lines is None or (text.rfind("\n", lo, at) + 1 or lo) in lines:
                    found.add(value)
                    break
                at = text.find(value, at + 1, hi)
    return found


def id_numbers(text: str, usccs: frozenset[str] = frozenset()) -> list[str]:
    """Resident ID numbers (GB 11643) in text: public.py's shape with a valid check digit, except
    a permit holder's credit code that happens to have the same shape.

    public.py's pattern starts with a character class, which `re` tries at every position; the
    hints start with a literal century and `re` scans for those at memory speed."""
    found: dict[int, str] = {}
    for hint in _ID_HINTS:
        h = hint.search(text)
        while h:
            start = h.start() - 6  # the region code comes before the birth date
            if start >= 0 and text[start : h.start()].isdigit() and (m := _ID_CARD.match(text, start)):
                found.setdefault(start, m.group(0))
            h = hint.search(text, h.start() + 1)  # hints may overlap
    return [v for _, v in sorted(found.items()) if id_check_ok(v) and v.upper() not in usccs]


def id_check_ok(value: str) -> bool:
    total = sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def mobile_numbers(text: str) -> list[str]:
    """Private mobile numbers: public.py's pattern, not glued to letters or a decimal point (a hash,
    a file name or a measurement is not a phone number). Found through a fast hint, as above."""
    found: dict[int, str] = {}
    h = _MOBILE_HINT.search(text)
    while h:
        at = h.start()
        starts = [] if at and _glued(text[at - 1]) else [at]
        if "86" in text[max(0, at - 4) : at]:  # +86 138…, 86-138…
            starts += [at - 2, at - 3, at - 4]
        for start in starts:
            m = _MOBILE.match(text, start) if start >= 0 else None
            if m:
                end = m.end()
                if not (start and _glued(text[start - 1])) and not (end < len(text) and _glued(text[end])):
                    found.setdefault(start, m.group(0))
                break
        # Eleven digits in a row hide no other number; with a separator inside, one may start there.
        h = _MOBILE_HINT.search(text, h.end() if h.group(0).isdigit() else at + 1)
    return [v for _, v in sorted(found.items())]


def _glued(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "._")


def fields(text: str, kind: str) -> set[str]:
    """The values a text is made of, as a set of stripped strings: JSON strings, CSV cells, HTML
    text and attribute values, lines. Cut with str.replace and str.split, which run in C at
    hundreds of MB/s: a tokenising regular expression here cost more than every other check
    together, and a Python loop over the pieces as much again."""
    if kind == "csv":
        pieces = text.replace('"', ",").replace("\n", ",").split(",")
    elif kind in ("html", "xml", "svg"):
        if "&" in text:
            text = unescape(text)
        pieces = text.replace(">", "<").replace('"', "<").split("<")
    else:
        pieces = text.replace("\n", '"').split('"')
    out = set(map(str.strip, pieces))
    if kind not in ("csv", "html", "xml", "svg") and "\\" in text:
        out.update(_json_unescape(v).strip() for v in pieces if "\\" in v)
    return out


def _json_unescape(s: str) -> str:
    try:
        return json.loads(f'"{s}"')
    except ValueError:
        return s


def _masked(value: str) -> str:
    """Enough to find it, not enough to spread it further through a log."""
    keep = 4 if len(value) >= 11 else 1
    return f"{value[:keep]}…（共 {len(value)} 字符）"


def _permit_of(rel: str) -> str | None:
    if rel.startswith("P/"):
        end = rel.find("/", 2)
        return rel[2:end] if end > 0 else None
    return None


def _check_urls(site: Site, rel: str, text: str, kind: str, first_line: int, member: str) -> list[Problem]:
    """URLs of this site written out in full (sitemap, open data, JSON): each must name a file."""
    out = []
    seen: set[str] = set()
    for url in site.url_pattern.findall(text):
        if url in seen:
            continue
        seen.add(url)
        try:
            target = site.target(url, "")
        except ValueError:
            continue
        if target is not None and not site.exists(target):
            out.append(Problem(rel, _line_of(text, url, first_line), member, f"地址 {url} 不在本次构建中"))
    return out


# --- whole-tree checks ---------------------------------------------------------------------------


_PLAIN_PATH = re.compile(r"[^?#\s]*")  # no query, fragment or white space: urlsplit's path as it is


def check_qr_urls(site: Site, qr_urls: Iterable[str]) -> list[Problem]:
    """Each QR code's URL lies under base_url and names a page of this build."""
    out = []
    base, prefix = site.base_url, site.prefix
    # The usual URL, scheme://host as in base_url (any case) and then a plain path under the prefix
    # exactly: its path read without urlsplit (535,000 URLs at 100,000 permits).
    origin = base[: len(base) - len(prefix)].lower() if base.endswith(prefix) else None
    start = len(origin or "") + len(prefix)
    for url in sorted(set(qr_urls)):
        where = f"二维码 {url}"
        if (
            origin is not None
            and url[: len(origin)].lower() == origin
            and url.startswith(prefix, len(origin))
            and _PLAIN_PATH.fullmatch(url, start)
        ):
            path = url[start:]
        else:
            if not url.lower().startswith(base.lower()):
                out.append(Problem("signs/", None, "", f"{where} 不在 {base} 之下"))
                continue
            parts = urlsplit(url)
            if not parts.path.startswith(prefix):
                out.append(
                    Problem(
                        "signs/",
                        None,
                        "",
                        f"{where} 的路径与 base_url 的 {prefix} 大小写不同，网站服务器按大小写区分路径",
                    )
                )
                continue
            path = parts.path[len(prefix) :]
        page = f"{path}index.html" if path == "" or path.endswith("/") else path
        if page not in site.paths or not page.endswith(".html"):
            out.append(Problem(page, None, "", f"{where} 指向的页面不在本次构建中"))
    return out


def check_search_index(staging: Path, paths: set[str]) -> list[Problem]:
    """Every index file the search page names exists (the client would stop at the first missing
    one with "the index was updated, reload the page")."""

    def read(path: str) -> bytes | None:
        try:
            return (staging / path).read_bytes() if path in paths else None
        except FileNotFoundError:  # `paths` may name more than this tree (a caller checking links only)
            return None

    page = read(search.PAGE)
    if page is None:
        return []
    missing = sorted({p for p in search.index_files(page.decode(errors="replace"), read) if p not in paths})
    return [Problem(search.PAGE, None, "search-meta", f"搜索索引文件 {p} 不存在") for p in missing]


def check_disappeared(paths: set[str], previous: Collection[str], allow_shrink: bool) -> list[Problem]:
    """Every page and sign of the live build is still there (a printed QR code may point at it)."""
    missing = set(previous).difference(paths)  # one set operation over 1,500,000 paths, not a loop
    gone = sorted(p for p in missing if p.startswith(("P/", "signs/")))
    severity = "warning" if allow_shrink else "error"
    why = "（已用 --allow-shrink 允许）" if allow_shrink else "（如确属撤销，请用 --allow-shrink）"
    out = [Problem(p, None, "", f"线上已发布的文件在本次构建中消失{why}", severity) for p in gone[:MAX_LISTED]]
    if len(gone) > MAX_LISTED:
        rest = len(gone) - MAX_LISTED
        message = f"此文件及另外 {rest - 1} 个线上已发布的文件在本次构建中消失（共 {len(gone)} 个）{why}"
        out.append(Problem(gone[MAX_LISTED], None, "", message, severity))
    return out


def check_shrink(paths: set[str], previous: Collection[str], allow_shrink: bool) -> list[Problem]:
    """The number of HTML pages dropped by at most MAX_SHRINK."""
    before = sum(map(str.endswith, previous, itertools.repeat(".html")))
    now = sum(map(str.endswith, paths, itertools.repeat(".html")))
    if before == 0 or (before - now) / before <= MAX_SHRINK:
        return []
    severity = "warning" if allow_shrink else "error"
    allowed = "（已用 --allow-shrink 允许）" if allow_shrink else "；如确属应当，请用 --allow-shrink"
    drop = f"{(before - now) / before:.1%}"
    message = f"页面数由 {before} 降至 {now}（减少 {drop}，上限 {MAX_SHRINK:.0%}）{allowed}"
    return [Problem("index.html", None, "", message, severity)]


# --- confidential values of a record (for the caller) --------------------------------------------


def confidential_values(record: BaseModel, view: dict[str, Any] | None = None) -> set[str]:
    """The strings a record withholds (a withheld block or item, a field in confidential_fields),
    except those its public view shows anyway and those shorter than MIN_SECRET.

    Only strings: a withheld number (a fine) is not searched for; as text it is too common."""
    found: set[str] = set()
    _collect(record, False, found)
    if view is not None:
        found -= public_strings(view)
    return {s for s in found if len(s) >= MIN_SECRET}


def public_strings(view: Any) -> set[str]:
    """Every string of a public view (to take out of the confidential values: they are published)."""
    out: set[str] = set()
    stack = [view]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _collect(obj: Any, hidden: bool, out: set[str]) -> None:
    if isinstance(obj, BaseModel):
        withholdable = isinstance(obj, Withholdable)
        whole = hidden or (withholdable and obj.confidential)
        fields_hidden = set(obj.confidential_fields) if withholdable else set()
        for name in type(obj).model_fields:
            if name in ("confidential", "confidential_fields"):
                continue
            if withholdable and not hidden and obj.confidential and name in obj.always_public:
                continue
            if isinstance(obj, Block) and name == "source":
                continue  # a withheld block still names its source
            _collect(getattr(obj, name), whole or name in fields_hidden, out)
    elif isinstance(obj, list):
        for item in obj:
            _collect(item, hidden, out)
    elif isinstance(obj, str) and hidden:
        out.add(obj)
