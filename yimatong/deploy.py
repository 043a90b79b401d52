"""Deploy: sync a built output directory to an S3-compatible bucket (the CDN's origin).

Only what changed is sent, in an order that never shows a page before what it references:

1. assets: everything that is not HTML and not an entry point (data.json, PDFs, zips, search
   index, schemas …), so a new page never links to an object that is not there yet;
2. HTML pages;
3. entry points last: `index.html`, `sitemap*.xml`, the feed, `robots.txt`, and the open-data
   listings (`index.json`, `SHA256SUMS`) that name the downloads uploaded in step 1;
4. deletes of stale objects, only once every upload succeeded;
5. the remote state object (below), only once everything else succeeded.

Each phase finishes before the next starts (uploads run in a thread pool within a phase). A failed
upload stops the run with DeployError before any delete and before the state is written, so the
next run sees the old state and sends what is still missing. The bucket is the site's alone: every
object in it that the output does not hold is deleted (dot paths excepted).

What the bucket holds, without reading 1,500,000 objects every night: the state object
`.yimatong/deployed.json.gz`, written by this module at the end of every successful deploy and read
at the start of the next; it is the only dot path ever uploaded (`.yimatong/` and
`.yimatong-output` stay local). Gzip JSON in columns, sorted by path, then by folder:

    {"format": 3, "rules": <RULES>, "headers": [[content type, cache control], …],
     "path": [path, …], "sha256": [sha256, …], "header": [index into headers (-1: unknown), …],
     "bundle": [folder, …], "files": [packed files, …], "bundle_header": [index into headers, …],
     "retired": {stale content-addressed path: since}}

A *bundle* is a folder the build's manifest keeps as one entry (a permit's sign PDFs,
`signs/<permit>/`: 1,070,000 of the 1,500,000 files at 100,000 permits): its files as one string
(`manifest.pack`: "name sha256\n" each, by name), sent with one set of headers. The state keeps
bundles folded as the nightly hands them over, so a night costs a look-up per plain file and a
string comparison per bundle: a bundle whose files are the recorded ones (under the same rules) is
not looked into. One that differs is compared file by file (with the state's bundle, or with the
plain paths a format-2 state or a plain `deploy` recorded for its files). A bundle whose files were
sent with different headers is recorded as plain paths instead. Format 2 is format 3 without the
bundle columns.

`rules` fingerprints the code that chooses the headers (`rules_fingerprint`). Headers depend only
on the path, the file's first bytes and those rules, so under the same rules a file whose sha256 is
the recorded one is unchanged, headers and all, without working its headers out; only the files to
upload get theirs. Under other rules, or from a format-1 state (`{"format": 1, "headers": …,
"objects": {path: [sha256, header index]}}`, written before the rules were recorded), every file's
headers are worked out and compared once, and a file whose headers changed is sent again. An
unknown format is treated as unreadable.

When the state is missing or unreadable, the bucket is listed instead (ListObjectsV2, paginated)
and each object's ETag is compared with the local file's MD5: a listing returns no metadata, so
the `x-amz-meta-sha256` set on every upload cannot be read there, but files are sent in one PUT
(put_object below MULTIPART_BYTES), whose ETag is the body's MD5. Headers cannot be seen in a
listing; a matching body is taken to carry the headers this module would send. Objects the state
does not know (put there by hand, or by a run that failed after its uploads and whose files have
gone since) are only found by a listing: `full_listing=True` ignores the state for one run.

Local hashes come from the build's manifest, `<out>/.yimatong/manifest.json.gz` (or `.json`:
`{"outputs": {path: {"sha256": …}}}`; a bundle's files each) when present; files it does not list,
or modified after it was written, are hashed here (sha256, streamed). Every upload re-hashes the
bytes it sends and stops the run if they differ from the plan (the output changed under the
deploy). The nightly hands over the hashes of the build it just published (`built`, its plain
files, and `bundles`): nothing is walked or read then, and the bundles stay folded.

Cache policy (see `cache_control`): HTML and every other address whose content changes in place
gets a short lifetime; content-addressed files are immutable; dated downloads are cached for a
day, not for ever (a correction may still replace one under the same name; the purge list covers
the CDN). A content-addressed object that is no longer built is kept for KEEP_REPLACED seconds
after it was first seen stale: a page cached before the deploy (up to HTML_MAX_AGE, plus the CDN
purge's delay, plus open tabs) still references it. `keep_replaced=0` deletes at once (a takedown).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import inspect
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic_core import from_json, to_json
from zlib_ng import gzip_ng

from . import heap
from .errors import YimatongError
from .manifest import bundle_files, bundled_count, folder_of, in_bundles, is_bundle, outputs_of, pack, unpack, walk

STATE_KEY = ".yimatong/deployed.json.gz"
MANIFESTS = (".yimatong/manifest.json.gz", ".yimatong/manifest.json")  # written by the build (manifest.py)
STATE_FORMAT = 3  # columns, bundles folded; formats 2 (no bundles) and 1 (no columns, no rules) are still read
MULTIPART_BYTES = 64 * 1024 * 1024  # below this, one PUT: the ETag stays the body's MD5
MULTIPART_CHUNK = 16 * 1024 * 1024  # a part: S3 allows 10,000 of them, so up to 160 GB a file
PUT_ATTEMPTS = 3  # our own retries of a PUT on connection errors, after botocore's
PUT_BACKOFF = 0.5  # seconds, doubled each attempt
BOTO_ATTEMPTS = 5  # botocore's attempts per request, the first included (standard retry mode)
DELETE_BATCH = 1000  # DeleteObjects' limit

HTML_MAX_AGE = 300
SHORT = f"public, max-age={HTML_MAX_AGE}"
DAY = "public, max-age=86400"
IMMUTABLE = "public, max-age=31536000, immutable"
# The search index's files are named by their content (search/i/s/12.<hash>.bin: yimatong/search.py),
# as is its client (search/search.<hash>.js); the search page names the index's directories inline.
# So a page and the index it reads always agree, and the index is cached for ever. (Under fixed names
# no max-age would be safe: a shard cached from one night would answer a page of the next.) Only the
# page (HTML) is short-lived; the files it no longer names are kept for KEEP_REPLACED (module docstring).
CONTENT_ADDRESSED = re.compile(r"(^|/)[^/]+\.[0-9a-f]{8,64}\.(js|css|json|bin|woff2)$")
DOWNLOADS = (".pdf", ".zip", ".csv", ".jsonl", ".gz")
DATED = re.compile(r"(^|[/-])[0-9]{4}-[0-9]{2}(-[0-9]{2})?[/.-]")  # data/archive/2026-11/, …-2026-11-20-…
KEEP_REPLACED = 6 * 3600  # far above HTML_MAX_AGE + a CDN purge; below a nightly run's interval

UTF8 = "; charset=utf-8"
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html" + UTF8,
    ".css": "text/css" + UTF8,
    ".js": "text/javascript" + UTF8,
    ".mjs": "text/javascript" + UTF8,
    ".json": "application/json" + UTF8,
    ".jsonl": "application/x-ndjson" + UTF8,
    ".xml": "application/xml" + UTF8,
    ".atom": "application/atom+xml" + UTF8,
    ".txt": "text/plain" + UTF8,
    ".csv": "text/csv" + UTF8,
    ".md": "text/markdown" + UTF8,
    ".svg": "image/svg+xml" + UTF8,
    ".webmanifest": "application/manifest+json" + UTF8,
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".bin": "application/octet-stream",  # the search shards: binary, read by fetch().arrayBuffer()
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".wasm": "application/wasm",
}
NAMED_TYPES = {"SHA256SUMS": "text/plain" + UTF8}  # sha256sum's format has no extension
ATOM = "application/atom+xml" + UTF8
FEED_NAMES = ("feed.xml", "atom.xml")  # feed.py writes feed.xml
# Entry points: read first by people and crawlers, and they name the other files.
_ENTRY = re.compile(
    r"^(index\.html|robots\.txt|sitemap[^/]*\.xml|feed[^/]*\.xml|atom\.xml)$|(^|/)([^/]+\.atom|index\.json|SHA256SUMS)$"
)
ASSETS, PAGES, ENTRIES = 0, 1, 2
Headers = tuple[str, str]  # (content type, cache control)
PHASE_NAMES = ("资源", "页面", "入口")


class DeployError(YimatongError):
    """The deploy stopped. After a failed upload nothing was deleted and the state was not rewritten."""


# --- local files ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Local:
    path: str  # relative, with '/'
    sha256: str
    size: int
    md5: str | None  # only when comparing with a listing's ETags
    content_type: str
    cache_control: str
    phase: int

    @property
    def headers(self) -> Headers:
        return self.content_type, self.cache_control


@dataclass(frozen=True)
class LocalFiles:
    """The files to publish (dot paths left out): path → sha256 of the plain ones, the bundles
    (folder → its files, `manifest.pack`ed: a permit's sign PDFs, kept folded on the nightly's path
    only), and a file's `Local` (its headers, and its md5 when comparing with a listing) by (path,
    sha256) on demand: on the nightly's path only the files the plan uploads get one, not 1,500,000
    at 100,000 permits."""

    sha: Mapping[str, str]
    local: Callable[[str, str], Local]
    bundles: Mapping[str, str] = field(default_factory=dict)

    def count(self) -> int:
        """Every file, a bundle's each (one count of lines per bundle)."""
        return len(self.sha) + bundled_count(self.bundles)

    def files(self) -> Iterator[tuple[str, str]]:
        """Every file's (path, sha256), a bundle's each: for the slow paths only."""
        yield from self.sha.items()
        for folder, packed in self.bundles.items():
            yield from bundle_files(folder, packed).items()

    def holds(self, path: str) -> bool:
        """Whether the output holds a path, plain or in a bundle (not unpacked)."""
        return path in self.sha or in_bundles(self.bundles, path)


