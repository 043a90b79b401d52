"""Search: a static index of names, codes and filters that a phone reads a few kilobytes of.

Pagefind matches whole words and word prefixes, and segments Chinese differently when indexing
(jieba) and when querying (the browser), so fragments of names and codes are missed (Pagefind
issues #1237 and #987; measured in bench/RESULTS.md). This stage writes its own index instead,
from the rows the lists show (the public view only), under `search/i/`:

- `s/<n>.bin`   name bigrams (overlapping pairs of characters, the approach of Lucene's CJK
                bigram analyzer), sharded by a hash of the bigram: per bigram the enterprises whose
                name holds it, with a bit mask of the positions where it starts, so the client
                checks that the bigrams of a fragment are adjacent (an exact substring match).
- `h/<cp>.bin`  the few bigrams in more than HEAVY_SHARE of the names (公司, 有限, 广西…): their
                position masks would weigh 100+ kB, so only the set and the set of names starting
                with them; the client checks such matches against the name before showing them.
- `r/<n>.json`  what a result shows: the enterprises whose ids are n*RECORDS_SPAN and up.
- `c/`, `x/`    permit numbers sorted, and sorted reversed, in files of about CODES_PER_FILE with a
                list of each file's first key and count: a prefix (USCC, 8+ characters) or a suffix (6+) of a
                permit number is a range in one of them.
- `f/<kind>-<key>.bin`  the set of enterprises of each filter value (city, county, industry,
                category, credit level, permit status): a sorted id list or a bitmap, the smaller.

An enterprise's id is a function of its permit number and of the number of enterprises only
(`assign_ids`: a hash of the number, in a space twice the size of the site), so a night that adds,
renames or re-rates a few enterprises changes only the files that name them: their bigrams' shards,
their records file, their filter sets. Every file is named by a hash of its content
(`s/12.0f3a9c21be.bin`), so a CDN and a browser keep it for ever and a search page cached from one
night never reads another night's file under the same name. Nor does the build make them all
again: a night's changed rows are patched into the live index (`_update`: the shards the changed
names' bigrams hash to are read, patched and encoded again, with the changed enterprises' records
files and filter sets; every other file is linked), unless the index changes shape (a new id
space or number of shards, a bigram turning heavy or light), when it is built whole; a test holds
the patch equal to the whole build. The client finds a numbered file's
name in a directory (`d/<kind>-<g>.json`, DIR_SIZE names a file, itself content-named); the page
carries the directories' names, the heavy bigrams' and the code keys' inline. Sets are varints
(LEB128) of id gaps, or bitmaps; the format is read by layouts/search.js. The search page itself is
rendered from layouts/search.html; only it carries JavaScript.

The client reads only enough bigrams to cover the query (their positions pin them: 南宁|化工), one
shard each, then the records of the 20 results it shows. Ranking: names starting with the query
first, then names holding it, earlier first, then enterprises matched only by place (a city or
county name); a whole-name match leads its page. Filters intersect id sets. Measured against plain
Pagefind in bench/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import time
import unicodedata
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from . import facts, pages
from .context import TONE_OF_STATUS, Common, Stamp, root_of
from .load import Loaded
from .manifest import Records, Reuse, files_key, key_of
from .publish import write_file
from .schema import Regions

ROOT = Path(__file__).resolve().parent.parent
CLIENT_JS = ROOT / "layouts" / "search.js"
PATH = "search/"
PAGE = PATH + "index.html"
RECORDS_SPAN = 32  # ids a records file covers (about 12 enterprises: ids are half used)
DIR_SIZE = 64  # numbered files a directory names
HASH_CHARS = 10  # hex digits of a file's content hash in its name (40 bits)
CODES_PER_FILE = 256  # on average
HEAVY_SHARE = 0.10  # bigrams in more names than this share lose their position masks
HEAVY_MIN = 64  # …and never below this many names (a small site stores every mask)
SHARD_BYTES = 2048  # aim for shards of about this size
MAX_POSITION = 30  # masks are 31-bit (JavaScript's bit operators are 32-bit signed)
UNKNOWN_MASK = 0  # "somewhere in the name": positions past MAX_POSITION; the client verifies
# Place names are found with or without their suffix (防城港市 / 防城港, 港口区 / 港口).
_PLACE_SUFFIX = re.compile(r"(?:(?:壮|瑶|苗|侗|毛南|仫佬|京|彝|各)族自治县|自治县|市|县|区)$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SearchStats:
    enterprises: int
    files: int
    bytes: int
    shards: int
    heavy: int  # bigrams stored without positions
    seconds: float
    version: str


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    count: int


@dataclass(frozen=True)
class SearchPage:
    """The search page's context: the filters' options (also what a no-JavaScript reader sees
    through the browsing links) and the index's description for the client, as JSON."""

    common: Common
    total: int
    cities: list[Option]
    industries: list[Option]
    categories: list[Option]
    credits: list[Option]
    statuses: list[Option]
    script: str  # the client's file name, relative to the page
    meta_json: str  # safe inside <script type="application/json">


