"""Open data: a JSON file beside every enterprise page, nightly bulk downloads, the data page.

Everything here reads the public view (`public_view`, cached and read through `iter_views`) and the
derived facts (`facts`), the same sources as the pages, through the tables declared in tables.py.

- `P/<permit>/data.json`: the page's public view with its permanent URL and the record's data date;
  validated by `schema/public-enterprise-v1.json` (generated in docs.py from the model).
- `data/yimatong-<table>.{csv,jsonl}.zip`: one table per file, under a name that never changes (the
  CDN address is permanent; an unchanged table is the same bytes and is not uploaded again).
- `data/archive/<YYYY-MM>/yimatong-<as_of>-<table>.…zip`: the first snapshot of each month, kept
  unchanged for 12 months.

A nightly build redoes only what changed. An enterprise's rows (and its data.json) depend only on
its record, the site settings, this code and the date-dependent facts, so they are encoded once and
then reused until one of those changes (`facts.stable_until`). Each table's deflate stream is cut into
segments at record boundaries chosen by the records' permit numbers (so the same records give the
same segments whatever changed around them), each compressed on its own: tonight's zip copies the
compressed bytes of every segment whose text is unchanged from last night's (a segment is known by a
hash of its records' bytes in that stream) and compresses only the rest. A change that leaves a
table's rows as they were (a new reading touches the records and the self-monitoring tables, not the
permits or the limits) leaves that table's zip the same file. Deflate streams concatenate when each
part ends on a byte boundary (Z_SYNC_FLUSH); the CRC-32 of the whole is combined from the parts'. The
cache (`<cache>/opendata/`) holds last night's zips and an index of what they hold.

The verifier need not read again what it read last night: `OpenDataStats.zips` says, for each zip
written, where its deflate data lies and which of its pieces are byte-for-byte copies of the live
zip's (`ZipLayout`), and, inside a piece compressed tonight, which stretches of its text are the
text of a live segment (records whose rows did not change: `Piece.same`). It is a claim, not a
promise: the verifier compares those bytes with the live file's and reads all it cannot match.

Output is byte-identical for the same input, cache or no cache: rows follow the permit number order
of `loaded.entries`, segment boundaries and compression depend only on the content, and no date is
written into a zip (entry times are a constant).
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import datetime as dt
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pickle
import re
import shutil
import struct
import tempfile
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

from zlib_ng import zlib_ng

from . import docs, facts, pages, urls
from .context import Common, Place, Stamp, cn_date, root_of
from .facts import View
from .load import Entry, Loaded
from .manifest import Reuse, files_key, key_of
from .schema import SCHEMA_VERSION
from .tables import FLAG_COLUMNS, TABLES, TYPE_LABELS, Rec, csv_cell, csv_header, encode

__all__ = ["FLAG_COLUMNS", "TABLES", "csv_cell", "document", "write_open_data"]

DATA = "data/"
ARCHIVE = "archive/"
ARCHIVE_MONTHS = 12
MANIFEST = "index.json"
SUMS = "SHA256SUMS"
PREFIX = "yimatong"
RECORDS = "records"  # every data.json, one per line: the complete public data, blocks the tables leave out too
# Archived names carry the snapshot's date, and are the only names copied back from a previous output.
_FILE = re.compile(r"^yimatong-[0-9]{4}-[0-9]{2}-[0-9]{2}-[a-z_]+\.(csv|jsonl)\.zip$")
_MONTH = re.compile(r"^[0-9]{4}-[0-9]{2}$")
Progress = Callable[[int, int], None]
Format = Literal["csv", "jsonl"]

# zlib level 6 by measurement at 100,000 enterprises (bench/RESULTS.md): level 1 is 3x faster but makes
# the files 28 % larger, level 9 is 2x slower for 3 % less. Only changed segments are compressed nightly.
# With zlib-ng, the same deflate format 2-2.3x faster than zlib at level 6 for the same size (+-2 %,
# measured on the 100,000 tables); its bytes differ from zlib's, so its version is part of every
# segment's key (a segment is never mixed with another compressor's), and it is pinned.
LEVEL = 6
COMPRESSOR = f"zlib-ng {zlib_ng.ZLIBNG_VERSION}"
SEGMENT_BYTES = 64 * 1024  # uncompressed bytes per segment, on average: small costs ratio, large costs work
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same for every build: unchanged content is unchanged bytes
CACHE = "opendata"
_STATE_VERSION = 3  # 2: segments carry their line count; 3: segments known by their records' bytes
# The rows' bytes depend on this code (and on the record, the site settings and the date's facts).
_CODE = [Path(__file__).with_name(n) for n in ("opendata.py", "tables.py", "facts.py", "charts.py", "context.py")]
CODE = files_key([*_CODE, *(Path(__file__).with_name(n) for n in ("urls.py", "schema.py"))])
DOCUMENT_CODE = files_key([Path(__file__), Path(__file__).with_name("urls.py")])  # data.json: document()


@dataclass(frozen=True)
class Stream:
    """One published file: a table in one format, or the records."""

    table: str
    format: Format
    index: int  # position in an `Encoded`'s parts

    @property
    def name(self) -> str:
        return f"{PREFIX}-{self.table}.{self.format}"


STREAMS: tuple[Stream, ...] = (
    *(Stream(t.name, fmt, 2 * i + (fmt == "jsonl")) for i, t in enumerate(TABLES) for fmt in ("csv", "jsonl")),
    Stream(RECORDS, "jsonl", 2 * len(TABLES)),
)


def document(view: View, base_url: str, day: dt.date | str | None) -> dict[str, Any]:
    """What `P/<permit>/data.json` holds: the public view with its permanent URL and its data date
    (`facts.data_date`, not the export date: an unchanged record is an unchanged file)."""
    url = urls.absolute(base_url, urls.enterprise_path(view["permit_no"]))
    as_of = day.isoformat() if isinstance(day, dt.date) else day
    return {"schema_version": view["schema_version"], "url": url, "as_of": as_of, **view}


def _json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


# --- one enterprise --------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One enterprise's bytes in every stream (`STREAMS` order), its row counts per table, and the
    date until which they hold (an ordinal)."""

    parts: tuple[bytes, ...]
    rows: tuple[int, ...]
    until: int