def is_dot_path(path: str) -> bool:
    """A part of the path starts with a dot (state, markers): never published. Without splitting:
    asked of every one of 1,500,000 paths at 100,000 permits."""
    return path[:1] == "." or "/." in path


def content_type(path: str, head: bytes = b"") -> str:
    """By extension; an .xml file whose root is an Atom <feed> is a feed."""
    name = path.rsplit("/", 1)[-1]
    if name in NAMED_TYPES:
        return NAMED_TYPES[name]
    ext = os.path.splitext(name)[1].lower()
    if ext == ".xml" and (name in FEED_NAMES or _is_atom(head)):
        return ATOM
    return CONTENT_TYPES.get(ext, "application/octet-stream")


def _is_atom(head: bytes) -> bool:
    return b"<feed" in head and b"http://www.w3.org/2005/Atom" in head


def cache_control(path: str) -> str:
    if CONTENT_ADDRESSED.search(path):
        return IMMUTABLE
    if path.endswith(DOWNLOADS) and DATED.search(path):  # a dated snapshot: only a correction changes it
        return DAY
    # HTML, entry points, data.json, schemas, tonight's downloads under fixed names, and the sign PDFs
    # (a renamed enterprise's sign must be right the next time someone downloads it to print).
    return SHORT


def phase_of(path: str, ctype: str) -> int:
    if _ENTRY.search(path) or ctype == ATOM:
        return ENTRIES
    if path.endswith(".html"):
        return PAGES
    return ASSETS


