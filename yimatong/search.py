"""Search: a static index of names, codes and filters that a phone reads a few kilobytes of.

Pagefind matches whole words and word prefixes, and segments Chinese differently when indexing
(jieba) and when querying (the browser), so fragments of names and codes are missed (Pagefind
issues #1237 and #987; measured in bench/RESULTS.md). This stage writes its own index instead,
from the rows the lists show (the public view only), under `search/i/<version>/`:

- `s/<n>.bin`   name bigrams (overlapping pairs of characters, the approach of Lucene's CJK
                bigram analyzer), sharded by a hash of the bigram: per bigram the enterprises whose
                name holds it, with a bit mask of the positions where it starts, so the client
                checks that the bigrams of a fragment are adjacent (an exact substring match).
- `h/<cp>.bin`  the few bigrams in more than HEAVY_SHARE of the names (公司, 有限, 广西…): their
                position masks would weigh 100+ kB, so only the set and the set of names starting
                with them; the client checks such matches against the name before showing them.
- `r/<n>.json`  what a result shows, RECORDS_PER_FILE enterprises a file, by id; ids follow
                the names' sort order, so ordering by id is ordering by name.
- `c/`, `x/`    permit numbers sorted, and sorted reversed, in files of CODES_PER_FILE with a list
                of each file's first key: a prefix (USCC, 8+ characters) or a suffix (6+) of a
                permit number is a range in one of them.
- `f/<kind>-<key>.bin`  the set of enterprises of each filter value (city, county, industry,
                category, credit level, permit status): a sorted id list or a bitmap, the smaller.

Sets are varints (LEB128) of id gaps, or bitmaps; the format is read by layouts/search.js. The
version directory is a hash of the index, so a cached search page never mixes two nights' files.
The search page itself is rendered from layouts/search.html; only it carries JavaScript.

The client reads only enough bigrams to cover the query (their positions pin them: 南宁|化工), one
shard each, then the records of the 20 results it shows. Ranking: names starting with the query
first (so a whole-name match leads: it sorts first among them), then names holding it, then
enterprises matched only by place (a city or county name); within each, name order. Filters
intersect id sets. Measured against plain Pagefind in bench/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import facts, pages
from .context import TONE_OF_STATUS, Common, Stamp, root_of
from .load import Loaded
from .manifest import Reuse, files_key, key_of
from .manifest import walk as manifest_walk
from .publish import write_file
from .schema import Regions

ROOT = Path(__file__).resolve().parent.parent
CLIENT_JS = ROOT / "layouts" / "search.js"
PATH = "search/"
RECORDS_PER_FILE = 16  # a result page of 20 touches up to 20 files: small files keep that cheap
CODES_PER_FILE = 256
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
    ids = [i for i in range(size * 8) if data[offset + (i >> 3)] >> (i & 7) & 1]
    return ids, offset + size


def position_mask(positions: Iterable[int]) -> int:
    mask = 0
    for p in positions:
        if p > MAX_POSITION:
            return UNKNOWN_MASK
        mask |= 1 << p
    return mask


# --- the index --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    """An enterprise as the index holds it; `id` is its rank in name order."""

    id: int
    row: pages.Row
    key: str  # normalised name
    county: str | None  # county code
    credit: str | None  # public credit level; None when not rated or withheld


def _docs(rows: list[pages.Row], regions: Regions) -> list[Doc]:
    county_codes = {(c.code, k.name): k.code for c in regions.cities for k in c.counties}
    ordered = sorted(rows, key=lambda r: (normalise_name(r.name), r.permit_no))
    return [
        Doc(i, r, normalise_name(r.name), county_codes.get((r.city_code, r.county or "")), r.credit)
        for i, r in enumerate(ordered)
    ]


def _postings(docs: list[Doc]) -> dict[str, dict[int, list[int]]]:
    """bigram → id → start positions (ids ascend, since docs are visited in id order)."""
    found: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for d in docs:
        for pos, bg in enumerate(bigrams(d.key)):
            found[bg].setdefault(d.id, []).append(pos)
    return found


def _light(entries: dict[int, list[int]], out: bytearray) -> None:
    varint(len(entries), out)
    prev = -1
    for i, positions in entries.items():
        varint(i - prev - 1, out)
        varint(position_mask(positions), out)
        prev = i


def heavy_key(bigram: str) -> str:
    return "-".join(f"{ord(c):x}" for c in bigram)


def _name_files(docs: list[Doc]) -> tuple[dict[str, bytes], int, list[str]]:
    """The bigram shards and the heavy bigrams' files; returns (files, shard count, heavy)."""
    n = len(docs)
    postings = _postings(docs)
    limit = max(HEAVY_MIN, int(n * HEAVY_SHARE))
    heavy = sorted(bg for bg, entries in postings.items() if len(entries) > limit)
    files: dict[str, bytes] = {}
    for bg in heavy:
        entries = postings.pop(bg)
        starts = [i for i, positions in entries.items() if 0 in positions]
        files[f"h/{heavy_key(bg)}.bin"] = encode_ids(list(entries), n) + encode_ids(starts, n)
    encoded: dict[str, bytes] = {}
    for bg, entries in postings.items():
        out = bytearray()
        for ch in bg:
            varint(ord(ch), out)
        _light(entries, out)
        encoded[bg] = bytes(out)
    total = sum(map(len, encoded.values()))
    shards = 1
    while shards * SHARD_BYTES < total:  # a power of two: shards split evenly as the site grows
        shards *= 2
    buckets: dict[int, list[bytes]] = defaultdict(list)
    for bg in sorted(encoded):
        buckets[shard_of(bg, shards)].append(encoded[bg])
    for s in range(shards):  # every shard exists (an empty one too): the client needs no listing
        out = bytearray()
        varint(len(buckets[s]), out)
        files[f"s/{s}.bin"] = bytes(out) + b"".join(buckets[s])
    return files, shards, heavy