def encode_record(view: View, base_url: str, place: Place, as_of: dt.date) -> Encoded:
    rec = Rec(view, as_of, base_url, place)
    parts: list[bytes] = []
    rows: list[int] = []
    for t in TABLES:
        csv_bytes, jsonl_bytes, n = encode(t, rec)
        parts += (csv_bytes, jsonl_bytes)
        rows.append(n)
    parts.append(_json_line(document(view, base_url, facts.data_date(view))).encode())
    return Encoded(tuple(parts), (*rows, 1), facts.stable_until(view, as_of).toordinal())


@dataclass(frozen=True)
class _EncodeJob:
    loaded: Loaded
    base_url: str
    places: list[Place]
    as_of: dt.date


_JOB: _EncodeJob | None = None  # set before the pool forks, read by the workers


def _encode_batch(batch: list[int]) -> list[Encoded]:
    job = _JOB
    assert job is not None
    entries = job.loaded.entries
    return [
        encode_record(job.loaded.store.get(entries[i].digest), job.base_url, job.places[i], job.as_of) for i in batch
    ]


def _encoded(indexes: list[int], workers: int) -> Iterator[tuple[list[int], list[Encoded]]]:
    """The enterprises at `indexes` encoded, in order, by `workers` processes when there are many."""
    batches = [indexes[i : i + 50] for i in range(0, len(indexes), 50)]
    if workers <= 1 or len(indexes) < 1000:
        for b in batches:
            yield b, _encode_batch(b)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from zip(batches, pool.imap(_encode_batch, batches), strict=True)


# --- zip files made of reusable deflate segments -------------------------------------------------