def file_hashes(file: Path, md5: bool) -> tuple[str, str | None]:
    sha, mh = hashlib.sha256(), hashlib.md5() if md5 else None
    with file.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            if mh:
                mh.update(chunk)
    return sha.hexdigest(), mh.hexdigest() if mh else None


def read_manifest(out: Path) -> tuple[dict[str, Any], int]:
    """The build's `outputs` table (path → {"sha256": …}, a bundle's files each) and the manifest's
    mtime (ns); ({}, 0) when there is none or it is unreadable."""
    for name in MANIFESTS:
        try:
            file = out / name
            mtime = file.stat().st_mtime_ns
            raw = file.read_bytes()
            data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
            outputs = data["outputs"]
            if "version" in data:  # manifest.py's, in any version it reads
                built = outputs_of(data)
                if built is None:
                    continue
                outputs = {p: {"sha256": o.sha256} for p, o in built.items() if not is_bundle(p)}
                for folder, packed in (data.get("bundles") or {}).items():  # version 3
                    outputs.update((p, {"sha256": sha}) for p, sha in bundle_files(folder, packed).items())
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            continue
        if isinstance(outputs, dict):
            return outputs, mtime
    return {}, 0


def local_output(
    out: Path, need_md5: bool, built: Mapping[str, str] | None = None, bundles: Mapping[str, str] | None = None
) -> LocalFiles:
    """The files to publish (see `local_files`). With `built` (the nightly's plain files) and
    `bundles` (its bundles: folder → packed files) and no md5 needed, no file is read, the bundles
    stay folded and a `Local` is made only when the plan asks for one. Otherwise the output is walked
    (a bundle's files each; those of the `bundles` given are folded again, from what was walked, so
    the state a listing leads to keeps them folded)."""
    if built is None or need_md5:
        files = local_files(out, need_md5)
        sha = {path: f.sha256 for path, f in files.items()}
        return LocalFiles(sha, lambda path, _sha: files[path], _fold(sha, bundles or {}))
    dots = list(filter(is_dot_path, built))  # usually none: then no copy of 500,000 paths
    sha = {path: s for path, s in built.items() if not is_dot_path(path)} if dots else built
    folded = {folder: packed for folder, packed in (bundles or {}).items() if not is_dot_path(folder)}
    return LocalFiles(sha, _describer(out), folded)


def _fold(sha: dict[str, str], folders: Iterable[str]) -> dict[str, str]:
    """The walked files directly in `folders`, taken out of `sha` and packed into their bundles."""
    wanted = set(folders)
    found: dict[str, dict[str, str]] = {}
    if wanted:
        for path in list(sha):
            folder = folder_of(path)
            if folder in wanted:
                found.setdefault(folder, {})[path[len(folder) :]] = sha.pop(path)
    return {folder: pack(files) for folder, files in found.items()}