# --- text -----------------------------------------------------------------------------------


def normalise_name(text: str) -> str:
    """Names and queries alike: NFKC (full-width letters, digits and brackets become ASCII),
    lower case, no white space. layouts/search.js does the same."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text)).lower()


def bigrams(text: str) -> list[str]:
    """Overlapping pairs of characters (code points) of an already normalised text."""
    return [text[i : i + 2] for i in range(len(text) - 1)]


def fnv1a(text: str) -> int:
    """32-bit FNV-1a over the code points; layouts/search.js computes the same with Math.imul."""
    h = 0x811C9DC5
    for ch in text:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def shard_of(bigram: str, shards: int) -> int:
    return fnv1a(bigram) % shards


def place_aliases(name: str) -> list[str]:
    """A city's or county's name as people type it: full, and without 市/县/区/…自治县."""
    base = _PLACE_SUFFIX.sub("", name)
    return [name] if base == name or len(base) < 2 else [name, base]


# --- binary encodings (read by layouts/search.js) --------------------------------------------


def varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_ids(ids: Sequence[int], universe: int) -> bytes:
    """A sorted id set: type 0 = count + gaps as varints; type 1 = bitmap; whichever is smaller."""
    gaps = bytearray()
    varint(len(ids), gaps)
    prev = -1
    for i in ids:
        varint(i - prev - 1, gaps)
        prev = i
    size = (universe + 7) // 8
    if len(gaps) <= size + 3:
        return b"\x00" + bytes(gaps)
    bitmap = bytearray(size)
    for i in ids:
        bitmap[i >> 3] |= 1 << (i & 7)
    head = bytearray(b"\x01")
    varint(size, head)
    return bytes(head + bitmap)


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """One LEB128 varint at `offset` (for tests and the benchmark): (value, next offset)."""
    value, shift = 0, 0
    while True:
        b = data[offset]
        offset += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, offset


def decode_ids(data: bytes, offset: int = 0) -> tuple[list[int], int]:
    """The inverse of encode_ids (for tests and the benchmark); returns (ids, next offset)."""

    def read() -> int:
        nonlocal offset
        value, offset = read_varint(data, offset)
        return value

    kind = data[offset]
    offset += 1
    if kind == 0:
        n, ids, prev = read(), [], -1
        for _ in range(n):
            prev += read() + 1
            ids.append(prev)
        return ids, offset
    size = read()
    bits = bin(int.from_bytes(data[offset : offset + size], "little"))[:1:-1]  # the lowest bit first
    return [i for i, bit in enumerate(bits) if bit == "1"], offset + size


def position_mask(positions: Iterable[int]) -> int:
    mask = 0
    for p in positions:
        if p > MAX_POSITION:
            return UNKNOWN_MASK
        mask |= 1 << p
    return mask


# --- the index --------------------------------------------------------------------------------


def id_space(count: int) -> int:
    """Ids are drawn from at least twice as many numbers as there are enterprises: a power of two,
    so it changes (and every id with it) only when the site doubles or halves."""
    space = 64
    while space < 2 * count:
        space *= 2
    return space


def home(permit_no: str, space: int) -> int:
    return int.from_bytes(hashlib.blake2b(permit_no.encode(), digest_size=8).digest(), "big") % space


def assign_ids(permit_nos: Iterable[str]) -> dict[str, int]:
    """Each permit's id: its home (a hash of the number) or, where that is taken, the next free
    number after it (linear probing, in the order of home and number, so the ids depend on the set
    of numbers alone). A permit added or removed moves at most the few ids after it in its run;
    a rename or a new status moves none."""
    numbers = set(permit_nos)
    space = id_space(len(numbers))
    ids, last = {}, -1
    for h, number in sorted((home(n, space), n) for n in numbers):
        last = max(h, last + 1)
        ids[number] = last
    return ids


@dataclass(frozen=True)
class Doc:
    """An enterprise as the index holds it."""

    id: int  # assign_ids
    row: pages.Row
    county: str | None  # county code
    credit: str | None  # public credit level; None when not rated or withheld

    @cached_property
    def key(self) -> str:
        """The normalised name (made when asked: a patched night needs the changed names' only)."""
        return normalise_name(self.row.name)


def _county_codes(regions: Regions) -> dict[tuple[str, str], str]:
    """(city code, county name) → county code."""
    return {(c.code, k.name): k.code for c in regions.cities for k in c.counties}


def _doc(i: int, r: pages.Row, counties: dict[tuple[str, str], str]) -> Doc:
    return Doc(i, r, counties.get((r.city_code, r.county or "")), r.credit)


def _docs(rows: list[pages.Row], regions: Regions) -> tuple[list[Doc], int]:
    """The enterprises in id order, and the id space (ids are below it)."""
    counties = _county_codes(regions)
    ids = assign_ids(r.permit_no for r in rows)
    docs = sorted((_doc(ids[r.permit_no], r, counties) for r in rows), key=lambda d: d.id)
    return docs, max(id_space(len(ids)), docs[-1].id + 1 if docs else 0)


def _postings(docs: list[Doc]) -> dict[str, dict[int, list[int]]]:
    """bigram → id → start positions (ids ascend, since docs are visited in id order)."""
    found: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for d in docs:
        for pos, bg in enumerate(bigrams(d.key)):
            found[bg].setdefault(d.id, []).append(pos)
    return found


def _bigram_bytes(bigram: str, masks: dict[int, int]) -> bytes:
    """A bigram's part of its shard: its code points, then (id gap, position mask) per enterprise,
    ids ascending."""
    out = bytearray()
    for ch in bigram:
        varint(ord(ch), out)
    varint(len(masks), out)
    prev = -1
    for i, mask in masks.items():
        varint(i - prev - 1, out)
        varint(mask, out)
        prev = i
    return bytes(out)


def decode_shard(data: bytes) -> dict[str, dict[int, int]]:
    """A shard's bigrams: bigram → id → position mask (the inverse of the shard's encoding)."""
    at = 0

    def read() -> int:
        nonlocal at
        value, at = read_varint(data, at)
        return value

    out: dict[str, dict[int, int]] = {}
    for _ in range(read()):
        bigram = chr(read()) + chr(read())
        masks, prev = {}, -1
        for _ in range(read()):
            prev += read() + 1
            masks[prev] = read()
        out[bigram] = masks
    return out


def _shard_file(parts: list[bytes]) -> bytes:
    head = bytearray()
    varint(len(parts), head)
    return bytes(head) + b"".join(parts)


def shard_count(total: int) -> int:
    """Shards for `total` bytes of bigrams: a power of two, so shards split evenly as the site grows."""
    shards = 1
    while shards * SHARD_BYTES < total:
        shards *= 2
    return shards


def heavy_limit(enterprises: int) -> int:
    """A bigram in more names than this is heavy."""
    return max(HEAVY_MIN, int(enterprises * HEAVY_SHARE))


def heavy_key(bigram: str) -> str:
    return "-".join(f"{ord(c):x}" for c in bigram)


def _name_files(docs: list[Doc], space: int) -> tuple[list[bytes], dict[str, bytes], int]:
    """The bigram shards, the heavy bigrams' files by bigram, and the shards' bigram bytes."""
    postings = _postings(docs)
    limit = heavy_limit(len(docs))
    heavy: dict[str, bytes] = {}
    for bg in sorted(bg for bg, entries in postings.items() if len(entries) > limit):
        entries = postings.pop(bg)
        starts = [i for i, positions in entries.items() if 0 in positions]
        heavy[bg] = _heavy_file(list(entries), starts, space)
    encoded = {
        bg: _bigram_bytes(bg, {i: position_mask(positions) for i, positions in entries.items()})
        for bg, entries in postings.items()
    }
    total = sum(map(len, encoded.values()))
    shards = shard_count(total)
    buckets: dict[int, list[bytes]] = defaultdict(list)
    for bg in sorted(encoded):
        buckets[shard_of(bg, shards)].append(encoded[bg])
    # every shard exists (an empty one too): the client needs no listing
    return [_shard_file(buckets[s]) for s in range(shards)], heavy, total


def _heavy_file(ids: list[int], starts: list[int], space: int) -> bytes:
    return encode_ids(ids, space) + encode_ids(starts, space)


def _code_files(docs: list[Doc], reverse: bool) -> tuple[list[bytes], bytes]:
    """Permit numbers (or reversed ones) sorted and front-coded, in files that end where a number's
    hash says (about CODES_PER_FILE a file, so a new number changes its own file, not the ones
    after it), and the list of each file's first key and count (`keys.json`) for the client's
    binary search."""
    keyed = sorted(((d.row.permit_no[::-1] if reverse else d.row.permit_no), d.id) for d in docs)
    chunks: list[list[tuple[str, int]]] = []
    for key, i in keyed:
        if not chunks or zlib.crc32(key.encode()) % CODES_PER_FILE == 0 or len(chunks[-1]) >= 4 * CODES_PER_FILE:
            chunks.append([])
        chunks[-1].append((key, i))
    files = [_json([[*front_code(prev, key), i] for prev, (key, i) in _pairs(chunk)]) for chunk in chunks]
    firsts = [chunk[0][0] for chunk in chunks]
    keys = _json(
        [[*front_code(prev, key), len(chunk)] for prev, key, chunk in zip(["", *firsts], firsts, chunks, strict=False)]
    )
    return files, keys


def _pairs(chunk: list[tuple[str, int]]) -> Iterable[tuple[str, tuple[str, int]]]:
    """Each entry with the key before it ('' for the first of a file: files decode alone)."""
    return zip(["", *(key for key, _ in chunk)], chunk, strict=False)


def front_code(prev: str, key: str) -> list[Any]:
    """[characters shared with the previous key, the rest]: sorted codes share long prefixes."""
    n = _shared(prev, key)
    return [n, key[n:]]


def _shared(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Tables:
    """The values the records and filters refer to by index, in the order the page lists them."""

    cities: list[tuple[str, str]]  # code, name
    counties: list[tuple[str, str, str]]  # code, name, city code
    industries: list[tuple[str, str]]  # code, name
    categories: list[str]
    statuses: list[str]
    credits: list[str]


def _tables(loaded: Loaded, docs: list[Doc]) -> Tables:
    regions = loaded.regions
    industries = sorted({(d.row.industry, d.row.industry_name) for d in docs})
    return Tables(
        cities=[(c.code, c.name) for c in regions.cities],
        counties=[(k.code, k.name, c.code) for c in regions.cities for k in c.counties],
        industries=industries,
        categories=list(pages.CATEGORIES),
        statuses=list(facts.STATUS_LABELS),
        credits=[c.level for c in loaded.site.credit_scale],
    )


def _record_files(docs: list[Doc], space: int, t: Tables, only: set[int] | None = None) -> dict[int, bytes]:
    """File n: [id - n*RECORDS_SPAN, permit, name, city, county, industry code, category, status,
    credit] of the enterprises with ids from n*RECORDS_SPAN (every file exists, an empty one too;
    `only`: these files alone). Industries by code, not by their place in a list that a new
    industry would shift."""
    city = {code: i for i, (code, _) in enumerate(t.cities)}
    county = {code: i for i, (code, _, _) in enumerate(t.counties)}
    category = {c: i for i, c in enumerate(t.categories)}
    status = {s: i for i, s in enumerate(t.statuses)}
    credit = {c: i for i, c in enumerate(t.credits)}
    numbers = range(-(-space // RECORDS_SPAN)) if only is None else sorted(only)
    chunks: dict[int, list[list[Any]]] = {n: [] for n in numbers}
    for d in docs:
        chunk = chunks.get(d.id // RECORDS_SPAN)
        if chunk is not None:
            chunk.append(
                [
                    d.id % RECORDS_SPAN,
                    d.row.permit_no,
                    d.row.name,
                    city[d.row.city_code],
                    county.get(d.county or "", -1),
                    d.row.industry,
                    category.get(d.row.category, -1),
                    status[d.row.status],
                    credit.get(d.credit or "", -1),
                ]
            )
    return {n: _json(chunk) for n, chunk in chunks.items()}


def filter_keys(d: Doc, credits: list[str]) -> list[tuple[str, str]]:
    """The (kind, value) pairs an enterprise is found under; the file is f/<kind>-<value>.bin."""
    keys = [("city", d.row.city_code), ("industry", d.row.industry), ("status", d.row.status)]
    keys.append(("category", pages.CATEGORIES.get(d.row.category, "other")))
    if d.county:
        keys.append(("county", d.county))
    if d.credit in credits:  # configurable text, so by its rank on the scale
        keys.append(("credit", str(credits.index(d.credit))))
    return keys


def _filter_files(
    docs: list[Doc], space: int, t: Tables, only: set[tuple[str, str]] | None = None
) -> tuple[dict[str, bytes], Counter[tuple[str, str]]]:
    """The id set of each filter value (`only`: of these values), by `<kind>-<value>`, and the
    counts the page shows (of every value)."""
    sets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for d in docs:
        for key in filter_keys(d, t.credits):
            sets[key].append(d.id)
    files = {
        f"{kind}-{value}": encode_ids(ids, space)
        for (kind, value), ids in sorted(sets.items())
        if only is None or (kind, value) in only
    }
    return files, Counter({key: len(ids) for key, ids in sets.items()})


# --- the stage ------------------------------------------------------------------------------


# Code whose change changes the index or the search page (the templates are keyed apart).
_CODE = [Path(__file__), CLIENT_JS, *(Path(__file__).with_name(n) for n in ("pages.py", "context.py", "facts.py"))]


def frame_key(loaded: Loaded) -> str:
    """What the index files are made from besides the rows: the regions (place codes), the credit
    scale and the code. The search page carries it, so the next night knows whether its files can
    be patched."""
    return key_of(loaded.regions.model_dump(mode="json"), [c.level for c in loaded.site.credit_scale], files_key(_CODE))


# What of a list row the index and the search page show (not its counts of exceedances, penalties…).
_SHOWN = operator.attrgetter(
    "permit_no", "name", "city_code", "county", "industry", "industry_name", "category", "status", "credit"
)


def search_key(loaded: Loaded, rows: list[pages.Row]) -> str:
    """Everything the index and the search page are made from: of the list rows, the names, codes,
    places, statuses and credit levels (`_SHOWN`); the regions, the site settings (not the export
    date, which the page does not show), the template and the code. Most nights change none of it
    (new monitoring data, a new exceedance show on the pages and lists only)."""
    return key_of(
        hashlib.blake2b(repr([_SHOWN(r) for r in rows]).encode(), digest_size=12).hexdigest(),
        frame_key(loaded),
        pages._site_key(loaded.site),
        pages.template_key(pages.environment(), "search.html"),
    )


def build_search(
    loaded: Loaded,
    rows: list[pages.Row],
    staging: Path,
    progress: Callable[[int, int], None] | None = None,
    reuse: Reuse | None = None,
) -> SearchStats:
    """Write the index, the client and the search page into `staging`: the live build's files
    where they are made from the same inputs (all of them, most nights; else the files whose
    content, hence name, is unchanged)."""
    started = time.perf_counter()
    key = search_key(loaded, rows)
    today = loaded.site.as_of.isoformat()
    changed = reuse.changed_on(PAGE, key, today) if reuse is not None else today
    kept = _reused(reuse, key) if reuse is not None else None
    stats = kept or _build(loaded, rows, staging, progress, Stamp(None, changed), reuse)
    if reuse is not None:
        reuse.keys[PAGE] = key
    return replace(stats, seconds=round(time.perf_counter() - started, 3))


def _reused(reuse: Reuse, key: str) -> SearchStats | None:
    """The live build's search files, if its search page was made from `key` (the index files are
    content-named: each is its own key)."""
    if reuse.previous.key(PAGE) != key:
        return None
    live = [p for p in reuse.previous.outputs if p.startswith(PATH)]
    if not all(reuse.link(p, reuse.previous.key(p) or "") for p in live):
        return None
    return SearchStats(0, len(live), 0, 0, 0, 0.0, _version(sorted(p for p in live if p.startswith(PATH + "i/"))))


def _version(paths: Iterable[str]) -> str:
    """A name for the whole index (for reports and tests): a hash of its files' names."""
    return hashlib.blake2b("\n".join(paths).encode(), digest_size=6).hexdigest()


def content_hash(data: bytes) -> str:
    """What names a file by its content (the index's files, the client): HASH_CHARS hex digits."""
    return hashlib.blake2b(data, digest_size=HASH_CHARS // 2).hexdigest()


@dataclass
class Index:
    """The index files under their content names, and what the page says of them (`_meta`). A
    patched index holds only tonight's new files' bytes; `kept` names the live files it keeps."""

    files: dict[str, bytes]
    dirs: dict[str, Any]
    keys: dict[str, str]  # c, x: their keys.json
    heavy: dict[str, str]  # bigram: its file's name (without .bin)
    shards: int
    enterprises: int
    shard_bytes: int  # the bigrams' bytes in all shards (what their number follows)
    kept: set[str] = field(default_factory=set)

    def put(self, stem: str, ext: str, data: bytes | str) -> str:
        """Adds a file as `<stem>.<hash>.<ext>` (a str: the hash of a live file kept); returns the hash."""
        if isinstance(data, str):
            self.kept.add(f"{stem}.{data}.{ext}")
            return data
        digest = content_hash(data)
        self.files[f"{stem}.{digest}.{ext}"] = data
        return digest

    def numbered(self, kind: str, ext: str, files: Sequence[bytes | str]) -> None:
        """Files `<kind>/<n>`, and the directories that name them, DIR_SIZE a directory."""
        hashes = [self.put(f"{kind}/{n}", ext, data) for n, data in enumerate(files)]
        self.dirs[kind] = [
            self.put(f"d/{kind}-{g}", "json", _json(hashes[at : at + DIR_SIZE]))
            for g, at in enumerate(range(0, len(hashes), DIR_SIZE))
        ]

    def filters(self, hashes: Mapping[str, bytes | str]) -> None:
        names = {name: self.put(f"f/{name}", "bin", data) for name, data in sorted(hashes.items())}
        self.dirs["f"] = self.put("d/f", "json", _json(names))  # by kind-value: few, and not numbered

    def names(self) -> set[str]:
        return self.files.keys() | self.kept


def _index(docs: list[Doc], space: int, tables: Tables) -> tuple[Index, Counter[tuple[str, str]]]:
    shards, heavy, total = _name_files(docs, space)
    index = Index({}, {}, {}, {}, len(shards), len(docs), total)
    index.numbered("s", "bin", shards)
    index.heavy = {bg: f"{heavy_key(bg)}.{index.put(f'h/{heavy_key(bg)}', 'bin', data)}" for bg, data in heavy.items()}
    index.numbered("r", "json", list(_record_files(docs, space, tables).values()))
    for folder, reverse in (("c", False), ("x", True)):
        codes, keys = _code_files(docs, reverse)
        index.numbered(folder, "json", codes)
        index.keys[folder] = index.put(f"{folder}/keys", "json", keys)
    filters, counts = _filter_files(docs, space, tables)
    index.filters(filters)
    return index, counts


# --- a night's changes, patched into the live index ---------------------------------------------


@dataclass(frozen=True)
class LiveIndex:
    """The live build's index as its search page and directories name it."""

    meta: dict[str, Any]
    numbered: dict[str, list[str]]  # s, r, c, x: the hash of each file, by number
    filters: dict[str, str]  # kind-value: hash

    @classmethod
    def read(cls, page_html: str, read: Callable[[str], bytes | None]) -> LiveIndex | None:
        """From the search page and `read(path)` (a site path); None if anything is missing."""
        meta = page_meta(page_html)
        if meta is None or "frame" not in meta:
            return None
        numbered: dict[str, list[str]] = {}
        filters: dict[str, str] = {}
        for kind, path, first in _directories(meta):
            data = read(path)
            if data is None:
                return None
            if first is None:
                filters = json.loads(data)
            else:
                numbered.setdefault(kind, []).extend(json.loads(data))
        return cls(meta, numbered, filters)


def _indexed(d: Doc) -> tuple[Any, ...]:
    """What of an enterprise the index holds."""
    r = d.row
    return (d.id, r.name, r.city_code, d.county, r.industry, r.category, r.status, d.credit)


def _update(
    live: LiveIndex,
    read: Callable[[str], bytes | None],
    before: dict[str, Doc],
    after: dict[str, Doc],
    docs: list[Doc],
    space: int,
    tables: Tables,
) -> tuple[Index, Counter[tuple[str, str]]] | None:
    """The index for `docs`, as `_index` makes it, from the live index and the enterprises whose
    indexed view (`_indexed`) differs tonight: `before`, last night's view of those that were
    there; `after`, tonight's of those that are. Only the files they are in are made again. None
    where the whole index changes shape (the id space, the number of shards, a bigram turning
    heavy or light): build it whole."""
    meta = live.meta
    if meta["space"] != space or len(live.numbered.get("s", ())) != meta["shards"]:
        return None
    names = _patch_names(live, read, before, after, len(docs), space)
    if names is None:
        return None
    shards, heavy, total = names
    index = Index({}, {}, dict(meta["keys"]), {}, meta["shards"], len(docs), total)
    index.numbered("s", "bin", shards)
    index.heavy = {
        bg: f"{heavy_key(bg)}.{index.put(f'h/{heavy_key(bg)}', 'bin', data)}" for bg, data in sorted(heavy.items())
    }
    groups = {d.id // RECORDS_SPAN for d in (*before.values(), *after.values())}
    records: list[bytes | str] = list(live.numbered["r"])
    for n, data in _record_files(docs, space, tables, groups).items():
        records[n] = data
    index.numbered("r", "json", records)
    same_codes = before.keys() == after.keys() and all(before[p].id == after[p].id for p in before)
    for folder, reverse in (("c", False), ("x", True)):
        if same_codes:  # the same numbers with the same ids: the code lists stand
            index.numbered(folder, "json", live.numbered[folder])
            index.put(f"{folder}/keys", "json", meta["keys"][folder])
        else:
            codes, keys = _code_files(docs, reverse)
            index.numbered(folder, "json", codes)
            index.keys[folder] = index.put(f"{folder}/keys", "json", keys)
    touched = {k for d in (*before.values(), *after.values()) for k in filter_keys(d, tables.credits)}
    filters, counts = _filter_files(docs, space, tables, touched)
    kept = {name: h for name, h in live.filters.items() if tuple(name.split("-", 1)) not in touched}
    index.filters({**kept, **filters})
    return index, counts


def _patch_names(
    live: LiveIndex,
    read: Callable[[str], bytes | None],
    before: dict[str, Doc],
    after: dict[str, Doc],
    enterprises: int,
    space: int,
) -> tuple[list[bytes | str], dict[str, bytes | str], int] | None:
    """The shards and heavy bigrams with the changed names (or ids) taken out and put in again:
    the live shards those names' bigrams hash to are read, patched and encoded anew."""
    meta = live.meta
    shards, heavy = meta["shards"], meta["heavy"]
    limit = heavy_limit(enterprises)
    if limit < heavy_limit(meta["n"]):
        return None  # a light bigram of an unread shard could now be heavy
    moved = [p for p in before.keys() | after.keys() if _name_of(before.get(p)) != _name_of(after.get(p))]
    gone: dict[str, set[int]] = defaultdict(set)
    for p in moved:
        if p in before:
            for bg in bigrams(before[p].key):
                gone[bg].add(before[p].id)
    come = _postings(sorted((after[p] for p in moved if p in after), key=lambda d: d.id))
    files: list[bytes | str] = list(live.numbered["s"])
    total = meta["sb"]
    for s in sorted({shard_of(bg, shards) for bg in gone.keys() | come.keys() if bg not in heavy}):
        data = read(f"{PATH}i/s/{s}.{files[s]}.bin")
        if data is None:
            return None
        entries = decode_shard(data)
        total -= len(data) - read_varint(data, 0)[1]  # after the head: the bigrams' count
        for bg, masks in entries.items():
            for i in gone.get(bg, ()):
                masks.pop(i, None)
        for bg, found in come.items():
            if bg not in heavy and shard_of(bg, shards) == s:
                masks = entries.setdefault(bg, {})
                masks.update((i, position_mask(positions)) for i, positions in found.items())
        parts = []
        for bg in sorted(entries):
            masks = entries[bg]
            if len(masks) > limit:
                return None  # turns heavy
            if masks:
                parts.append(_bigram_bytes(bg, dict(sorted(masks.items()))))
        files[s] = _shard_file(parts)
        total += sum(map(len, parts))
    if shard_count(total) != shards:
        return None
    heavy_files: dict[str, bytes | str] = {}
    for bg, name in heavy.items():
        h = name.rsplit(".", 1)[1]
        data = read(f"{PATH}i/h/{name}.bin")
        if data is None:
            return None
        if bg not in gone and bg not in come:
            if _set_size(data) <= limit:
                return None  # turns light
            heavy_files[bg] = h
            continue
        ids, at = decode_ids(data)
        starts = decode_ids(data, at)[0]
        every, first = set(ids) - gone.get(bg, set()), set(starts) - gone.get(bg, set())
        every.update(come.get(bg, {}))
        first.update(i for i, positions in come.get(bg, {}).items() if 0 in positions)
        if len(every) <= limit:
            return None
        heavy_files[bg] = _heavy_file(sorted(every), sorted(first), space)
    return files, heavy_files, total


def _name_of(d: Doc | None) -> tuple[int, str] | None:
    return None if d is None else (d.id, d.key)


def _set_size(data: bytes) -> int:
    """How many ids the id set at the start of `data` holds (encode_ids), without decoding it."""
    if data[0] == 0:
        return read_varint(data, 1)[0]
    size, at = read_varint(data, 1)
    return int.from_bytes(data[at : at + size], "little").bit_count()


def _patched(
    loaded: Loaded, reuse: Reuse, frame: str, docs: list[Doc], space: int, tables: Tables
) -> tuple[Index, Counter[tuple[str, str]]] | None:
    """Tonight's index patched into the live one (`_update`), its unchanged files linked; None
    where the live index is not there whole or was made from another frame (`frame_key`)."""
    live_root = reuse.live
    if live_root is None:
        return None

    def read(path: str) -> bytes | None:
        try:
            return (live_root / path).read_bytes()
        except OSError:
            return None

    page = read(PAGE)
    live = LiveIndex.read(page.decode(errors="replace"), read) if page is not None else None
    if live is None or live.meta["frame"] != frame:
        return None
    changes = _changes(reuse.previous.records, docs, _county_codes(loaded.regions))
    if changes is None:
        return None
    made = _update(live, read, *changes, docs, space, tables)
    if made is None or not all(reuse.link(f"{PATH}i/{name}", name) for name in sorted(made[0].kept)):
        return None
    return made


def _changes(
    records: Any, docs: list[Doc], counties: dict[tuple[str, str], str]
) -> tuple[dict[str, Doc], dict[str, Doc]] | None:
    """The enterprises whose indexed view differs from last night's (manifest.Records' list rows):
    last night's view of those that were there, tonight's of those that are."""
    if not isinstance(records, Records):
        return None
    names, rows = records.list_rows()
    if names != pages.ROW_FIELDS:
        return None
    now = {d.row.permit_no: d for d in docs}
    values = operator.attrgetter(*names)
    differ = {p for p, row in rows.items() if p not in now or tuple(row) != values(now[p].row)}
    new = now.keys() - rows.keys()
    if new or len(rows) != len(now):  # the set of numbers changed: a few ids may have moved
        old_ids = assign_ids(rows)
        differ |= {p for p in rows.keys() & now.keys() if old_ids[p] != now[p].id}
    else:
        old_ids = {p: d.id for p, d in now.items()}
    before = {p: _doc(old_ids[p], pages.Row(*rows[p]), counties) for p in differ}
    before = {p: d for p, d in before.items() if p not in now or _indexed(d) != _indexed(now[p])}
    return before, {p: now[p] for p in before.keys() | new if p in now}


def _build(
    loaded: Loaded,
    rows: list[pages.Row],
    staging: Path,
    progress: Callable[[int, int], None] | None,
    stamp: Stamp,
    reuse: Reuse | None,
) -> SearchStats:
    started = time.perf_counter()
    docs, space = _docs(rows, loaded.regions)
    tables = _tables(loaded, docs)
    frame = frame_key(loaded)
    made = _patched(loaded, reuse, frame, docs, space, tables) if reuse is not None else None
    index, counts = made or _index(docs, space, tables)
    total = len(index.files)
    for done, (name, data) in enumerate(sorted(index.files.items()), 1):
        path = f"{PATH}i/{name}"
        if reuse is None or not reuse.link(path, name):  # content-named: the name is the key
            write_file(staging / path, data)
        if progress and (done % 2000 == 0 or done == total):
            progress(done, total)
    script = _write_client(staging, reuse)
    meta = _meta(loaded, docs, space, tables, counts, index, frame)
    page = _page(loaded, docs, tables, counts, script, meta, stamp)
    env = pages.environment()
    pages.write(staging, PAGE, env.get_template("search.html").render(page=page))
    return SearchStats(
        enterprises=len(docs),
        files=len(index.names()) + 2,
        bytes=sum(map(len, index.files.values())),
        shards=index.shards,
        heavy=len(index.heavy),
        seconds=round(time.perf_counter() - started, 3),
        version=_version(sorted(f"{PATH}i/{name}" for name in index.names())),
    )


META = re.compile(r'<script type="application/json" id="search-meta">(.*?)</script>', re.S)


def page_meta(page_html: str) -> dict[str, Any] | None:
    """The index's description the search page carries (None: not a search page)."""
    m = META.search(page_html)
    return None if m is None else json.loads(m.group(1))


def _directories(meta: dict[str, Any]) -> Iterator[tuple[str, str, int | None]]:
    """(kind, site path, number of its first file) of every directory the page names; the filters'
    one (by kind-value, not numbered) has None."""
    base = PATH + "i/"
    for kind, names in meta["dirs"].items():
        if kind == "f":
            yield kind, f"{base}d/f.{names}.json", None
        else:
            yield from ((kind, f"{base}d/{kind}-{g}.{h}.json", g * meta["dir"]) for g, h in enumerate(names))


def index_files(page_html: str, read: Callable[[str], bytes | None]) -> Iterator[str]:
    """Every index file the search page names, as the client finds it (paths under search/i/): the
    directories, code keys and heavy bigrams in the page, and the files each directory names.
    `read(path)` gives a directory's bytes (None: it is missing, and so are the files it names)."""
    meta = page_meta(page_html)
    if meta is None:
        return
    base = PATH + "i/"
    for kind, path, first in _directories(meta):
        yield path
        data = read(path)
        if data is None:
            continue
        ext = "bin" if kind in ("s", "f") else "json"
        listed = json.loads(data)
        if first is None:
            yield from (f"{base}f/{name}.{h}.{ext}" for name, h in listed.items())
        else:
            yield from (f"{base}{kind}/{first + k}.{h}.{ext}" for k, h in enumerate(listed))
    yield from (f"{base}{folder}/keys.{h}.json" for folder, h in meta["keys"].items())
    yield from (f"{base}h/{name}.bin" for name in meta["heavy"].values())


def _write_client(staging: Path, reuse: Reuse | None) -> str:
    """The client under a name that changes with its content, so a CDN may cache it for ever."""
    code = CLIENT_JS.read_bytes()
    name = f"search.{content_hash(code)}.js"
    if reuse is None or not reuse.link(PATH + name, name):
        write_file(staging / PATH / name, code)
    return name


def _meta(
    loaded: Loaded,
    docs: list[Doc],
    space: int,
    t: Tables,
    counts: Counter[tuple[str, str]],
    index: Index,
    frame: str,
) -> dict[str, Any]:
    """What the client needs before its first fetch (kept small: it is inline in the page)."""
    places: list[list[str]] = []
    for code, name in t.cities:
        places += [[alias, "city", code] for alias in place_aliases(name)]
    for code, name, _ in t.counties:
        if counts[("county", code)]:
            places += [[alias, "county", code] for alias in place_aliases(name)]
    return {
        "space": space,
        "shards": index.shards,
        "n": index.enterprises,  # these three: for the next night's build (`_update`)
        "sb": index.shard_bytes,
        "frame": frame,
        "span": RECORDS_SPAN,
        "dir": DIR_SIZE,
        "dirs": index.dirs,
        "keys": index.keys,
        "heavy": index.heavy,
        "places": places,
        "cities": [[code, name, counts[("city", code)]] for code, name in t.cities],
        "counties": [[name, code] for code, name, _ in t.counties],
        "industries": [[code, name] for code, name in t.industries],
        "categories": [[c, pages.CATEGORIES[c]] for c in t.categories],
        "statuses": [[s, facts.STATUS_LABELS[s], TONE_OF_STATUS[s]] for s in t.statuses],
        "credits": t.credits,
    }


def _page(
    loaded: Loaded,
    docs: list[Doc],
    t: Tables,
    counts: Counter[tuple[str, str]],
    script: str,
    meta: dict[str, Any],
    stamp: Stamp,
) -> SearchPage:
    site = loaded.site
    meta_json = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return SearchPage(
        common=Common(site, root_of(PATH), "搜索", PATH, stamp=stamp),
        total=len(docs),
        cities=[Option(code, name, counts[("city", code)]) for code, name in t.cities],
        industries=[
            Option(code, f"{name}（{code}）", counts[("industry", code)])
            for code, name in t.industries
            if counts[("industry", code)]
        ],
        categories=[Option(slug, c, counts[("category", slug)]) for c, slug in pages.CATEGORIES.items()],
        credits=[Option(str(i), c, counts[("credit", str(i))]) for i, c in enumerate(t.credits)],
        statuses=[
            Option(s, facts.STATUS_LABELS[s], counts[("status", s)]) for s in t.statuses if counts[("status", s)]
        ],
        script=script,
        meta_json=meta_json,
    )