def _crc_combine_py(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine (GF(2) matrices), for a Python whose zlib is not a loadable library."""

    def times(mat: list[int], vec: int) -> int:
        out, i = 0, 0
        while vec:
            if vec & 1:
                out ^= mat[i]
            vec >>= 1
            i += 1
        return out

    def square(mat: list[int]) -> list[int]:
        return [times(mat, m) for m in mat]

    if len2 <= 0:
        return crc1
    zeros = square(square([0xEDB88320] + [1 << i for i in range(31)]))  # appends 4 zero bits
    while len2:  # bit k of len2: append 2**k zero bytes
        zeros = square(zeros)
        if len2 & 1:
            crc1 = times(zeros, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def _libz_combine() -> Callable[[int, int, int], int]:
    name = ctypes.util.find_library("z")
    fn = getattr(ctypes.CDLL(name), "crc32_combine64", None) if name else None
    if fn is None:
        return _crc_combine_py
    fn.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64]
    fn.restype = ctypes.c_ulong
    return lambda a, b, n: fn(a, b, n) if n else a


crc_combine = _libz_combine()


def compress_segment(plain: bytes, level: int = LEVEL) -> bytes:
    """A raw deflate segment that another can follow: no final block, ends on a byte boundary."""
    if not plain:
        return b""
    c = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
    return c.compress(plain) + c.flush(zlib_ng.Z_SYNC_FLUSH)


_END = b"\x03\x00"  # an empty final block: what ends the concatenated stream
_DOS_DATE = (ZIP_TIME[0] - 1980) << 9 | ZIP_TIME[1] << 5 | ZIP_TIME[2]
_DOS_TIME = ZIP_TIME[3] << 11 | ZIP_TIME[4] << 5 | ZIP_TIME[5] // 2
_LIMIT = 0xFFFF0000  # past this a size needs ZIP64 (with a margin: the compressed size is not known first)


def _local_header(name: bytes, crc: int, csize: int, usize: int, zip64: bool) -> bytes:
    extra = struct.pack("<HHQQ", 1, 16, usize, csize) if zip64 else b""
    sizes = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (csize, usize)
    version = 45 if zip64 else 20
    head = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, version, 0, 8, _DOS_TIME, _DOS_DATE, crc, *sizes, len(name), len(extra)
    )
    return head + name + extra


def _central(name: bytes, crc: int, csize: int, usize: int, zip64: bool, comment: bytes) -> bytes:
    """The central directory of a one-file zip whose local header is at offset 0, and its end."""
    extra = struct.pack("<HHQQ", 1, 16, usize, csize) if zip64 else b""
    sizes = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (csize, usize)
    version = 45 if zip64 else 20
    entry = struct.pack(
        "<IBBHHHHHIIIHHHHHII",
        0x02014B50,
        version,
        3,  # made on Unix, wherever the build runs
        version,
        0,
        8,
        _DOS_TIME,
        _DOS_DATE,
        crc,
        *sizes,
        len(name),
        len(extra),
        0,
        0,
        0,
        0o100644 << 16,
        0,
    )
    directory = entry + name + extra
    at = len(_local_header(name, 0, 0, 0, zip64)) + csize
    tail = b""
    if at >= _LIMIT:
        end64 = at + len(directory)
        tail = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(directory), at)
        tail += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        at = 0xFFFFFFFF
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), at, len(comment))
    return directory + tail + end + comment


# first record, end, key, offset, compressed bytes, plain bytes, crc, lines (newlines in the plain bytes)
Segment = tuple[int, int, str, int, int, int, int, int]


class Same(NamedTuple):
    """A stretch of a piece's text claimed to be a byte-for-byte copy of a stretch of the text of one
    segment of the live zip (a record whose rows did not change, in a segment compressed tonight)."""

    start: int  # where the stretch starts in the piece's text
    size: int  # its bytes
    source: int  # where the live segment's compressed bytes start in the live zip
    source_size: int  # the live segment's compressed bytes
    offset: int  # where the stretch starts in the live segment's text
    before: int = -1  # where the live segment before that one starts (-1: it starts the member's data)


@dataclass(frozen=True)
class Piece:
    """One segment of a published zip's deflate data, as tonight's build wrote it."""

    at: int  # where its compressed bytes start in tonight's file
    size: int  # compressed bytes
    source: int  # where the same bytes start in the live zip (the published one); -1: compressed tonight
    plain: int  # uncompressed bytes
    crc: int  # CRC-32 of the uncompressed bytes
    lines: int  # newlines in the uncompressed bytes (for line numbers past the pieces not read)
    same: tuple[Same, ...] = ()  # compressed tonight: stretches of its text copied from live segments


@dataclass(frozen=True)
class ZipLayout:
    """How a zip written tonight is made: its one member's deflate data is [start, end) of the file,
    the pieces in order followed by an empty final block. For the verifier, which reads only the
    pieces compressed tonight and compares the rest with the live zip (`Piece.source`)."""

    path: str  # site-relative: data/yimatong-<table>.<format>.zip
    start: int
    end: int
    pieces: tuple[Piece, ...]

    @property
    def copied(self) -> int:
        """Compressed bytes claimed to be copies of the live zip's."""
        return sum(p.size for p in self.pieces if p.source >= 0)


@dataclass
class _StreamState:
    file: str  # the zip, in the cache folder
    start: int  # where its deflate data starts
    lengths: array  # per record: its bytes in this stream
    ids: array  # per record: a hash of those bytes (`_id`)
    segments: list[Segment]
    key: str  # of every segment: the same key, the same file
    bytes: int
    plain: int
    sha256: str


@dataclass
class _State:
    """What last night's cache holds: per record (in that night's order) its keys and dates, per
    stream its zip and the segments in it."""

    gen: str
    dkeys: list[str]  # the record's own key (digest, site settings, code)
    encoded_on: array  # ordinal of the as-of date its rows were encoded for
    until: array  # ordinal of facts' stable_until then
    rows: list[array]  # per table (records last): rows per record
    streams: dict[str, _StreamState]
    version: int = _STATE_VERSION
    code: str = CODE


def _read_state(folder: Path) -> _State | None:
    try:
        state = pickle.loads((folder / "state.pickle").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        return None
    if not isinstance(state, _State) or state.version != _STATE_VERSION or state.code != CODE:
        return None
    if set(state.streams) != {s.name for s in STREAMS}:
        return None
    if any(not (folder / st.file).is_file() for st in state.streams.values()):
        return None
    return state


@dataclass
class _Plan:
    """Tonight's records and where each one's bytes come from."""

    n: int
    dkeys: list[str]
    cuts: list[int]  # per record: the number its segment boundaries are chosen by (`_cut`)
    old: list[int]  # per record: its index in last night's state, or -1 when encoded tonight
    encoded_on: array
    until: array
    rows: list[array]  # per table (records last), per record
    lengths: list[array]  # per stream, per record
    ids: list[array]  # per stream, per record: `_id` of its bytes
    spooled: list[array]  # per stream, per record encoded tonight: where its bytes are in the spool
    spool: list[int]  # per stream: the spool file (a descriptor)
    previous: _State | None
    folder: Path
    gen: str
    groups: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # by `every`
    lock: threading.Lock = field(default_factory=threading.Lock)


def _groups(plan: _Plan, lengths: array) -> list[tuple[int, int]]:
    """Records in segments of about SEGMENT_BYTES: a segment ends after a record whose permit number
    says so, one in `every` (a power of two chosen by the stream's mean bytes per record). Streams of
    the same `every` share the work."""
    if plan.n == 0:
        return []
    mean = max(sum(lengths) / plan.n, 1.0)
    every = 1 << min(16, max(0, round(math.log2(SEGMENT_BYTES / mean))))
    with plan.lock:
        if every not in plan.groups:
            groups, first = [], 0
            for i, cut in enumerate(plan.cuts):
                if cut % every == 0 or i == plan.n - 1:
                    groups.append((first, i + 1))
                    first = i + 1
            plan.groups[every] = groups
        return plan.groups[every]


def _segment_key(stream: str, parts: Sequence[bytes]) -> str:
    h = hashlib.blake2b(f"{stream}\0{COMPRESSOR}\0{LEVEL}\0{SEGMENT_BYTES}".encode(), digest_size=12)
    for part in parts:
        h.update(part)
    return h.hexdigest()


def _id(part: bytes) -> int:
    """A record's bytes in one stream, as a number: equal numbers, equal bytes (64 bits)."""
    return int.from_bytes(hashlib.blake2b(part, digest_size=8).digest(), "little")


def _cut(permit_no: str) -> int:
    """What chooses the segment boundaries: the permit number's, not the record's, so a changed
    record leaves the boundaries, and every other segment's text, as they were."""
    return int.from_bytes(hashlib.blake2b(permit_no.encode(), digest_size=4).digest(), "little")


class _OldBytes:
    """Last night's bytes of one stream, read back one segment at a time (records arrive in order)."""

    def __init__(self, state: _StreamState, fd: int) -> None:
        self.state = state
        self.fd = fd
        self.firsts = [s[0] for s in state.segments]
        self.offsets = array("Q", itertools.accumulate(state.lengths, initial=0))
        self.at: int | None = None
        self.plain = b""

    def compressed(self, seg: Segment) -> bytes:
        return os.pread(self.fd, seg[4], self.state.start + seg[3])

    def where(self, j: int) -> tuple[int, int]:
        """Record `j`'s segment and where its bytes start in that segment's text."""
        k = bisect.bisect_right(self.firsts, j) - 1
        return k, self.offsets[j] - self.offsets[self.state.segments[k][0]]

    def record(self, j: int) -> bytes:
        k = bisect.bisect_right(self.firsts, j) - 1
        if k != self.at:
            self.at = k
            self.plain = zlib_ng.decompressobj(-15).decompress(self.compressed(self.state.segments[k]))
        start = self.offsets[j] - self.offsets[self.state.segments[k][0]]
        return self.plain[start : start + self.state.lengths[j]]


def _record_bytes(plan: _Plan, stream: Stream, i: int, old: _OldBytes | None) -> bytes:
    size = plan.lengths[stream.index][i]
    if plan.old[i] < 0:
        return os.pread(plan.spool[stream.index], size, plan.spooled[stream.index][i]) if size else b""
    assert old is not None
    return old.record(plan.old[i])


def _write_stream(
    plan: _Plan, stream: Stream, header: bytes, comment: bytes
) -> tuple[_StreamState, int, list[int] | None, list[tuple[Same, ...]]]:
    """Tonight's zip of one stream, in the cache folder: unchanged segments copied, the rest compressed.
    Also where each segment's bytes stand in last night's zip (-1: compressed tonight), None without one,
    and per segment the stretches of its text copied from last night's segments (`Same`)."""
    lengths, ids = plan.lengths[stream.index], plan.ids[stream.index]
    segments: list[tuple[int, int, str]] = [(0, 0, _segment_key(stream.name, [header]))] if header else []
    segments += [(a, b, _segment_key(stream.name, [ids[a:b].tobytes()])) for a, b in _groups(plan, lengths)]
    key = _segment_key(stream.name, [s[2].encode() for s in segments])
    name = f"{stream.name}.{plan.gen}.zip"
    target = plan.folder / name
    prev = plan.previous.streams[stream.name] if plan.previous else None
    if prev is not None and prev.key == key:
        os.link(plan.folder / prev.file, target)  # the same segments: the same bytes
        state = replace(prev, file=name, lengths=lengths, ids=ids)
        return state, 0, [prev.start + s[3] for s in prev.segments], []
    reusable = {s[2]: s for s in prev.segments} if prev else {}
    usize = len(header) + sum(lengths)
    zip64 = usize >= _LIMIT
    inner = stream.name.encode()
    fd = os.open(plan.folder / prev.file, os.O_RDONLY) if prev else -1
    try:
        old = _OldBytes(prev, fd) if prev else None
        done: list[Segment] = []
        sources: list[int] = []
        sames: list[tuple[Same, ...]] = []
        crc, offset, plain_total, compressed = 0, 0, 0, 0
        with target.open("wb") as out:
            start = len(_local_header(inner, 0, 0, 0, zip64))
            out.write(b"\0" * start)  # the header once the sizes and CRC are known
            for first, end, seg_key in segments:
                seg = reusable.get(seg_key)
                if seg is not None and old is not None:
                    data, size, seg_crc, lines = old.compressed(seg), seg[5], seg[6], seg[7]
                    sources.append(prev.start + seg[3] if prev else -1)
                    sames.append(())
                else:
                    plain = (
                        header
                        if first == end
                        else b"".join(_record_bytes(plan, stream, i, old) for i in range(first, end))
                    )
                    data, size, seg_crc = compress_segment(plain), len(plain), zlib_ng.crc32(plain)
                    lines = plain.count(b"\n")
                    sources.append(-1)
                    sames.append(_sames(plan, stream, first, end, old) if first < end else ())
                    compressed += 1
                out.write(data)
                done.append((first, end, seg_key, offset, len(data), size, seg_crc, lines))
                offset += len(data)
                crc = crc_combine(crc, seg_crc, size)
                plain_total += size
            out.write(_END)
            csize = offset + len(_END)
            assert plain_total == usize and (zip64 or csize < _LIMIT), stream.name
            out.write(_central(inner, crc, csize, usize, zip64, comment))
            out.seek(0)
            out.write(_local_header(inner, crc, csize, usize, zip64))
    finally:
        if fd >= 0:
            os.close(fd)
    with target.open("rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    state = _StreamState(name, start, lengths, ids, done, key, target.stat().st_size, usize, sha)
    return state, compressed, sources if prev else None, sames


def _sames(plan: _Plan, stream: Stream, first: int, end: int, old: _OldBytes | None) -> tuple[Same, ...]:
    """The records of a segment compressed tonight whose bytes are last night's (`_OldBytes.record`),
    as stretches of its text and of last night's segments' texts, neighbours in both joined (a
    record that followed the previous one last night, in the same segment, and follows it tonight)."""
    if old is None:
        return ()
    runs: list[list[int]] = []  # start, size, source, source size, offset, before: a `Same`
    lengths, was = plan.lengths[stream.index], plan.old
    segments, firsts, base = old.state.segments, old.firsts, old.state.start
    at = 0  # tonight's text so far
    follows, segment_end = -1, -1  # last night's record after the last run's, and its segment's end
    for i in range(first, end):
        size, j = lengths[i], was[i]
        if j >= 0 and j == follows and j < segment_end and runs[-1][0] + runs[-1][1] == at:
            runs[-1][1] += size
            follows = j + 1
        elif j >= 0 and size:
            k, offset = old.where(j)
            segment_end = firsts[k + 1] if k + 1 < len(firsts) else len(old.state.lengths)
            before = base + segments[k - 1][3] if k else -1
            runs.append([at, size, base + segments[k][3], segments[k][4], offset, before])
            follows = j + 1
        at += size
    return tuple(Same(*r) for r in runs)


def _layout(path: str, st: _StreamState, sources: list[int] | None, sames: list[tuple[Same, ...]]) -> ZipLayout:
    pieces = tuple(
        Piece(st.start + s[3], s[4], src, s[5], s[6], s[7], same)
        for s, src, same in zip(
            st.segments, sources or [-1] * len(st.segments), sames or [()] * len(st.segments), strict=True
        )
    )
    end = st.start + (st.segments[-1][3] + st.segments[-1][4] if st.segments else 0) + len(_END)
    return ZipLayout(path, st.start, end, pieces)


# --- the monthly archive ---------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    month: str  # YYYY-MM
    as_of: str
    files: list[Download]


def _link_or_copy(src: Path, dst: Path) -> None:
    # Published files are never changed in place, so a hard link is a safe copy that costs no disk.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _read_snapshot(folder: Path) -> Snapshot | None:
    """A previous month's snapshot, if it is whole: its manifest and every file it lists, at size."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = [Download(**f) for f in manifest["files"]]
        as_of = str(manifest["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = files and all(_FILE.match(f.name) and (folder / f.name).is_file() for f in files)
    if not ok or any((folder / f.name).stat().st_size != f.bytes for f in files):
        return None
    return Snapshot(folder.name, as_of, files)


def _archive(
    previous: Path | None,
    out: Path,
    current: Snapshot,
    sources: dict[str, str],
    manifest: str,
    sums: str,
    notes: list[str],
) -> list[Snapshot]:
    """Keep the last 12 months' snapshots: those of `previous` unchanged (a cited file must stay the
    same), plus this month's if it has none yet (its dated files are links of the latest files
    named in `sources`). Newest first."""
    window = set(facts.months_back(dt.date.fromisoformat(current.as_of), ARCHIVE_MONTHS))
    kept: list[Snapshot] = []
    old = previous / DATA / ARCHIVE if previous else None
    if old and old.is_dir():
        for folder in sorted(old.iterdir()):
            if not (_MONTH.match(folder.name) and folder.name in window):
                continue  # older than 12 months (or not ours): dropped
            snap = _read_snapshot(folder)
            if snap is None:
                notes.append(f"开放数据存档 {folder.name} 不完整，已丢弃")
                continue
            target = out / ARCHIVE / folder.name
            target.mkdir(parents=True, exist_ok=True)  # last night's tree may hold the folder
            for name in (MANIFEST, SUMS, *(f.name for f in snap.files)):
                if (folder / name).is_file():
                    _link_or_copy(folder / name, target / name)
            kept.append(snap)
    if current.month not in {s.month for s in kept}:
        target = out / ARCHIVE / current.month
        target.mkdir(parents=True, exist_ok=True)  # last night's tree may hold the folder
        for f in current.files:
            _link_or_copy(out / sources[f.name], target / f.name)
        (target / MANIFEST).write_text(manifest, encoding="utf-8")
        (target / SUMS).write_text(sums, encoding="utf-8")
        kept.append(current)
    return sorted(kept, key=lambda s: s.month, reverse=True)


# --- the data page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileLink:
    href: str
    name: str
    format: str
    rows: int
    size: str
    sha256: str


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str
    description: str
    values: str


@dataclass(frozen=True)
class TableDoc:
    name: str
    title: str
    row: str
    rows: int
    files: list[FileLink]
    columns: list[ColumnDoc]


@dataclass(frozen=True)
class SnapshotLink:
    month: str
    as_of: str
    href: str  # the snapshot's folder
    files: list[FileLink]


@dataclass(frozen=True)
class DataPage:
    common: Common
    tables: list[TableDoc]
    records: FileLink
    enterprises: int
    manifest: str
    sums: str
    example: str | None  # one enterprise's data.json, to show what it looks like
    export_schemas: list[pages.Link]
    public_schema: pages.Link
    archive: list[SnapshotLink]
    archive_months: int
    citation: str


def human_size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{max(n, 1) / 1000:.1f} kB"


def _links(files: list[Download], prefix: str = "") -> list[FileLink]:
    return [FileLink(prefix + f.name, f.name, f.format, f.rows, human_size(f.bytes), f.sha256) for f in files]


def _table_docs(files: list[Download]) -> list[TableDoc]:
    docs_: list[TableDoc] = []
    for t in TABLES:
        mine = [f for f in files if f.table == t.name]
        columns = [ColumnDoc(c.name, TYPE_LABELS[c.type], c.description, " / ".join(c.values)) for c in t.columns]
        docs_.append(TableDoc(t.name, t.title, t.row, mine[0].rows, _links(mine), columns))
    return docs_


def dictionary() -> list[dict[str, Any]]:
    """The data dictionary as data/index.json carries it."""
    return [
        {
            "name": t.name,
            "title": t.title,
            "row": t.row,
            "columns": [
                {"name": c.name, "type": c.type, "description": c.description, "values": list(c.values)}
                for c in t.columns
            ],
        }
        for t in TABLES
    ]


# --- the stage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    """One published file, as data/index.json lists it."""

    name: str  # the file name, beside the manifest that lists it
    table: str
    format: Literal["csv", "jsonl"]
    rows: int
    bytes: int
    uncompressed_bytes: int
    sha256: str


@dataclass(frozen=True)
class OpenDataStats:
    records: int  # data.json files in the output
    downloads: list[Download]
    archive: list[str]  # months kept, newest first
    notes: list[str]  # what the build log should say (an incomplete old snapshot dropped)
    encoded: int = 0  # enterprises whose rows were encoded tonight (the rest came from the cache)
    linked: int = 0  # data.json files hard-linked from the live build
    compressed: int = 0  # segments compressed tonight (the rest were copied from last night's zips)
    segments: int = 0
    # Per zip written tonight whose segments were copied from the live zip: how it is made, for the
    # verifier (verify.verify(zips=…)), which then reads only what was compressed tonight.
    zips: dict[str, ZipLayout] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.downloads)


def _dkey(entry: Entry, base_url: str, place: Place) -> str:
    return key_of(CACHE, entry.digest, CODE, base_url, [place.city, place.city_code, place.county])


def write_open_data(
    loaded: Loaded,
    staging: Path,
    previous: Path | None,
    progress: Progress | None = None,
    *,
    cache_dir: Path | None = None,
    reuse: Reuse | None = None,
    workers: int | None = None,
) -> OpenDataStats:
    """Write every data.json, the bulk downloads, the archive and the data page into `staging`.
    `previous` is the currently published output, whose archive is carried over; `cache_dir` keeps
    the encoded rows and compressed segments for the next build (None: a throwaway cache); `reuse`
    links unchanged data.json files from the live build."""
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="yimatong-opendata-") as tmp:
            return write_open_data(loaded, staging, previous, progress, cache_dir=Path(tmp), reuse=reuse)
    folder = cache_dir / CACHE
    folder.mkdir(parents=True, exist_ok=True)
    spool_dir = Path(tempfile.mkdtemp(prefix=".spool-", dir=folder))
    try:
        plan, encoded = _plan(loaded, folder, spool_dir, progress, workers or os.cpu_count() or 1)
        try:
            return _publish(loaded, staging, previous, plan, reuse, encoded)
        finally:
            for fd in plan.spool:
                os.close(fd)
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)


def _plan(loaded: Loaded, folder: Path, spool_dir: Path, progress: Progress | None, workers: int) -> tuple[_Plan, int]:
    """Tonight's records: those whose rows still hold are found in last night's state; the others
    are encoded (in `workers` processes) into spool files, one per stream."""
    global _JOB
    site = loaded.site
    today = site.as_of.toordinal()
    state = _read_state(folder)
    place = pages.places(loaded.regions)
    entries = loaded.entries
    n = len(entries)
    places = [place(e.region) for e in entries]
    dkeys = [_dkey(e, site.base_url, p) for e, p in zip(entries, places, strict=True)]
    known = {k: j for j, k in enumerate(state.dkeys)} if state else {}
    old = [-1] * n
    plan = _Plan(
        n=n,
        dkeys=dkeys,
        cuts=[_cut(e.permit_no) for e in entries],
        old=old,
        encoded_on=array("l", [today]) * n,
        until=array("l", [today]) * n,
        rows=[array("L", [0]) * n for _ in range(len(TABLES) + 1)],
        lengths=[array("Q", [0]) * n for _ in STREAMS],
        ids=[array("Q", [0]) * n for _ in STREAMS],
        spooled=[array("Q", [0]) * n for _ in STREAMS],
        spool=[],
        previous=state,
        folder=folder,
        gen=f"{os.getpid():x}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}",
    )
    if state is not None:
        for i, k in enumerate(dkeys):
            j = known.get(k, -1)
            # Same record and settings, and none of its date-dependent facts has changed since.
            if j >= 0 and state.encoded_on[j] <= today < state.until[j]:
                old[i] = j
                plan.encoded_on[i], plan.until[i] = state.encoded_on[j], state.until[j]
        # Last night's lengths, ids and row counts of the records found, one column at a time (fast).
        plan.lengths = [_take(state.streams[s.name].lengths, old, "Q") for s in STREAMS]
        plan.ids = [_take(state.streams[s.name].ids, old, "Q") for s in STREAMS]
        plan.rows = [_take(r, old, "L") for r in state.rows]
    missing = [i for i in range(n) if old[i] < 0]
    writers = [(spool_dir / s.name).open("wb", buffering=1 << 20) for s in STREAMS]
    positions = [0] * len(STREAMS)
    done = n - len(missing)
    _JOB = _EncodeJob(loaded, site.base_url, places, site.as_of)
    try:
        for batch, encoded in _encoded(missing, workers):
            for i, enc in zip(batch, encoded, strict=True):
                for s, part, w in zip(STREAMS, enc.parts, writers, strict=True):
                    plan.spooled[s.index][i] = positions[s.index]
                    plan.lengths[s.index][i] = len(part)
                    plan.ids[s.index][i] = _id(part)
                    positions[s.index] += len(part)
                    w.write(part)
                for t, r in enumerate(plan.rows):
                    r[i] = enc.rows[t]
                plan.until[i] = enc.until
            done += len(batch)
            if progress:
                progress(done, n)
    finally:
        _JOB = None
        for w in writers:
            w.close()
    if progress and not missing:
        progress(n, n)
    plan.spool = [os.open(spool_dir / s.name, os.O_RDONLY) for s in STREAMS]
    return plan, len(missing)


def _take(column: array, at: list[int], typecode: str) -> array:
    return array(typecode, [column[j] if j >= 0 else 0 for j in at])


def _publish(
    loaded: Loaded, staging: Path, previous: Path | None, plan: _Plan, reuse: Reuse | None, encoded: int
) -> OpenDataStats:
    site = loaded.site
    as_of = site.as_of
    out = staging / DATA
    out.mkdir(parents=True, exist_ok=True)
    by_name = {t.name: t for t in TABLES}
    headers = {s.name: csv_header(by_name[s.table]) if s.format == "csv" else b"" for s in STREAMS}
    comment = {s.name: f"yimatong open data; table {s.table}; {site.base_url}{DATA}".encode() for s in STREAMS}
    # zlib and the file reads release the GIL: the streams compress on every core while this
    # thread writes the data.json files.
    with ThreadPoolExecutor(max_workers=min(len(STREAMS), os.cpu_count() or 1)) as pool:
        jobs = {s.name: pool.submit(_write_stream, plan, s, headers[s.name], comment[s.name]) for s in STREAMS}
        linked = _documents(loaded, staging, plan, reuse)
        results = {name: job.result() for name, job in jobs.items()}
    streams = {name: r[0] for name, r in results.items()}

    downloads = []
    zips: dict[str, ZipLayout] = {}
    for s in STREAMS:
        st = streams[s.name]
        path = f"{DATA}{s.name}.zip"
        if reuse is None or not reuse.link(path, st.key):
            _link_or_copy(plan.folder / st.file, staging / path)
        rows = sum(plan.rows[len(TABLES) if s.table == RECORDS else [t.name for t in TABLES].index(s.table)])
        downloads.append(Download(f"{s.name}.zip", s.table, s.format, rows, st.bytes, st.plain, st.sha256))
        # The segments were copied from the cache's zip; they are copies of the live one's bytes when
        # that is the same file (a hard link, unless a --full build published in between).
        sources = results[s.name][2]
        last = plan.folder / plan.previous.streams[s.name].file if plan.previous else None
        if sources is not None and previous is not None and last and _same_file(previous / path, last):
            zips[path] = _layout(path, st, sources, results[s.name][3])
    _save(plan, streams)

    snapshot = _manifest(site.program_name, as_of, downloads)
    sums = "".join(f"{d.sha256}  {d.name}\n" for d in downloads)  # `sha256sum -c SHA256SUMS`
    notes: list[str] = []
    dated = [replace(d, name=dated_name(as_of, d.name)) for d in downloads]
    current = Snapshot(as_of.strftime("%Y-%m"), as_of.isoformat(), dated)
    archived = _dump(_manifest(site.program_name, as_of, dated))
    archived_sums = "".join(f"{d.sha256}  {d.name}\n" for d in dated)
    sources = {d.name: f.name for d, f in zip(dated, downloads, strict=True)}
    archive = _archive(previous, out, current, sources, archived, archived_sums, notes)
    listing = [{"month": s.month, "as_of": s.as_of, "path": f"{ARCHIVE}{s.month}/"} for s in archive]
    (out / MANIFEST).write_text(_dump({**snapshot, "archive": listing}), encoding="utf-8")
    (out / SUMS).write_text(sums, encoding="utf-8")
    _page(loaded, staging, downloads, archive, plan.n, reuse)
    return OpenDataStats(
        plan.n,
        downloads,
        [s.month for s in archive],
        notes,
        encoded=encoded,
        linked=linked,
        compressed=sum(r[1] for r in results.values()),
        segments=sum(len(st.segments) for st in streams.values()),
        zips=zips,
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _documents(loaded: Loaded, staging: Path, plan: _Plan, reuse: Reuse | None) -> int:
    """Every P/<permit>/data.json: linked from the live build when its record is unchanged, else
    written from the records stream's bytes (tonight's, or last night's for a record the live build
    lacks)."""
    site = loaded.site
    records = STREAMS[-1]
    old: _OldBytes | None = None
    fd = -1
    linked = 0
    try:
        for i, e in enumerate(loaded.entries):
            path = urls.enterprise_path(e.permit_no) + "data.json"
            if reuse is not None and reuse.link(path, key_of("data.json", e.digest, site.base_url, DOCUMENT_CODE)):
                linked += 1
                continue
            if plan.old[i] >= 0 and old is None:
                assert plan.previous is not None
                prev = plan.previous.streams[records.name]
                fd = os.open(plan.folder / prev.file, os.O_RDONLY)
                old = _OldBytes(prev, fd)
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_record_bytes(plan, records, i, old))
    finally:
        if fd >= 0:
            os.close(fd)
    return linked


def _save(plan: _Plan, streams: dict[str, _StreamState]) -> None:
    """Tonight's state for the next build, then last night's zips go (a run that dies before the
    state is replaced leaves last night's state and zips as they were)."""
    state = _State(plan.gen, plan.dkeys, plan.encoded_on, plan.until, plan.rows, streams)
    tmp = plan.folder / f"state.{plan.gen}.tmp"
    tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(plan.folder / "state.pickle")
    keep = {st.file for st in streams.values()} | {"state.pickle"}
    for f in plan.folder.iterdir():
        if f.name not in keep and not f.name.startswith(".spool-"):
            f.unlink(missing_ok=True)


def dated_name(as_of: dt.date, name: str) -> str:
    """A file's name in the monthly archive: the snapshot's date after the prefix."""
    return name.replace(f"{PREFIX}-", f"{PREFIX}-{as_of.isoformat()}-", 1)


def _manifest(program: str, as_of: dt.date, downloads: list[Download]) -> dict[str, Any]:
    return {
        "title": f"{program} 开放数据",
        "as_of": as_of.isoformat(),
        "schema_version": SCHEMA_VERSION,
        "files": [asdict(d) for d in downloads],
        "tables": dictionary(),
    }


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1) + "\n"