def local_files(
    out: Path, need_md5: bool, workers: int = 4, built: Mapping[str, str] | None = None
) -> dict[str, Local]:
    """The files to publish, hashed (from the build's manifest where it can be trusted). `built`:
    path -> sha256 of every file, from the build that just published `out` in this process, under
    the same lock (the nightly): nothing is walked, stat'ed or read then (sizes are filled in for
    the uploads only, see `_sized`)."""
    if built is not None and not need_md5:
        return _built_files(out, built)
    manifest, written = read_manifest(out)

    def one(path: str) -> Local:
        file = out / path
        st = file.stat()
        known = manifest.get(path)
        sha = known.get("sha256") if isinstance(known, dict) else None
        # The build writes the manifest after every file (hard-linked ones keep older times): a file
        # newer than the manifest was changed after the build described it, so it is hashed here.
        trusted = isinstance(sha, str) and st.st_mtime_ns <= written
        md5 = None
        if not trusted or need_md5:
            sha, md5 = file_hashes(file, need_md5)
        return _local(out, path, sha, st.st_size, md5)

    found: dict[str, Local] = {}
    paths = iter(walk(out))
    with ThreadPoolExecutor(workers) as pool:  # hashlib releases the GIL on large buffers
        while chunk := list(itertools.islice(paths, 2000)):  # bounded: 400,000 futures would weigh
            found.update((loc.path, loc) for loc in pool.map(one, chunk))
    return found


def _local(out: Path, path: str, sha: str, size: int, md5: str | None) -> Local:
    """A file to publish with its headers (an .xml file's first bytes tell a feed from a sitemap);
    size -1: not known yet (`_sized`)."""
    head = b""
    if path.endswith(".xml"):
        with (out / path).open("rb") as f:
            head = f.read(1024)
    ctype = content_type(path, head)
    return Local(path, sha, size, md5, ctype, cache_control(path), phase_of(path, ctype))


def _built_files(out: Path, built: Mapping[str, str]) -> dict[str, Local]:
    """`_local` for every file of a build (see `_describer`)."""
    describe = _describer(out)
    return {path: describe(path, sha) for path, sha in built.items() if not is_dot_path(path)}


def _describer(out: Path) -> Callable[[str, str], Local]:
    """`_local` for a build's files, by (path, sha256). A permit's files (`P/<permit>/…`,
    `signs/<permit>/…`) get the headers of any other permit's at the same place (no pattern looks
    inside the permit number): worked out once per place, not 1,400,000 times at 100,000 permits."""
    by_place: dict[str, Local] = {}

    def describe(path: str, sha: str) -> Local:
        place = _permit_place(path)
        if place is None:
            return _local(out, path, sha, -1, None)
        m = by_place.get(place)
        if m is None:
            m = by_place[place] = _local(out, path, sha, -1, None)
        return Local(path, sha, -1, None, m.content_type, m.cache_control, m.phase)

    return describe


def _permit_place(path: str) -> str | None:
    """A permit's file with the permit number (22 characters) taken out of its path, or None."""
    root = 2 if path.startswith("P/") else 6 if path.startswith("signs/") else 0
    permit = path[root : root + 22]
    if not root or path[root + 22 : root + 23] != "/" or "." in permit or "/" in permit or path.endswith(".xml"):
        return None
    return path[:root] + path[root + 22 :].replace(permit, "\0")


def _sized(out: Path, items: list[Local]) -> list[Local]:
    return [replace(u, size=(out / u.path).stat().st_size) if u.size < 0 else u for u in items]


# --- remote state ---------------------------------------------------------------------------------


def rules_fingerprint() -> str:
    """A short hash of the code that decides an object's headers. The headers are a function of the
    path, the file's first bytes (fixed by its sha256) and these rules: a state written under the
    same rules vouches for the headers of every file whose sha256 it records, so they are not worked
    out again (at 100,000 permits, 1,500,000 files a night). An edit to any of these changes it, and
    the next deploy compares every file's headers once."""
    code = [inspect.getsource(f) for f in (_local, content_type, _is_atom, cache_control)]
    constants = (CONTENT_TYPES, NAMED_TYPES, FEED_NAMES, ATOM, CONTENT_ADDRESSED.pattern, DOWNLOADS, DATED.pattern)
    constants += (SHORT, DAY, IMMUTABLE, UTF8)
    return hashlib.sha256(repr((code, constants)).encode("utf-8")).hexdigest()[:16]


RULES = rules_fingerprint()


@dataclass
class RemoteState:
    """What the bucket holds, a dict per column (no object per path: 1,500,000 at 100,000 permits);
    a bundle's files are one entry (its folder), as the build's manifest keeps them."""

    source: str  # "state", "listing" (state missing, unreadable or ignored)
    sha: dict[str, str | None]  # every plain object outside dot paths → sha256 (None: known from a listing only)
    # → the headers it was sent with; a bundle's folder → those all its files were sent with
    headers: dict[str, Headers | None] = field(default_factory=dict)
    rules: str | None = None  # the RULES the state was written under (None: format 1, a listing)
    listed: dict[str, tuple[str, int]] = field(default_factory=dict)  # a listing's path → (ETag, size)
    retired: dict[str, float] = field(default_factory=dict)  # stale content-addressed path → since
    raw: bytes | None = None  # the state object as read
    bundles: dict[str, str] = field(default_factory=dict)  # a bundle's folder → its files (`manifest.pack`)
    _unpacked: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def recorded(self, path: str) -> tuple[str | None, Headers | None] | None:
        """A file's recorded sha256 and headers, whether the state holds it as a plain path or in a
        bundle (unpacked once, when first asked); None: not held."""
        if path in self.sha:
            return self.sha[path], self.headers.get(path)
        folder = folder_of(path)
        packed = self.bundles.get(folder)
        if packed is None:
            return None
        files = self._unpacked.get(folder)
        if files is None:
            files = self._unpacked[folder] = unpack(packed)
        sha = files.get(path[len(folder) :])
        return None if sha is None else (sha, self.headers.get(folder))

    def sha_of(self, path: str) -> str | None:
        found = self.recorded(path)
        return None if found is None else found[0]


