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

What the bucket holds, without reading 400,000 objects every night: the state object
`.yimatong/deployed.json.gz` (gzip JSON: path → sha256 and the headers it was sent with), written
by this module at the end of every successful deploy and read at the start of the next; it is the
only dot path ever uploaded (`.yimatong/` and `.yimatong-output` stay local). When it is missing
or unreadable, the bucket is listed instead (ListObjectsV2, paginated) and each object's ETag is
compared with the local file's MD5: a listing returns no metadata, so the `x-amz-meta-sha256` set on
every upload cannot be read there, but files are sent in one PUT (put_object below MULTIPART_BYTES),
whose ETag is the body's MD5. Headers cannot be seen in a listing; a matching body is taken to carry
the headers this module would send. Objects the state does not know (put there by hand, or by a run
that failed after its uploads and whose files have gone since) are only found by a listing:
`full_listing=True` ignores the state for one run.

Local hashes come from the build's manifest, `<out>/.yimatong/manifest.json.gz` (or `.json`:
`{"outputs": {path: {"sha256": …}}}`) when present; files it does not list, or modified after it
was written, are hashed here (sha256, streamed). Every upload re-hashes the bytes it sends and
stops the run if they differ from the plan (the output changed under the deploy).

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
import io
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

from . import heap
from .errors import YimatongError
from .manifest import outputs_of, walk

STATE_KEY = ".yimatong/deployed.json.gz"
MANIFESTS = (".yimatong/manifest.json.gz", ".yimatong/manifest.json")  # written by the build (manifest.py)
STATE_FORMAT = 1
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
    """The build's `outputs` table (path → {"sha256": …}) and the manifest's mtime (ns); ({}, 0)
    when there is none or it is unreadable."""
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
                outputs = {p: {"sha256": o.sha256} for p, o in built.items()}
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            continue
        if isinstance(outputs, dict):
            return outputs, mtime
    return {}, 0


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
    """`_local` for every file of a build. A permit's files (`P/<permit>/…`, `signs/<permit>/…`) get
    the headers of any other permit's at the same place (no pattern looks inside the permit number):
    worked out once per place, not 1,400,000 times at 100,000 permits."""
    by_place: dict[str, Local] = {}
    files: dict[str, Local] = {}
    for path, sha in built.items():
        if is_dot_path(path):
            continue
        place = _permit_place(path)
        if place is None:
            files[path] = _local(out, path, sha, -1, None)
            continue
        m = by_place.get(place)
        if m is None:
            m = by_place[place] = _local(out, path, sha, -1, None)
        files[path] = Local(path, sha, -1, None, m.content_type, m.cache_control, m.phase)
    return files


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


@dataclass(frozen=True, slots=True)
class Remote:
    sha256: str | None  # None when known from a listing only
    etag: str | None
    size: int | None
    headers: tuple[str, str] | None  # (content type, cache control) it was sent with


@dataclass
class RemoteState:
    source: str  # "state", "listing" (state missing, unreadable or ignored)
    objects: dict[str, Remote]
    retired: dict[str, float] = field(default_factory=dict)  # stale content-addressed path → since
    raw: bytes | None = None  # the state object as read


def encode_state(objects: dict[str, Remote], retired: dict[str, float]) -> bytes:
    """Deterministic gzip JSON; headers are numbered, so 400,000 paths repeat no long strings."""
    headers = sorted({o.headers for o in objects.values() if o.headers})
    number = {h: i for i, h in enumerate(headers)}
    body = {
        "format": STATE_FORMAT,
        "headers": [list(h) for h in headers],
        "objects": {p: [o.sha256, number.get(o.headers, -1) if o.headers else -1] for p, o in sorted(objects.items())},
        "retired": {p: retired[p] for p in sorted(retired)},
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=1) as gz:  # 400,000 paths: 6 took 4 s more
        gz.write(raw)
    return buf.getvalue()