def _page(
    loaded: Loaded, staging: Path, downloads: list[Download], archive: list[Snapshot], count: int, reuse: Reuse | None
) -> None:
    site = loaded.site
    path = DATA
    root = root_of(path)
    first = loaded.entries[0].permit_no if loaded.entries else None
    records = next(d for d in downloads if d.table == RECORDS)
    page = DataPage(
        common=Common(site, root, "开放数据", path),
        tables=_table_docs(downloads),
        records=_links([records])[0],
        enterprises=count,
        manifest=MANIFEST,
        sums=SUMS,
        example=root + urls.enterprise_path(first) + "data.json" if first else None,
        export_schemas=[
            pages.Link(f"{m.__name__}（{name}）", root + "schema/" + name) for name, m in docs.SCHEMAS.items()
        ],
        public_schema=pages.Link(docs.PUBLIC_SCHEMA, root + "schema/" + docs.PUBLIC_SCHEMA),
        archive=[
            SnapshotLink(s.month, s.as_of, f"{ARCHIVE}{s.month}/", _links(s.files, f"{ARCHIVE}{s.month}/"))
            for s in archive
        ],
        archive_months=ARCHIVE_MONTHS,
        citation=f"{site.program_name}开放数据，数据截至 {cn_date(site.as_of)}，{site.base_url}{DATA}",
    )
    env = pages.environment()
    today = site.as_of.isoformat()
    key = key_of(pages.template_key(env, "data.html"), repr(page))
    changed = reuse.changed_on(path + "index.html", key, today) if reuse is not None else today
    page = replace(page, common=replace(page.common, stamp=Stamp(today, changed)))
    pages.write(staging, path + "index.html", env.get_template("data.html").render(page=page))