def encode_state(
    sha: Mapping[str, str],
    headers: Mapping[str, Headers | None],
    retired: Mapping[str, float],
    rules: str,
    bundles: Mapping[str, str] | None = None,
) -> bytes:
    """Deterministic gzip JSON in columns, sorted by path and by folder (the same state, the same
    bytes); headers are numbered, so 500,000 paths repeat no long strings. `bundles`: folder →
    packed files, sent with the headers `headers[folder]`. A path or bundle without headers gets -1."""
    bundles = bundles or {}
    paths = sorted(sha)  # the nightly's are sorted already: timsort is linear then
    folders = sorted(bundles)
    column = list(map(headers.get, paths))
    folded = list(map(headers.get, folders))
    table = sorted({h for h in {*column, *folded} if h is not None})
    number: dict[Headers | None, int] = {h: i for i, h in enumerate(table)}
    number[None] = -1
    body = {
        "format": STATE_FORMAT,
        "rules": rules,
        "headers": [list(h) for h in table],
        "path": paths,
        "sha256": list(map(sha.__getitem__, paths)),
        "header": list(map(number.__getitem__, column)),
        "bundle": folders,
        "files": list(map(bundles.__getitem__, folders)),
        "bundle_header": list(map(number.__getitem__, folded)),
        "retired": {p: retired[p] for p in sorted(retired)},
    }
    # pydantic_core's encoder: 3x json.dumps. zlib-ng's level 1 codes with fixed Huffman tables: at
    # 1,500,000 paths 98 MB (uploaded, and read the next night) against level 2's 63 MB, 0.4 s sooner.
    return gzip_ng.compress(to_json(body), compresslevel=2, mtime=0)


def decode_state(data: bytes) -> RemoteState:
    """The state object, format 3, or format 2 (no bundles: a sign PDF per path; the next night
    compares those one by one, once), or format 1 (`{"objects": {path: [sha256, header]}}`, no
    rules: every file's headers are compared once after the upgrade)."""
    with heap.acyclic():
        # pydantic_core's: 2x json.loads; no string cache: every path and sha256 is different
        body = from_json(gzip_ng.decompress(data), cache_strings=False)
    if not isinstance(body, dict):
        raise ValueError("the state is not a JSON object")
    table: list[Headers | None] = [(str(c), str(cc)) for c, cc in body["headers"]]
    table.append(None)  # index -1: headers unknown
    bundles: dict[str, str] = {}
    if body.get("format") in (2, STATE_FORMAT):
        paths = body["path"]
        sha = dict(zip(paths, body["sha256"], strict=True))
        headers = dict(zip(paths, map(table.__getitem__, body["header"]), strict=True))
        rules = body["rules"]
        if body["format"] == STATE_FORMAT:
            folders = body["bundle"]
            if not all(map(is_bundle, folders)):
                raise ValueError("a bundle of the state is not a folder")
            bundles = dict(zip(folders, body["files"], strict=True))
            headers.update(zip(folders, map(table.__getitem__, body["bundle_header"]), strict=True))
    elif body.get("format") == 1:
        objects = body["objects"]
        sha = {p: s for p, (s, _) in objects.items()}
        headers = {p: table[h] for p, (_, h) in objects.items()}
        rules = None
    else:
        raise ValueError(f"unknown state format {body.get('format')!r}")
    retired = {str(p): float(t) for p, t in body.get("retired", {}).items() if p in sha}
    return RemoteState("state", sha, headers, rules, retired=retired, raw=data, bundles=bundles)


def read_remote(client: Any, bucket: str, log: Callable[[str], None], full_listing: bool = False) -> RemoteState:
    from botocore.exceptions import ClientError

    if not full_listing:
        try:
            return decode_state(client.get_object(Bucket=bucket, Key=STATE_KEY)["Body"].read())
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in ("NoSuchKey", "404"):
                log(f"读取部署状态 {STATE_KEY} 失败（{code}），改为列出存储桶")
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError) as err:
            log(f"部署状态 {STATE_KEY} 无法读取（{err}），改为列出存储桶")
    listed = dict(list_bucket(client, bucket))
    return RemoteState("listing", dict.fromkeys(listed), listed=listed)