def decode_state(data: bytes) -> tuple[dict[str, Remote], dict[str, float]]:
    raw = gzip.decompress(data)
    with heap.acyclic():
        body = json.loads(raw)
        if body.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown state format {body.get('format')!r}")
        headers = [tuple(h) for h in body["headers"]]
        objects = {
            str(p): Remote(str(sha), None, None, headers[h] if h >= 0 else None)
            for p, (sha, h) in body["objects"].items()
        }
    retired = {str(p): float(t) for p, t in body.get("retired", {}).items() if p in objects}
    return objects, retired


def read_remote(client: Any, bucket: str, log: Callable[[str], None], full_listing: bool = False) -> RemoteState:
    from botocore.exceptions import ClientError

    if not full_listing:
        try:
            raw = client.get_object(Bucket=bucket, Key=STATE_KEY)["Body"].read()
            objects, retired = decode_state(raw)
            return RemoteState("state", objects, retired, raw)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in ("NoSuchKey", "404"):
                log(f"读取部署状态 {STATE_KEY} 失败（{code}），改为列出存储桶")
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError) as err:
            log(f"部署状态 {STATE_KEY} 无法读取（{err}），改为列出存储桶")
    return RemoteState("listing", dict(list_bucket(client, bucket)))


def list_bucket(client: Any, bucket: str) -> Iterator[tuple[str, Remote]]:
    """Every object outside dot paths (ours to manage), with its ETag and size."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not is_dot_path(obj["Key"]):
                yield obj["Key"], Remote(None, obj["ETag"].strip('"'), obj["Size"], None)


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


def same(local: Local, remote: Remote) -> bool:
    if remote.sha256 is not None:
        return remote.sha256 == local.sha256 and remote.headers == (local.content_type, local.cache_control)
    return remote.etag == local.md5 and remote.size == local.size


def make_plan(local: dict[str, Local], remote: RemoteState, now: float, keep_replaced: float) -> Plan:
    uploads, unchanged = [], 0
    for path, loc in local.items():
        old = remote.objects.get(path)
        if old is not None and same(loc, old):
            unchanged += 1
        else:
            uploads.append(loc)
    uploads.sort(key=lambda u: (u.phase, u.path))
    deletes, kept = [], {}
    for path in sorted(set(remote.objects) - set(local)):
        since = remote.retired.get(path, now)
        if CONTENT_ADDRESSED.search(path) and now - since < keep_replaced:
            kept[path] = since
        else:
            deletes.append(path)
    return Plan(uploads, unchanged, deletes, kept, remote)


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
) -> DeployReport:
    """Sync `out` to `bucket`: upload what changed (assets, then pages, then entry points), delete
    what is gone, write the remote state, and write the CDN purge list. Raises DeployError."""
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.perf_counter()
    out = Path(out)
    if not out.is_dir():
        raise DeployError(f"输出目录 {out} 不存在；请先生成网站")
    client = client or make_client(endpoint, workers=workers)
    remote = _read_remote(client, bucket, log, full_listing)
    local = local_files(out, need_md5=remote.source == "listing", built=built)
    if not local:
        raise DeployError(f"输出目录 {out} 是空的，拒绝部署（会删除存储桶里的整个网站）")
    now = time.time()
    plan = make_plan(local, remote, now, keep_replaced)
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

    # The state the bucket will be in once all goes well, encoded (3 s at 430,000 files) while the
    # uploads wait on the network; written only after they all succeeded.
    with ThreadPoolExecutor(1) as background:
        hoped = background.submit(_next_state, plan, local, {})
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
        state = _next_state(plan, local, dict(failed)) if failed else hoped.result()
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


def _next_state(plan: Plan, local: dict[str, Local], not_deleted: dict[str, str]) -> bytes:
    """What the bucket holds now: every local file, the stale ones kept, those a delete missed."""
    objects = {p: Remote(loc.sha256, None, None, (loc.content_type, loc.cache_control)) for p, loc in local.items()}
    old = plan.remote.objects
    for path in [*plan.kept, *not_deleted]:
        o = old[path]
        objects[path] = Remote(o.sha256 or "", None, None, o.headers)  # "" never matches: resent if rebuilt
    return encode_state(objects, dict(plan.kept))


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