def _code_files(docs: list[Doc], folder: str, reverse: bool) -> dict[str, bytes]:
    """Permit numbers (or reversed ones) sorted, front-coded, CODES_PER_FILE a file, and the list
    of each file's first key (`<folder>/keys.json`) for the client's binary search."""
    keyed = sorted(((d.row.permit_no[::-1] if reverse else d.row.permit_no), d.id) for d in docs)
    files: dict[str, bytes] = {}
    firsts: list[str] = []
    for n, start in enumerate(range(0, len(keyed), CODES_PER_FILE)):
        chunk = keyed[start : start + CODES_PER_FILE]
        firsts.append(chunk[0][0])
        files[f"{folder}/{n}.json"] = _json([[*front_code(prev, key), i] for prev, (key, i) in _pairs(chunk)])
    files[f"{folder}/keys.json"] = _json(
        [front_code(prev, key) for prev, key in zip(["", *firsts], firsts, strict=False)]
    )
    return files


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


def _record_files(docs: list[Doc], t: Tables) -> dict[str, bytes]:
    city = {code: i for i, (code, _) in enumerate(t.cities)}
    county = {code: i for i, (code, _, _) in enumerate(t.counties)}
    industry = {code: i for i, (code, _) in enumerate(t.industries)}
    category = {c: i for i, c in enumerate(t.categories)}
    status = {s: i for i, s in enumerate(t.statuses)}
    credit = {c: i for i, c in enumerate(t.credits)}
    files = {}
    for n, start in enumerate(range(0, len(docs), RECORDS_PER_FILE)):
        chunk = docs[start : start + RECORDS_PER_FILE]
        files[f"r/{n}.json"] = _json(
            [
                [
                    d.row.permit_no,
                    d.row.name,
                    city[d.row.city_code],
                    county.get(d.county or "", -1),
                    industry[d.row.industry],
                    category.get(d.row.category, -1),
                    status[d.row.status],
                    credit.get(d.credit or "", -1),
                ]
                for d in chunk
            ]
        )
    return files


def filter_keys(d: Doc, credits: list[str]) -> list[tuple[str, str]]:
    """The (kind, value) pairs an enterprise is found under; the file is f/<kind>-<value>.bin."""
    keys = [("city", d.row.city_code), ("industry", d.row.industry), ("status", d.row.status)]
    keys.append(("category", pages.CATEGORIES.get(d.row.category, "other")))
    if d.county:
        keys.append(("county", d.county))
    if d.credit in credits:  # configurable text, so by its rank on the scale
        keys.append(("credit", str(credits.index(d.credit))))
    return keys


def _filter_files(docs: list[Doc], t: Tables) -> tuple[dict[str, bytes], Counter[tuple[str, str]]]:
    sets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for d in docs:
        for key in filter_keys(d, t.credits):
            sets[key].append(d.id)
    files = {f"f/{kind}-{value}.bin": encode_ids(ids, len(docs)) for (kind, value), ids in sorted(sets.items())}
    return files, Counter({key: len(ids) for key, ids in sets.items()})


# --- the stage ------------------------------------------------------------------------------


# Code whose change changes the index or the search page (the templates are keyed apart).
_CODE = [Path(__file__), CLIENT_JS, *(Path(__file__).with_name(n) for n in ("pages.py", "context.py", "facts.py"))]