def list_bucket(client: Any, bucket: str) -> Iterator[tuple[str, tuple[str, int]]]:
    """Every object outside dot paths (ours to manage), with its ETag and size."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not is_dot_path(obj["Key"]):
                yield obj["Key"], (obj["ETag"].strip('"'), obj["Size"])


# --- the plan -----------------------------------------------------------------------------------


@dataclass
class Plan:
    uploads: list[Local]  # in phase order
    unchanged: int
    deletes: list[str]
    kept: dict[str, float]  # stale content-addressed objects kept for now → since
    remote: RemoteState

    def bytes(self) -> int:
        return sum(u.size for u in self.uploads)


def make_plan(output: LocalFiles, remote: RemoteState, now: float, keep_replaced: float) -> Plan:
    if remote.source == "listing":  # no sha256 there: a body's MD5 is its ETag (module docstring)
        every = itertools.starmap(output.local, output.files())
        uploads = [loc for loc in every if remote.listed.get(loc.path) != (loc.md5, loc.size)]
    elif remote.rules == RULES:  # the same bytes under the same rules: the same headers (`rules_fingerprint`)
        known, sha_of = remote.sha, remote.sha_of
        # a path the state holds as it is costs one look-up; another may be in one of its bundles
        plain = output.sha.items()
        uploads = [output.local(path, sha) for path, sha in plain if known.get(path) != sha and sha_of(path) != sha]
        for folder, packed in output.bundles.items():
            if remote.bundles.get(folder) != packed:  # else its files are the recorded ones: none is looked at
                files = bundle_files(folder, packed)
                uploads += [output.local(path, sha) for path, sha in files.items() if sha_of(path) != sha]
    else:  # written under other rules, or format 1: each file's headers are worked out and compared
        uploads = [loc for loc in itertools.starmap(output.local, output.files()) if not same(loc, remote)]
    uploads.sort(key=lambda u: (u.phase, u.path))
    deletes, kept = [], {}
    for path in _gone(output, remote):
        since = remote.retired.get(path, now)
        if CONTENT_ADDRESSED.search(path) and now - since < keep_replaced:
            kept[path] = since
        else:
            deletes.append(path)
    return Plan(uploads, output.count() - len(uploads), deletes, kept, remote)


def _gone(output: LocalFiles, remote: RemoteState) -> list[str]:
    """The objects the bucket holds that the output does not, sorted: plain paths, and the files of
    bundles that lost them or are gone. A bundle the same as the output's costs one comparison."""
    gone = [path for path in remote.sha if not output.holds(path)]
    for folder, packed in remote.bundles.items():
        mine = output.bundles.get(folder)
        if mine != packed:
            names = unpack(packed).keys() - unpack(mine or "").keys()
            gone += [folder + name for name in names if folder + name not in output.sha]
    return sorted(gone)


def same(local: Local, remote: RemoteState) -> bool:
    """The object holds this file's bytes and was sent with its headers, as the state says."""
    return remote.recorded(local.path) == (local.sha256, local.headers)


# --- S3 -------------------------------------------------------------------------------------------


def make_client(endpoint: str | None, *, attempts: int = BOTO_ATTEMPTS, workers: int = 8) -> Any:
    """An S3 client for `endpoint` (None: AWS itself); credentials from the usual AWS variables.

    Checksums only where required: newer botocore adds CRC32 trailers to every PUT by default,
    which several S3-compatible stores reject; Content-MD5 is sent instead (see _put_once)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max(10, workers * 2),
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def _put_once(client: Any, bucket: str, out: Path, item: Local, workers: int = 1) -> None:
    from boto3.s3.transfer import TransferConfig

    args = {"ContentType": item.content_type, "CacheControl": item.cache_control, "Metadata": {"sha256": item.sha256}}
    file = out / item.path
    if item.size >= MULTIPART_BYTES:
        sha, _ = file_hashes(file, md5=False)
        _check(item, sha)
        # Its parts in parallel: the largest file goes first, and alone it would be one stream.
        transfer = TransferConfig(multipart_chunksize=MULTIPART_CHUNK, max_concurrency=workers)
        client.upload_file(str(file), bucket, item.path, ExtraArgs=args, Config=transfer)
        return
    data = file.read_bytes()
    _check(item, hashlib.sha256(data).hexdigest())
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    client.put_object(Bucket=bucket, Key=item.path, Body=data, ContentMD5=md5, **args)


def _check(item: Local, sha: str) -> None:
    if sha != item.sha256:
        raise DeployError(f"{item.path} 在部署过程中被改动（输出目录被重新生成？），已停止")


def put(
    client: Any, bucket: str, out: Path, item: Local, sleep: Callable[[float], None] = time.sleep, workers: int = 1
) -> None:
    """One upload; connection errors that outlast botocore's retries get PUT_ATTEMPTS more."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    for attempt in range(1, PUT_ATTEMPTS + 1):
        try:
            _put_once(client, bucket, out, item, workers)
            return
        except (BotoConnectionError, HTTPClientError):
            if attempt == PUT_ATTEMPTS:
                raise
            sleep(PUT_BACKOFF * 2 ** (attempt - 1))


def run_all(items: list[Local], work: Callable[[Local], None], workers: int) -> list[tuple[str, BaseException]]:
    """`work` on every item with `workers` threads; after the first failure no new item starts.
    Returns the failures; returns only when every started item has finished."""
    it, lock, stop = iter(items), threading.Lock(), threading.Event()
    failures: list[tuple[str, BaseException]] = []

    def worker() -> None:
        while not stop.is_set():
            with lock:
                item = next(it, None)
            if item is None:
                return
            try:
                work(item)
            except Exception as err:
                with lock:
                    failures.append((item.path, err))
                stop.set()

    n = max(1, min(workers, len(items)))
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(worker) for _ in range(n)]:
            f.result()
    return failures


def delete(client: Any, bucket: str, paths: list[str]) -> list[tuple[str, str]]:
    """Delete in batches; returns (path, error) for the objects that were not deleted."""
    from botocore.exceptions import BotoCoreError, ClientError

    failed: list[tuple[str, str]] = []
    for start in range(0, len(paths), DELETE_BATCH):
        batch = paths[start : start + DELETE_BATCH]
        try:
            result = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": p} for p in batch], "Quiet": True}
            )
        except (ClientError, BotoCoreError) as err:
            failed += [(p, str(err)) for p in batch]
            continue
        failed += [(e["Key"], f"{e.get('Code')}: {e.get('Message')}") for e in result.get("Errors", [])]
    return failed


# --- purge list -----------------------------------------------------------------------------------


def urls_of(paths: Iterable[str], base_url: str) -> list[str]:
    """The addresses a CDN caches each path under: `x/index.html` is also `x/`."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    urls = set()
    for path in paths:
        urls.add(base + quote(path, safe="/"))
        if path == "index.html" or path.endswith("/index.html"):
            urls.add(base + quote(path[: -len("index.html")], safe="/"))
    return sorted(urls)


def default_purge_list(out: Path) -> Path:
    out = out.resolve()
    return out.parent / f"{out.name}.purge.txt"


# --- the deploy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployReport:
    uploaded: int
    unchanged: int
    deleted: int
    kept: int  # stale content-addressed objects kept until KEEP_REPLACED has passed
    bytes: int
    seconds: float
    purge: list[str]  # URLs to purge on the CDN
    purge_list: Path | None  # where they were written (None on a dry run)
    dry_run: bool = False
    uploads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "将" if self.dry_run else "已"
        kept = f"，{self.kept} 个旧版本内容寻址文件暂留" if self.kept else ""
        return (
            f"{verb}上传 {self.uploaded} 个文件（{self.bytes / 1e6:.1f} MB），{self.unchanged} 个未变，"
            f"{verb}删除 {self.deleted} 个{kept}（{self.seconds:.1f} 秒）"
        )


@heap.batch()
def deploy(
    out: Path,
    bucket: str,
    endpoint: str | None,
    *,
    base_url: str,
    dry_run: bool = False,
    purge_list: Path | None = None,
    workers: int = 8,
    full_listing: bool = False,
    keep_replaced: float = KEEP_REPLACED,
    client: Any = None,
    log: Callable[[str], None] = print,
    built: Mapping[str, str] | None = None,
    bundles: Mapping[str, str] | None = None,
) -> DeployReport:
    """Sync `out` to `bucket`: upload what changed (assets, then pages, then entry points), delete
    what is gone, write the remote state, and write the CDN purge list. Raises DeployError.
    `built` and `bundles`: the build's plain files and bundles, as the nightly hands them over."""
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.perf_counter()
    out = Path(out)
    if not out.is_dir():
        raise DeployError(f"输出目录 {out} 不存在；请先生成网站")
    client = client or make_client(endpoint, workers=workers)
    remote = _read_remote(client, bucket, log, full_listing)
    output = local_output(out, need_md5=remote.source == "listing", built=built, bundles=bundles)
    if not output.sha and not output.bundles:
        raise DeployError(f"输出目录 {out} 是空的，拒绝部署（会删除存储桶里的整个网站）")
    now = time.time()
    plan = make_plan(output, remote, now, keep_replaced)
    plan.uploads = _sized(out, plan.uploads)
    heap.keep()  # the remote state and the plan live till the end: no collection walks them again
    purge = urls_of([u.path for u in plan.uploads] + plan.deletes, base_url)

    def report(seconds: float, written: Path | None) -> DeployReport:
        return DeployReport(
            len(plan.uploads),
            plan.unchanged,
            len(plan.deletes),
            len(plan.kept),
            plan.bytes(),
            round(seconds, 3),
            purge,
            written,
            dry_run,
            [u.path for u in plan.uploads],
            list(plan.deletes),
        )

    if dry_run:
        _print_plan(plan, keep_replaced, log)
        result = report(time.perf_counter() - started, None)
        log(result.summary())
        return result

    # The state the bucket will be in once all goes well, encoded (3 s at 1,500,000 files, half of it
    # deflate) while the uploads wait on the network; written only after they all succeeded.
    with ThreadPoolExecutor(1) as background:
        hoped = background.submit(_next_state, plan, output, {})
        for phase in (ASSETS, PAGES, ENTRIES):
            # Largest first: a 200 MB zip started last would upload alone while the other workers idle.
            items = sorted((u for u in plan.uploads if u.phase == phase), key=lambda u: -u.size)
            failures = run_all(items, lambda item: put(client, bucket, out, item, workers=workers), workers)
            if failures:
                path, err = failures[0]
                raise DeployError(
                    f"上传 {path} 失败（{err}）；共 {len(failures)} 个失败，已停止：未删除任何对象，部署状态未更新"
                )
        failed = delete(client, bucket, plan.deletes) if plan.deletes else []
        state = _next_state(plan, output, dict(failed)) if failed else hoped.result()
    if state != remote.raw:
        try:
            client.put_object(
                Bucket=bucket, Key=STATE_KEY, Body=state, ContentType="application/gzip", CacheControl="no-store"
            )
        except (ClientError, BotoCoreError) as err:  # the site is complete; the next run resends a little
            raise DeployError(
                f"网站已同步，但部署状态 {STATE_KEY} 写入失败（{err}）；下次部署会重传本次的改动"
            ) from err
    if failed:
        path, err = failed[0]
        raise DeployError(f"删除 {path} 失败（{err}）；共 {len(failed)} 个未删除，下次部署时重试")
    target = purge_list or default_purge_list(out)
    target.write_text("".join(u + "\n" for u in purge), encoding="utf-8")
    result = report(time.perf_counter() - started, target)
    log(result.summary())
    return result