def search_key(loaded: Loaded, rows: list[pages.Row]) -> str:
    """Everything the index and the search page are made from: the list rows (names, codes,
    places, statuses, credit levels), the regions, the site settings (not the export date, which
    the page does not show), the template and the code. Most nights change none of it (new
    monitoring data shows on the pages only)."""
    return key_of(
        hashlib.blake2b(repr(rows).encode(), digest_size=12).hexdigest(),
        loaded.regions.model_dump(mode="json"),
        pages._site_key(loaded.site),
        pages.template_key(pages.environment(), "search.html"),
        files_key(_CODE),
    )


def build_search(
    loaded: Loaded,
    rows: list[pages.Row],
    staging: Path,
    progress: Callable[[int, int], None] | None = None,
    reuse: Reuse | None = None,
) -> SearchStats:
    """Write the index, the client and the search page into `staging` (or keep the live build's,
    when `reuse` finds them made from the same inputs)."""
    started = time.perf_counter()
    key = search_key(loaded, rows)
    today = loaded.site.as_of.isoformat()
    changed = reuse.changed_on(PATH + "index.html", key, today) if reuse is not None else today
    if reuse is not None:
        kept = _reused(reuse, key)
        if kept is not None:
            return replace(kept, seconds=round(time.perf_counter() - started, 3))
    stats = _build(loaded, rows, staging, progress, Stamp(None, changed))
    if reuse is not None:
        for path in manifest_walk(staging / PATH):
            reuse.keys[PATH + path] = key
    return replace(stats, seconds=round(time.perf_counter() - started, 3))


def _reused(reuse: Reuse, key: str) -> SearchStats | None:
    """The live build's search files, if they were all made from `key`."""
    live = [p for p in reuse.previous.outputs if p.startswith(PATH)]
    if not live or any(reuse.previous.key(p) != key for p in live) or not all(reuse.link(p, key) for p in live):
        return None
    versions = {p.split("/")[2] for p in live if p.startswith(PATH + "i/")}
    return SearchStats(0, len(live), 0, 0, 0, 0.0, versions.pop() if len(versions) == 1 else "")


def _build(
    loaded: Loaded, rows: list[pages.Row], staging: Path, progress: Callable[[int, int], None] | None, stamp: Stamp
) -> SearchStats:
    started = time.perf_counter()
    docs = _docs(rows, loaded.regions)
    tables = _tables(loaded, docs)
    files, shards, heavy = _name_files(docs)
    files |= _record_files(docs, tables)
    files |= _code_files(docs, "c", reverse=False)
    files |= _code_files(docs, "x", reverse=True)
    filter_files, counts = _filter_files(docs, tables)
    files |= filter_files
    digest = hashlib.blake2b(digest_size=6)
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    version = digest.hexdigest()
    folder = staging / PATH / "i" / version
    total = len(files)
    for done, (name, data) in enumerate(sorted(files.items()), 1):
        write_file(folder / name, data)
        if progress and (done % 2000 == 0 or done == total):
            progress(done, total)
    script = _write_client(staging)
    meta = _meta(loaded, docs, tables, counts, version, shards, heavy)
    page = _page(loaded, docs, tables, counts, script, meta, stamp)
    env = pages.environment()
    pages.write(staging, PATH + "index.html", env.get_template("search.html").render(page=page))
    return SearchStats(
        enterprises=len(docs),
        files=total + 2,
        bytes=sum(map(len, files.values())),
        shards=shards,
        heavy=len(heavy),
        seconds=round(time.perf_counter() - started, 3),
        version=version,
    )


def _write_client(staging: Path) -> str:
    """The client under a name that changes with its content, so a CDN may cache it for ever."""
    code = CLIENT_JS.read_bytes()
    name = f"search.{hashlib.blake2b(code, digest_size=5).hexdigest()}.js"
    write_file(staging / PATH / name, code)
    return name


def _meta(
    loaded: Loaded,
    docs: list[Doc],
    t: Tables,
    counts: Counter[tuple[str, str]],
    version: str,
    shards: int,
    heavy: list[str],
) -> dict[str, Any]:
    """What the client needs before its first fetch (kept small: it is inline in the page)."""
    places: list[list[str]] = []
    for code, name in t.cities:
        places += [[alias, "city", code] for alias in place_aliases(name)]
    for code, name, _ in t.counties:
        if counts[("county", code)]:
            places += [[alias, "county", code] for alias in place_aliases(name)]
    return {
        "version": version,
        "n": len(docs),
        "shards": shards,
        "perFile": RECORDS_PER_FILE,
        "codesPerFile": CODES_PER_FILE,
        "heavy": {bg: heavy_key(bg) for bg in heavy},
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