def _read_remote(client: Any, bucket: str, log: Callable[[str], None], full_listing: bool) -> RemoteState:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return read_remote(client, bucket, log, full_listing)
    except (ClientError, BotoCoreError) as err:
        raise DeployError(f"无法读取存储桶 {bucket}：{err}") from err


def _next_state(plan: Plan, output: LocalFiles, not_deleted: Mapping[str, str]) -> bytes:
    """What the bucket holds now: every local file, the stale ones kept, those a delete missed. The
    headers are the recorded ones but for the uploads (`make_plan` kept no file whose recorded
    headers differ from what it would send), or every file's on a listing (a matching body is taken
    to carry the headers this module would send). A bundle stays folded, with its files' headers
    when they are all the same (a permit's sign PDFs are); else its files are recorded one by one."""
    remote = plan.remote
    listing = remote.source == "listing"
    sha = dict(output.sha)
    headers = dict(remote.headers)
    if listing:
        headers.update((path, output.local(path, s).headers) for path, s in output.sha.items())
    sent = {u.path: u.headers for u in plan.uploads}
    headers.update(sent)
    bundles = dict(output.bundles)
    touched = {folder_of(path) for path in sent}
    for folder, packed in output.bundles.items():
        if not listing and folder not in touched and remote.bundles.get(folder) == packed:
            continue  # as recorded, headers and all: most bundles, not looked into
        files = bundle_files(folder, packed)
        each: dict[str, Headers | None] = {}
        for path, s in files.items():
            if path in sent:
                each[path] = sent[path]
            elif listing:
                each[path] = output.local(path, s).headers
            else:  # as recorded: in the state's bundle, or as a plain path
                each[path] = (remote.recorded(path) or (None, None))[1]
        kinds = set(each.values())
        if len(kinds) <= 1:
            headers[folder] = kinds.pop() if kinds else None
        else:
            del bundles[folder]
            sha.update(files)
            headers.update(each)
    for path in [*plan.kept, *not_deleted]:
        recorded = remote.recorded(path) or (None, None)
        sha[path] = recorded[0] or ""  # "" never matches: resent if rebuilt
        headers[path] = recorded[1]
    return encode_state(sha, headers, plan.kept, RULES, bundles)


def _print_plan(plan: Plan, keep_replaced: float, log: Callable[[str], None]) -> None:
    log(f"部署计划（远端状态来自：{'状态对象' if plan.remote.source == 'state' else '列出存储桶'}）")
    for phase in (ASSETS, PAGES, ENTRIES):
        items = [u.path for u in plan.uploads if u.phase == phase]
        log(f"上传{PHASE_NAMES[phase]} {len(items)} 个")
        for path in items:
            log(f"  + {path}")
    log(f"删除 {len(plan.deletes)} 个")
    for path in plan.deletes:
        log(f"  - {path}")
    if plan.kept:
        log(f"暂留 {len(plan.kept)} 个已被替换的内容寻址文件（被替换 {keep_replaced / 3600:g} 小时后删除）")
