"""Deploy: the built sample synced to a real S3-compatible server (moto's, on 127.0.0.1), read back
the way the CDN reads it: object by object, with the headers it serves."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError
from moto.server import ThreadedMotoServer

from yimatong import deploy as dp
from yimatong.deploy import STATE_KEY, DeployError, DeployReport, deploy
from yimatong.manifest import FOLDER_INODE, Catalog, Manifest, Output, bundle_sha, pack, unpack
from yimatong.nightly import file_count
from yimatong.pipeline import BuildResult, Options, build

ROOT = Path(__file__).resolve().parent.parent
PERMIT = "12451200349746972X001W"  # has an outlet page (DW001)
GONE = "12450800169407076P001W"  # its export is withdrawn in the nightly test
LONG = "public, max-age=31536000, immutable"
DAY = "public, max-age=86400"
SHORT = "public, max-age=300"
TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "bin": "application/octet-stream",
    "pdf": "application/pdf",
    "zip": "application/zip",
}


# --- the server, the site, and what the client did ---------------------------------------------


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on a free local port; dummy credentials, no AWS profile of the machine."""
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(nowhere),
            "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        }.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def new_bucket(endpoint: str, name: str, **client_options: Any) -> Any:
    client = dp.make_client(endpoint, **client_options)
    client.create_bucket(Bucket=name)
    return client


class Calls:
    """The S3 calls a client makes, in order (one entry per call, not per attempt), and the
    attempts per key (a request is created for each retry)."""

    def __init__(self, client: Any) -> None:
        self.events: list[tuple[str, str]] = []
        self.attempts: Counter[str] = Counter()
        client.meta.events.register("before-parameter-build.s3.PutObject", self._put)
        client.meta.events.register("before-parameter-build.s3.DeleteObjects", self._delete)
        client.meta.events.register("request-created.s3.PutObject", self._attempt)

    def _put(self, params: dict[str, Any], **_: Any) -> None:
        self.events.append(("put", params["Key"]))

    def _delete(self, params: dict[str, Any], **_: Any) -> None:
        self.events += [("delete", o["Key"]) for o in params["Delete"]["Objects"]]

    def _attempt(self, request: Any, **_: Any) -> None:
        self.attempts[key_of(request)] += 1

    def puts(self) -> list[str]:
        return [k for kind, k in self.events if kind == "put"]

    def deletes(self) -> list[str]:
        return [k for kind, k in self.events if kind == "delete"]


def key_of(request: Any) -> str:
    """The object key of a path-style request URL (http://host/bucket/key)."""
    return unquote(urlsplit(request.url).path).split("/", 2)[2]


def listing(client: Any, bucket: str) -> dict[str, str]:
    """key → ETag of everything in the bucket."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def state_bytes(client: Any, bucket: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=STATE_KEY)["Body"].read()


def published(out: Path) -> set[str]:
    """The files a deploy must publish: all but the dot paths (the build's state, the marker)."""
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def purge_urls(base: str, keys: set[str]) -> set[str]:
    urls = {base + k for k in keys}
    urls |= {base + k[: -len("index.html")] for k in keys if k == "index.html" or k.endswith("/index.html")}
    return urls


def copy_site(source: Path, target: Path, leave_out: tuple[str, ...] = ()) -> Path:
    return Path(shutil.copytree(source, target, ignore=shutil.ignore_patterns(*leave_out) if leave_out else None))


@pytest.fixture(scope="module")
def base_url(sample_build: tuple[BuildResult, Path]) -> str:
    return sample_build[0].loaded.site.base_url


@dataclass
class First:
    out: Path
    client: Any
    bucket: str
    report: DeployReport
    calls: Calls


@pytest.fixture(scope="module")
def first(
    sample_build: tuple[BuildResult, Path], endpoint: str, base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> First:
    """The sample deployed to an empty bucket that held two objects of an older site: a page, and a
    file of an older search index (content-addressed)."""
    out = copy_site(sample_build[1], tmp_path_factory.mktemp("first") / "public")
    client = new_bucket(endpoint, "first")
    client.put_object(Bucket="first", Key="old/stale.html", Body=b"<p>old</p>")
    client.put_object(Bucket="first", Key="search/i/s/0.0123456789.bin", Body=b"\x00")
    calls = Calls(client)
    report = deploy(out, "first", endpoint, base_url=base_url, client=client, log=lambda _: None)
    return First(out, client, "first", report, calls)


# --- 1. the first deploy -----------------------------------------------------------------------


def expected_headers(key: str) -> tuple[str, str]:
    name = key.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    ctype = "text/plain; charset=utf-8" if name == "SHA256SUMS" else TYPES[ext]
    if key == "feed.xml":
        ctype = "application/atom+xml; charset=utf-8"
    if key.startswith("search/i/") or re.fullmatch(r"search/search\.[0-9a-f]+\.js", key):
        return ctype, LONG  # content-named: the search page names them, through its directories
    dated = re.search(r"[0-9]{4}-[0-9]{2}", key) is not None  # the monthly archive's snapshots
    return ctype, DAY if ext in ("pdf", "zip") and dated else SHORT


def test_first_deploy_publishes_every_file_with_its_headers(first: First, base_url: str) -> None:
    files = published(first.out)
    assert first.report.uploaded == len(files) > 1000
    assert first.report.unchanged == 0
    keys = set(listing(first.client, first.bucket))
    # the old page is gone; the old search index stays a while (a cached search page may read it)
    assert "old/stale.html" not in keys
    assert keys == files | {STATE_KEY, "search/i/s/0.0123456789.bin"}
    assert [k for k in keys if k.startswith(".") or "/." in k] == [STATE_KEY]
    assert (first.report.deleted, first.report.kept) == (1, 1)

    def head(key: str) -> tuple[str, str, str, str, int]:
        h = first.client.head_object(Bucket=first.bucket, Key=key)
        return key, h["ContentType"], h["CacheControl"], h["Metadata"]["sha256"], h["ContentLength"]

    with ThreadPoolExecutor(4) as pool:
        heads = list(pool.map(head, sorted(files)))
    wrong = []
    for key, ctype, cache, sha, size in heads:
        data = (first.out / key).read_bytes()
        if (ctype, cache) != expected_headers(key) or sha != hashlib.sha256(data).hexdigest() or size != len(data):
            wrong.append((key, ctype, cache))
    assert wrong == []

    page = f"P/{PERMIT}/index.html"
    body = first.client.get_object(Bucket=first.bucket, Key=page)["Body"].read()
    assert body == (first.out / page).read_bytes()

    purge = first.out.parent / "public.purge.txt"  # the default: beside the output directory
    lines = purge.read_text(encoding="utf-8").splitlines()
    assert set(lines) == purge_urls(base_url, files | {"old/stale.html"}) == set(first.report.purge)
    assert {base_url, f"{base_url}P/{PERMIT}/", f"{base_url}P/{PERMIT}/DW001/"} <= set(lines)


# --- 2. nothing changed ------------------------------------------------------------------------


def test_second_deploy_with_nothing_changed_sends_nothing(first: First, base_url: str, tmp_path: Path) -> None:
    before = listing(first.client, first.bucket)
    calls = Calls(first.client)
    report = deploy(
        first.out,
        first.bucket,
        None,
        base_url=base_url,
        client=first.client,
        purge_list=tmp_path / "purge.txt",
        log=lambda _: None,
    )
    assert (report.uploaded, report.deleted, report.bytes) == (0, 0, 0)
    assert report.unchanged == len(published(first.out))
    assert calls.events == []  # not even the state object: it would say the same
    assert listing(first.client, first.bucket) == before
    assert (tmp_path / "purge.txt").read_text() == ""


# --- 5. order --------------------------------------------------------------------------------------


def test_assets_go_before_pages_and_entry_points_last_then_deletes(first: First) -> None:
    events = first.calls.events
    at = {e: i for i, e in enumerate(events)}
    puts = [k for k in first.calls.puts() if k != STATE_KEY]

    def entry(k: str) -> bool:
        name = k.rsplit("/", 1)[-1]
        top = "/" not in k and (re.fullmatch(r"index\.html|robots\.txt|sitemap.*\.xml|feed\.xml", k) is not None)
        return top or name in ("index.json", "SHA256SUMS")

    assets = [k for k in puts if not k.endswith(".html") and not entry(k)]
    html = [k for k in puts if k.endswith(".html") and not entry(k)]
    entries = [k for k in puts if entry(k)]
    assert {"index.html", "sitemap.xml", "robots.txt", "data/index.json"} <= set(entries)
    assert len(assets) > 800 and len(html) > 200
    assert max(at["put", k] for k in assets) < min(at["put", k] for k in html)
    assert max(at["put", k] for k in html) < min(at["put", k] for k in entries)
    # the stale page is deleted after every upload; the state object is written last
    assert at["delete", "old/stale.html"] > max(at["put", k] for k in puts)
    assert events[-1] == ("put", STATE_KEY)


# --- 3 and 4. a night's change: dry run, then the deploy -----------------------------------------


def test_a_changed_enterprise_moves_only_its_objects(
    sample_build: tuple[BuildResult, Path], endpoint: str, base_url: str, tmp_path: Path
) -> None:
    built = sample_build[1]
    out = copy_site(built, tmp_path / "public")
    cache = copy_site(built.parent / "cache", tmp_path / "cache")
    client = new_bucket(endpoint, "nightly")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(out, "nightly", endpoint, base_url=base_url, client=client, log=quiet)
    (tmp_path / "public.purge.txt").unlink()  # handed to the CDN

    # tonight's export: one enterprise renamed, one withdrawn (2 of 60 files)
    data = Path(shutil.copytree(ROOT / "data", tmp_path / "data"))
    record = data / "enterprises" / f"{PERMIT}.yaml"
    text = record.read_text(encoding="utf-8")
    name = re.search(r"^  name: (.+)$", text, re.M)
    assert name
    record.write_text(text.replace(name.group(0), f"  name: {name.group(1)}分院", 1), encoding="utf-8")
    (data / "enterprises" / f"{GONE}.yaml").unlink()
    build(data, out, cache, options=Options(allow_shrink=True))  # a withdrawn holder: the operator allows it

    before, state = listing(client, "nightly"), state_bytes(client, "nightly")
    printed: list[str] = []
    dry = deploy(out, "nightly", endpoint, base_url=base_url, client=client, dry_run=True, log=printed.append)
    assert listing(client, "nightly") == before and state_bytes(client, "nightly") == state
    assert not (tmp_path / "public.purge.txt").exists()
    assert f"  + P/{PERMIT}/index.html" in printed and f"  - P/{GONE}/index.html" in printed

    calls = Calls(client)
    report = deploy(out, "nightly", endpoint, base_url=base_url, client=client, log=quiet)
    after = listing(client, "nightly")
    changed = {k for k in after if before.get(k) != after[k]} - {STATE_KEY}
    removed = set(before) - set(after)
    uploaded, deleted = set(calls.puts()) - {STATE_KEY}, set(calls.deletes())
    assert (uploaded, deleted) == (set(dry.uploads), set(dry.deletes)) == (changed, removed)
    assert report.uploaded == len(uploaded) and report.deleted == len(deleted)

    # the renamed enterprise's page, outlet page, data and signs; nobody else's
    assert {f"P/{PERMIT}/index.html", f"P/{PERMIT}/DW001/index.html", f"P/{PERMIT}/data.json"} <= uploaded
    permits = {p.name for p in (built / "P").iterdir()}
    assert {k.split("/")[1] for k in uploaded if k.count("/") > 1 and k.split("/")[1] in permits} == {PERMIT}
    assert {k for k in deleted if k.startswith("P/")} == {f"P/{GONE}/index.html", f"P/{GONE}/data.json"}
    assert {f"signs/{GONE}/{GONE}-gate-450x620.pdf"} <= deleted  # its signs (and a county batch it was alone in)
    assert not {k for k in deleted if k.count("/") > 1 and k.split("/")[1] in permits - {GONE}}
    # the rest: lists, downloads, the search files that name it; a small part of the site
    outside_search = {k for k in uploaded if not k.startswith("search/i/")}
    total = len(published(out))
    assert len(outside_search) < 0.05 * total, sorted(outside_search)
    assert report.unchanged == total - len(uploaded) > 0.8 * total

    # the replaced search index stays (a search page cached before the deploy still reads it)
    old_index = {k for k in before if k.startswith("search/i/")} - set(after)
    kept = {k for k in before if k.startswith("search/i/")} - published(out)
    assert old_index == set() and report.kept == len(kept) > 0

    purge = (tmp_path / "public.purge.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(purge) == purge and set(purge) == purge_urls(base_url, changed | removed)
    assert f"{base_url}P/{GONE}/" in purge

    # once the grace period is over, the old index goes too (and nothing else moves)
    later = deploy(out, "nightly", endpoint, base_url=base_url, client=client, keep_replaced=0, log=quiet)
    assert (later.uploaded, later.deleted, later.kept) == (0, len(kept), 0)
    assert set(listing(client, "nightly")) == published(out) | {STATE_KEY}


# --- 6. failures -------------------------------------------------------------------------------------


class Faults:
    """before-send hooks that fail chosen PUTs the way a network or a busy server does."""

    def __init__(self, client: Any) -> None:
        self.plan: dict[str, list[str]] = {}  # key → what its next attempts do ("drop", "503", "403")
        client.meta.events.register_first("before-send.s3.PutObject", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        todo = self.plan.get(key_of(request))
        if not todo:
            return None
        fault = todo.pop(0) if len(todo) > 1 or todo[0] != "403" else "403"  # 403 for ever
        if fault == "drop":
            raise ConnectionClosedError(endpoint_url=request.url)
        code, status = ("SlowDown", 503) if fault == "503" else ("AccessDenied", 403)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self.body


def test_transient_failures_are_retried_and_a_failed_upload_stops_the_run(
    sample_build: tuple[BuildResult, Path], endpoint: str, base_url: str, tmp_path: Path
) -> None:
    out = copy_site(sample_build[1], tmp_path / "public", leave_out=("signs",))
    client = new_bucket(endpoint, "flaky")
    faults, calls = Faults(client), Calls(client)
    dropped, busy = f"P/{PERMIT}/data.json", f"P/{PERMIT}/index.html"
    faults.plan = {dropped: ["drop"], busy: ["503"]}
    deploy(out, "flaky", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert calls.attempts[dropped] == calls.attempts[busy] == 2
    for key in (dropped, busy):
        assert client.get_object(Bucket="flaky", Key=key)["Body"].read() == (out / key).read_bytes()

    # tonight: a page and the home page changed, a file is gone; the page's upload is refused
    page, gone = f"P/{PERMIT}/DW001/index.html", f"P/{GONE}/data.json"
    for key in (page, "index.html"):
        with (out / key).open("a", encoding="utf-8") as f:
            f.write("<!-- changed -->\n")
    (out / gone).unlink()
    before, state = listing(client, "flaky"), state_bytes(client, "flaky")
    calls = Calls(client)
    faults.plan = {page: ["403"]}
    with pytest.raises(DeployError, match=re.escape(page)):
        deploy(out, "flaky", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert calls.deletes() == [] and gone in listing(client, "flaky")
    assert state_bytes(client, "flaky") == state  # the next run still sees what is missing
    assert "index.html" not in calls.puts()  # entry points come after pages: never reached
    assert listing(client, "flaky") == before

    faults.plan = {}
    report = deploy(out, "flaky", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert (set(report.uploads), report.deletes) == ({page, "index.html"}, [gone])
    assert state_bytes(client, "flaky") != state


def test_connection_errors_past_botocore_get_retries_of_their_own(
    endpoint: str, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dp, "PUT_BACKOFF", 0.01)
    out = tmp_path / "public"
    (out / "P" / "x").mkdir(parents=True)
    (out / "index.html").write_text("<a href=P/x/>x</a>\n")
    (out / "P" / "x" / "index.html").write_text("<p>x</p>\n")
    (out / "P" / "x" / "data.json").write_text("{}\n")
    client = new_bucket(endpoint, "own-retries", attempts=1)  # botocore itself gives up at once
    faults, calls = Faults(client), Calls(client)
    faults.plan = {"P/x/data.json": ["drop"] * (dp.PUT_ATTEMPTS - 1)}
    deploy(out, "own-retries", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert calls.attempts["P/x/data.json"] == dp.PUT_ATTEMPTS

    (out / "P" / "x" / "data.json").write_text('{"a": 1}\n')
    faults.plan = {"P/x/data.json": ["drop"] * (dp.PUT_ATTEMPTS + 5)}
    with pytest.raises(DeployError, match=re.escape("P/x/data.json")):
        deploy(out, "own-retries", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert calls.attempts["P/x/data.json"] == 2 * dp.PUT_ATTEMPTS  # bounded


# --- local hashes ----------------------------------------------------------------------------------


def test_the_builds_manifest_spares_hashing_and_is_checked_at_upload(
    sample_build: tuple[BuildResult, Path], endpoint: str, base_url: str, tmp_path: Path
) -> None:
    out = copy_site(sample_build[1], tmp_path / "public", leave_out=("signs", "P", "data"))
    files = published(out)
    assert (out / ".yimatong").is_dir()  # the build wrote its manifest: the deploy reads it
    hashed = dp.local_files(out, need_md5=False)
    assert {p: h.sha256 for p, h in hashed.items()} == {
        p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in files
    }
    # a file rewritten after the build is hashed again, not taken from the manifest
    (out / "about" / "index.html").write_text("<p>edited by hand</p>\n", encoding="utf-8")
    again = dp.local_files(out, need_md5=False)
    assert again["about/index.html"].sha256 == hashlib.sha256(b"<p>edited by hand</p>\n").hexdigest()

    # a manifest that disagrees with the bytes stops the upload instead of publishing a wrong hash
    manifest = {p: {"sha256": h.sha256} for p, h in again.items()}
    manifest["robots.txt"] = {"sha256": "0" * 64}
    for old in (out / ".yimatong").iterdir():
        old.unlink()
    client = new_bucket(endpoint, "manifest")
    deploy(out, "manifest", endpoint, base_url=base_url, client=client, log=lambda _: None)
    (out / ".yimatong" / "manifest.json").write_text(json.dumps({"outputs": manifest}))
    assert dp.local_files(out, need_md5=False)["robots.txt"].sha256 == "0" * 64
    with pytest.raises(DeployError, match=re.escape("robots.txt")):
        deploy(out, "manifest", endpoint, base_url=base_url, client=client, log=lambda _: None)


def test_without_a_readable_state_the_bucket_is_listed_and_etags_compared(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    (out / "P" / "x").mkdir(parents=True)
    (out / "index.html").write_text("<a href=P/x/>x</a>\n")
    (out / "P" / "x" / "index.html").write_text("<p>x</p>\n")
    (out / "robots.txt").write_text("User-agent: *\n")
    client = new_bucket(endpoint, "listed")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(out, "listed", endpoint, base_url=base_url, client=client, log=quiet)
    client.put_object(Bucket="listed", Key=STATE_KEY, Body=b"not gzip")  # a damaged state object
    client.put_object(Bucket="listed", Key="P/y/index.html", Body=b"<p>put there by hand</p>")
    (out / "robots.txt").write_text("User-agent: *\nDisallow: /search/\n")

    said: list[str] = []
    report = deploy(out, "listed", endpoint, base_url=base_url, client=client, log=said.append)
    assert any(STATE_KEY in line for line in said)  # the operator is told why it lists
    assert (report.uploads, report.deletes, report.unchanged) == (["robots.txt"], ["P/y/index.html"], 2)
    assert dp.decode_state(state_bytes(client, "listed")).sha.keys() == {"index.html", "P/x/index.html", "robots.txt"}

    # with a good state, an object it does not know is only found by a full listing
    client.put_object(Bucket="listed", Key="P/z/index.html", Body=b"<p>put there by hand</p>")
    assert deploy(out, "listed", endpoint, base_url=base_url, client=client, log=quiet).deletes == []
    report = deploy(out, "listed", endpoint, base_url=base_url, client=client, full_listing=True, log=quiet)
    assert (report.uploaded, report.deletes) == (0, ["P/z/index.html"])


def test_the_nightly_command_builds_verifies_publishes_and_uploads(endpoint: str, tmp_path: Path) -> None:
    """What cron runs, export to bucket: a first night uploads the site; the next night, with one
    enterprise renamed, uploads that enterprise's pages and what lists it, and nothing else of P/."""
    data = Path(shutil.copytree(ROOT / "data", tmp_path / "data"))
    out, cache = tmp_path / "public", tmp_path / "cache"
    client = new_bucket(endpoint, "nightly-cron")

    command = ["nightly", "--data", str(data), "--out", str(out), "--cache", str(cache), "--no-signs", "--quiet"]

    def night() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(ROOT / "build.py"), *command, "--bucket", "nightly-cron", "--endpoint", endpoint],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads((tmp_path / "public.report.json").read_text(encoding="utf-8"))

    first_night = night()
    assert first_night["published"] and first_night["upload"]["uploaded"] == len(published(out))
    assert first_night["files"]["total"] == len(published(out))
    file = sorted((data / "enterprises").glob("*.yaml"))[4]
    text = file.read_text(encoding="utf-8")
    old = next(x for x in text.splitlines() if x.startswith("  name: "))
    file.unlink()
    file.write_text(text.replace(old, "  name: 夜间改名测试有限公司", 1), encoding="utf-8")

    second = night()
    assert second["records"]["parsed"] == 1 and second["pages"]["rendered"] < 20
    uploaded = set((tmp_path / "public.purge.txt").read_text(encoding="utf-8").split())
    permit_pages = {u for u in uploaded if "/P/" in u}
    assert permit_pages and all(f"/P/{file.stem}/" in u for u in permit_pages)
    body = client.get_object(Bucket="nightly-cron", Key=f"P/{file.stem}/index.html")["Body"].read().decode()
    assert "夜间改名测试有限公司" in body
    # a few files move: the enterprise's pages and data.json, the list pages that show it, the zips,
    # and the search files that hold its name
    assert len(uploaded) < len(published(out)) * 0.1
    # The nightly handed deploy the build's own hashes (no file read); a plain deploy, which walks
    # and checks the output itself, finds the bucket already holding exactly the site.
    again = deploy(out, "nightly-cron", endpoint, base_url="https://example.org/", client=client, log=lambda _: None)
    assert (again.uploaded, again.deleted, again.unchanged) == (0, 0, len(published(out)))
    assert published(out) <= set(listing(client, "nightly-cron"))


def test_a_builds_files_get_the_headers_each_would_get_on_its_own(sample_build: tuple[BuildResult, Path]) -> None:
    """The nightly hands deploy the build's hashes; a permit's files take their headers from another
    permit's at the same place. Every file must still get exactly its own headers."""
    out = sample_build[1]
    built = {p: hashlib.sha256(b"x" + p.encode()).hexdigest() for p in published(out)}
    fast = dp.local_files(out, need_md5=False, built=built)
    assert sum(p.startswith("P/") for p in fast) > 100 and sum(p.startswith("signs/") for p in fast) > 100
    assert fast == {p: dp._local(out, p, sha, -1, None) for p, sha in built.items()}


# --- the state object ---------------------------------------------------------------------------------


def small_site(out: Path) -> Path:
    (out / "P" / "x").mkdir(parents=True)
    (out / "index.html").write_text("<a href=P/x/>x</a>\n")
    (out / "P" / "x" / "index.html").write_text("<p>x</p>\n")
    (out / "P" / "x" / "data.json").write_text("{}\n")
    (out / "robots.txt").write_text("User-agent: *\n")
    return out


def encode_state_v1(state: dp.RemoteState) -> bytes:
    """A state as the deploys before format 2 wrote it: a dict of path -> [sha256, header], no rules."""
    table = sorted({h for h in state.headers.values() if h})
    number = {h: i for i, h in enumerate(table)}
    body = {
        "format": 1,
        "headers": [list(h) for h in table],
        "objects": {p: [state.sha[p], number.get(state.headers.get(p), -1)] for p in sorted(state.sha)},
        "retired": {p: state.retired[p] for p in sorted(state.retired)},
    }
    return gzip.compress(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), mtime=0)


def body_of(state: bytes) -> dict[str, Any]:
    return json.loads(gzip.decompress(state))


def test_a_format_1_state_is_read_as_it_was_and_replaced_by_the_current_format(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    """A bucket deployed by the code before format 2 is not sent again: its recorded hashes and
    headers are compared file by file (it has no rules), and the next state is the current format."""
    out = small_site(tmp_path / "public")
    client = new_bucket(endpoint, "format-1")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(out, "format-1", endpoint, base_url=base_url, client=client, log=quiet)
    state = dp.decode_state(state_bytes(client, "format-1"))
    assert (body_of(state_bytes(client, "format-1"))["format"], state.rules) == (3, dp.RULES)

    client.put_object(Bucket="format-1", Key=STATE_KEY, Body=encode_state_v1(state))
    calls = Calls(client)
    report = deploy(out, "format-1", endpoint, base_url=base_url, client=client, log=quiet)
    assert (report.uploaded, report.deleted, report.unchanged) == (0, 0, 4)
    assert calls.events == [("put", STATE_KEY)]  # nothing but the state, now in format 3
    after = dp.decode_state(state_bytes(client, "format-1"))
    assert body_of(state_bytes(client, "format-1"))["format"] == 3
    assert (after.sha, after.headers, after.rules) == (state.sha, state.headers, dp.RULES)

    # with no rules to vouch for them, headers that differ from what would be sent are sent again
    wrong = dp.RemoteState("state", state.sha, {**state.headers, "P/x/data.json": ("text/plain", SHORT)})
    client.put_object(Bucket="format-1", Key=STATE_KEY, Body=encode_state_v1(wrong))
    report = deploy(out, "format-1", endpoint, base_url=base_url, client=client, log=quiet)
    assert (report.uploads, report.unchanged) == (["P/x/data.json"], 3)
    assert dp.decode_state(state_bytes(client, "format-1")).headers == state.headers


def test_recorded_headers_are_trusted_under_the_same_rules_and_compared_under_others(
    endpoint: str, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = small_site(tmp_path / "public")
    client = new_bucket(endpoint, "rules")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(out, "rules", endpoint, base_url=base_url, client=client, log=quiet)
    state = dp.decode_state(state_bytes(client, "rules"))
    assert state.headers["P/x/data.json"] == (TYPES["json"], SHORT)
    recorded = {**state.headers, "P/x/data.json": ("text/plain", SHORT)}  # as if sent so
    client.put_object(Bucket="rules", Key=STATE_KEY, Body=dp.encode_state(state.sha, recorded, {}, dp.RULES))

    # the same rules, the same bytes: the same headers; not even worked out
    calls = Calls(client)
    report = deploy(out, "rules", endpoint, base_url=base_url, client=client, log=quiet)
    assert (report.uploaded, report.unchanged, calls.events) == (0, 4, [])

    # other rules (the code that picks headers was edited): every file's are compared
    monkeypatch.setattr(dp, "RULES", "other rules")
    report = deploy(out, "rules", endpoint, base_url=base_url, client=client, log=quiet)
    assert (report.uploads, report.unchanged) == (["P/x/data.json"], 3)
    assert client.head_object(Bucket="rules", Key="P/x/data.json")["ContentType"] == TYPES["json"]
    after = dp.decode_state(state_bytes(client, "rules"))
    assert (after.headers, after.rules) == (state.headers, "other rules")


def test_the_rules_fingerprint_follows_the_code_that_picks_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dp.rules_fingerprint() == dp.RULES
    monkeypatch.setitem(dp.CONTENT_TYPES, ".json", "application/json")
    assert dp.rules_fingerprint() != dp.RULES


def test_the_state_is_the_same_bytes_for_the_same_state() -> None:
    sha = {f"P/{i:022d}/index.html": hashlib.sha256(str(i).encode()).hexdigest() for i in range(50)}
    sha |= {"search/i/s/0.0123456789.bin": "", "index.html": "ab" * 32}
    headers = {p: (TYPES["html"], SHORT) for p in sha if p.endswith(".html")}
    headers["search/i/s/0.0123456789.bin"] = (TYPES["bin"], LONG)
    headers["gone.html"] = (TYPES["txt"], DAY)  # not in the state: not in its table either
    retired = {"search/i/s/0.0123456789.bin": 1.7e9 + 0.25}
    one = dp.encode_state(sha, headers, retired, "r")
    assert one == dp.encode_state(dict(reversed(sha.items())), dict(reversed(headers.items())), retired, "r")
    body = body_of(one)
    assert body["path"] == sorted(sha) and body["headers"] == sorted(map(list, {headers[p] for p in sha}))
    back = dp.decode_state(one)
    assert (back.sha, back.headers, back.retired, back.rules) == (sha, {p: headers[p] for p in sha}, retired, "r")
    assert dp.encode_state(back.sha, back.headers, back.retired, "r") == one


def test_the_nightly_path_plans_and_records_what_the_walk_does(sample_build: tuple[BuildResult, Path]) -> None:
    """The nightly hands over the build's hashes and describes only the files to upload; a deploy
    after a plain build walks the output and describes every file. Same tree, same bucket: the same
    plan, the same state bytes, whether the state vouches for its headers or not."""
    out = sample_build[1]
    walked = dp.local_output(out, need_md5=False)
    files = dp.local_files(out, need_md5=False)
    paths = sorted(files)
    described: list[str] = []
    built = {p: files[p].sha256 for p in paths}  # sorted, as the build's manifest lists them
    nightly = dp.local_output(out, need_md5=False, built=built)
    counted = dp.LocalFiles(nightly.sha, lambda p, s: described.append(p) or nightly.local(p, s))
    assert nightly.sha == walked.sha

    # the bucket holds last night's site: some files changed, some new, an old page and search file
    changed, new = set(paths[::97]), set(paths[5::131])
    sha = {p: "0" * 64 if p in changed else files[p].sha256 for p in paths if p not in new}
    sha |= {"old/stale.html": "1" * 64, "search/i/s/0.0123456789.bin": "2" * 64}
    headers = {p: files[p].headers if p in files else (TYPES["html"], SHORT) for p in sha}
    moved = next(p for p in paths if p.startswith("P/") and p not in changed | new)
    headers[moved] = (TYPES["txt"], SHORT)  # sent with other headers than it would get now
    v2 = dp.encode_state(sha, headers, {}, dp.RULES)
    for state, resent in (
        (v2, set()),
        (dp.encode_state(sha, headers, {}, "other rules"), {moved}),
        (encode_state_v1(dp.decode_state(v2)), {moved}),
    ):
        remote = dp.decode_state(state)
        described.clear()
        plans = [dp.make_plan(o, remote, 1e9, 3600) for o in (walked, counted)]
        assert [u.path for u in plans[0].uploads] == [u.path for u in plans[1].uploads]
        assert {u.path for u in plans[0].uploads} == changed | new | resent
        assert dp._sized(out, plans[1].uploads) == plans[0].uploads
        assert [(p.unchanged, p.deletes, p.kept) for p in plans] == [
            (len(paths) - len(changed | new | resent), ["old/stale.html"], {"search/i/s/0.0123456789.bin": 1e9})
        ] * 2
        assert dp._next_state(plans[0], walked, {}) == dp._next_state(plans[1], counted, {})
        if remote.rules == dp.RULES:  # only the files to upload were described
            assert sorted(described) == sorted(changed | new)
        else:
            assert len(described) == len(paths)


# --- bundles: a permit's sign PDFs, one entry of the manifest and of the state ------------------------

SIGN_FILE = re.compile(r"(signs/[0-9A-Z]{22}/)([^/]+)")
ONE, TWO = "91450600MA5K00001X001W", "91450600MA5K00002Y001W"
SIZES = ("gate-450x620", "DA001-210x297", "DA001-105x148.5")
PDF = (TYPES["pdf"], SHORT)


def fold(files: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """path -> sha256 as the build hands it over: the plain files, and a bundle per permit's sign folder."""
    plain: dict[str, str] = {}
    grouped: dict[str, dict[str, str]] = {}
    for path, sha in files.items():
        m = SIGN_FILE.fullmatch(path)
        if m:
            grouped.setdefault(m[1], {})[m[2]] = sha
        else:
            plain[path] = sha
    return plain, {folder: pack(names) for folder, names in grouped.items()}


def hashes(out: Path) -> dict[str, str]:
    return {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in published(out)}


def signed_site(out: Path) -> Path:
    """`small_site` and two permits' signs: 4 plain files, 2 bundles of 3."""
    small_site(out)
    for permit in (ONE, TWO):
        (out / "signs" / permit).mkdir(parents=True)
        for size in SIZES:
            (out / "signs" / permit / f"{permit}-{size}.pdf").write_bytes(f"%PDF {permit} {size}\n".encode())
    return out


def nightly_deploy(out: Path, bucket: str, client: Any, base_url: str, **options: Any) -> DeployReport:
    """As `build.py nightly` deploys: with the build's plain files and its bundles."""
    plain, bundles = fold(hashes(out))
    options.setdefault("log", lambda _: None)
    return deploy(out, bucket, None, base_url=base_url, client=client, built=plain, bundles=bundles, **options)


def table_of(body: dict[str, Any], column: str) -> list[tuple[str, str] | None]:
    return [tuple(body["headers"][i]) if i >= 0 else None for i in body[column]]


def test_a_bundle_is_one_entry_of_the_state_and_only_its_changed_files_move(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    out = signed_site(tmp_path / "public")
    client = new_bucket(endpoint, "bundles")
    first = nightly_deploy(out, "bundles", client, base_url)
    assert (first.uploaded, first.unchanged) == (10, 0)
    assert set(listing(client, "bundles")) == published(out) | {STATE_KEY}
    for key in published(out):
        head = client.head_object(Bucket="bundles", Key=key)
        assert (head["ContentType"], head["CacheControl"]) == expected_headers(key)
    body = body_of(state_bytes(client, "bundles"))
    assert (body["format"], body["bundle"]) == (3, [f"signs/{ONE}/", f"signs/{TWO}/"])
    assert body["path"] == ["P/x/data.json", "P/x/index.html", "index.html", "robots.txt"]
    assert body["files"] == [fold(hashes(out))[1][f] for f in body["bundle"]]
    assert table_of(body, "bundle_header") == [PDF, PDF]

    # nothing changed: nothing sent, not even the state
    calls = Calls(client)
    again = nightly_deploy(out, "bundles", client, base_url)
    assert (again.uploaded, again.deleted, again.unchanged, calls.events) == (0, 0, 10, [])

    # one file of a bundle changed: that file alone
    changed = f"signs/{ONE}/{ONE}-gate-450x620.pdf"
    (out / changed).write_bytes(b"%PDF renamed\n")
    calls = Calls(client)
    report = nightly_deploy(out, "bundles", client, base_url, purge_list=tmp_path / "purge.txt")
    assert (calls.puts(), calls.deletes()) == ([changed, STATE_KEY], [])
    assert (report.uploaded, report.deleted, report.unchanged) == (1, 0, 9)
    assert (tmp_path / "purge.txt").read_text().split() == [base_url + changed]
    assert client.get_object(Bucket="bundles", Key=changed)["Body"].read() == b"%PDF renamed\n"
    assert dp.decode_state(state_bytes(client, "bundles")).bundles == fold(hashes(out))[1]

    # a file gone from one bundle, and the other bundle gone: exactly those objects are deleted
    dropped = f"signs/{ONE}/{ONE}-DA001-105x148.5.pdf"
    (out / dropped).unlink()
    shutil.rmtree(out / "signs" / TWO)
    calls = Calls(client)
    report = nightly_deploy(out, "bundles", client, base_url, purge_list=tmp_path / "purge.txt")
    gone = {dropped} | {f"signs/{TWO}/{TWO}-{size}.pdf" for size in SIZES}
    assert (calls.puts(), set(calls.deletes())) == ([STATE_KEY], gone)
    assert (report.uploaded, report.deleted, report.unchanged) == (0, 4, 6)
    assert set(listing(client, "bundles")) == published(out) | {STATE_KEY}
    assert set((tmp_path / "purge.txt").read_text().split()) == {base_url + p for p in gone}
    after = dp.decode_state(state_bytes(client, "bundles"))
    assert (after.bundles, list(after.sha)) == (fold(hashes(out))[1], body["path"])


def test_a_failed_upload_of_a_bundles_file_deletes_nothing_and_keeps_the_state(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    out = signed_site(tmp_path / "public")
    client = new_bucket(endpoint, "bundle-fails")
    nightly_deploy(out, "bundle-fails", client, base_url)
    changed = f"signs/{ONE}/{ONE}-gate-450x620.pdf"
    (out / changed).write_bytes(b"%PDF renamed\n")
    shutil.rmtree(out / "signs" / TWO)
    before, state = listing(client, "bundle-fails"), state_bytes(client, "bundle-fails")
    faults, calls = Faults(client), Calls(client)
    faults.plan = {changed: ["403"]}
    with pytest.raises(DeployError, match=re.escape(changed)):
        nightly_deploy(out, "bundle-fails", client, base_url)
    assert calls.deletes() == [] and listing(client, "bundle-fails") == before
    assert state_bytes(client, "bundle-fails") == state

    faults.plan = {}
    report = nightly_deploy(out, "bundle-fails", client, base_url)
    assert (report.uploads, len(report.deletes)) == ([changed], 3)
    assert dp.decode_state(state_bytes(client, "bundle-fails")).bundles == fold(hashes(out))[1]


def encode_state_v2(state: dp.RemoteState) -> bytes:
    """A state as the deploys before format 3 wrote it: columns, every file a path (no bundles)."""
    table = sorted({h for h in state.headers.values() if h})
    number = {h: i for i, h in enumerate(table)}
    paths = sorted(state.sha)
    body = {
        "format": 2,
        "rules": state.rules,
        "headers": [list(h) for h in table],
        "path": paths,
        "sha256": [state.sha[p] for p in paths],
        "header": [number.get(state.headers.get(p), -1) for p in paths],
        "retired": {},
    }
    return gzip.compress(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), mtime=0)


def test_a_format_2_state_of_sign_files_one_by_one_sends_nothing_to_local_bundles(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    """The night after the upgrade: the state lists every sign PDF as a path, the build hands over
    bundles; the same bytes are not sent again, and the next state keeps the bundles folded."""
    out = signed_site(tmp_path / "public")
    client = new_bucket(endpoint, "format-2")
    deploy(out, "format-2", endpoint, base_url=base_url, client=client, log=lambda _: None)  # walks: no bundles
    state = dp.decode_state(state_bytes(client, "format-2"))
    assert (state.bundles, len(state.sha)) == ({}, 10)
    v2 = encode_state_v2(state)
    assert dp.decode_state(v2).sha == state.sha

    client.put_object(Bucket="format-2", Key=STATE_KEY, Body=v2)
    calls = Calls(client)
    report = nightly_deploy(out, "format-2", client, base_url)
    assert (report.uploaded, report.deleted, report.unchanged) == (0, 0, 10)
    assert calls.events == [("put", STATE_KEY)]  # nothing but the state, now in format 3
    body = body_of(state_bytes(client, "format-2"))
    assert (body["format"], body["bundle"], len(body["path"])) == (3, [f"signs/{ONE}/", f"signs/{TWO}/"], 4)
    assert table_of(body, "bundle_header") == [PDF, PDF]
    calls = Calls(client)
    assert nightly_deploy(out, "format-2", client, base_url).uploaded == 0
    assert calls.events == []

    # against a format-2 state, a changed file and a file no bundle holds any more are found too
    client.put_object(Bucket="format-2", Key=STATE_KEY, Body=v2)
    changed, dropped = (f"signs/{ONE}/{ONE}-{size}.pdf" for size in SIZES[:2])
    (out / changed).write_bytes(b"%PDF renamed\n")
    (out / dropped).unlink()
    report = nightly_deploy(out, "format-2", client, base_url)
    assert (report.uploads, report.deletes, report.unchanged) == ([changed], [dropped], 8)


def test_the_deploy_command_publishes_every_file_of_a_version_3_manifest(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    """`build.py deploy` reads the build's manifest itself: a bundle's files are published one by one,
    and it agrees with the nightly's folded state both ways."""
    out = signed_site(tmp_path / "public")
    files = hashes(out)
    plain, bundles = fold(files)
    outputs = {p: Output(sha) for p, sha in plain.items()}
    outputs |= {f: Output(bundle_sha(packed), None, None, FOLDER_INODE) for f, packed in bundles.items()}
    Manifest(outputs, bundles=bundles).write(out)
    written = json.loads(gzip.decompress((out / ".yimatong" / "manifest.json.gz").read_bytes()))
    assert (written["version"], written["bundles"]) == (3, bundles)
    assert dp.read_manifest(out)[0] == {p: {"sha256": sha} for p, sha in files.items()}

    client = new_bucket(endpoint, "manifest-3")
    report = deploy(out, "manifest-3", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert (report.uploaded, report.unchanged) == (10, 0)
    assert set(listing(client, "manifest-3")) == published(out) | {STATE_KEY}
    for key, sha in files.items():
        assert client.head_object(Bucket="manifest-3", Key=key)["Metadata"]["sha256"] == sha

    # the nightly after it: the state's paths against its bundles, nothing sent but the state
    calls = Calls(client)
    assert nightly_deploy(out, "manifest-3", client, base_url).unchanged == 10
    assert calls.events == [("put", STATE_KEY)]
    # and the deploy command after the nightly: its files one by one against the state's bundles
    calls = Calls(client)
    report = deploy(out, "manifest-3", endpoint, base_url=base_url, client=client, log=lambda _: None)
    assert (report.uploaded, report.deleted, report.unchanged) == (0, 0, 10)
    assert calls.puts() == [STATE_KEY]  # its files as paths: written by the deploy command

    # a bundle's hash in the manifest is trusted (and checked at upload)
    wrong = {
        **bundles,
        f"signs/{ONE}/": pack({**unpack(bundles[f"signs/{ONE}/"]), f"{ONE}-gate-450x620.pdf": "0" * 64}),
    }
    Manifest(outputs, bundles=wrong).write(out)
    assert dp.local_files(out, need_md5=False)[f"signs/{ONE}/{ONE}-gate-450x620.pdf"].sha256 == "0" * 64


def first_plan(out: Path, plain: dict[str, str], bundles: dict[str, str]) -> tuple[dp.LocalFiles, dp.RemoteState]:
    """The nightly's output, and the state its first deploy to an empty bucket writes."""
    output = dp.local_output(out, need_md5=False, built=plain, bundles=bundles)
    plan = dp.make_plan(output, dp.RemoteState("state", {}, rules=dp.RULES), 1e9, 0)
    return output, dp.decode_state(dp._next_state(plan, output, {}))


def test_an_unchanged_night_looks_into_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-path work on a night that changes no sign: a look-up per plain file and a comparison per
    bundle; no bundle's files are unpacked or described."""
    out = signed_site(tmp_path / "public")
    plain, bundles = fold(hashes(out))
    output, remote = first_plan(out, plain, bundles)
    described: list[str] = []
    counted = dp.LocalFiles(output.sha, lambda p, s: described.append(p) or output.local(p, s), output.bundles)
    opened: list[str] = []
    real_unpack, real_files = dp.unpack, dp.bundle_files
    monkeypatch.setattr(dp, "unpack", lambda packed: opened.append(packed) or real_unpack(packed))
    monkeypatch.setattr(dp, "bundle_files", lambda folder, packed: opened.append(folder) or real_files(folder, packed))
    plan = dp.make_plan(counted, remote, 1e9, 0)
    state = dp._next_state(plan, counted, {})
    assert (plan.uploads, plan.deletes, plan.unchanged, described, opened) == ([], [], 10, [], [])
    assert state == remote.raw

    # one file changed: only its bundle is opened, only that file described
    changed = f"signs/{TWO}/{TWO}-gate-450x620.pdf"
    files = unpack(bundles[f"signs/{TWO}/"])
    counted = dp.LocalFiles(
        output.sha,
        counted.local,
        {**bundles, f"signs/{TWO}/": pack({**files, f"{TWO}-gate-450x620.pdf": "1" * 64})},
    )
    plan = dp.make_plan(counted, remote, 1e9, 0)
    assert ([u.path for u in plan.uploads], described, plan.unchanged) == ([changed], [changed], 9)
    assert f"signs/{ONE}/" not in opened and bundles[f"signs/{ONE}/"] not in opened


def test_headers_of_bundles_under_other_rules_and_a_bundle_with_mixed_headers(tmp_path: Path) -> None:
    out = signed_site(tmp_path / "public")
    dated = f"signs/{ONE}/{ONE}-2026-11-20.pdf"  # a dated download: cached for a day, not 5 minutes
    (out / dated).write_bytes(b"%PDF dated\n")
    plain, bundles = fold(hashes(out))
    output, remote = first_plan(out, plain, bundles)
    # its files do not share headers: the state lists that bundle's files as paths, the other folded
    assert (sorted(remote.bundles), remote.headers[f"signs/{TWO}/"]) == ([f"signs/{TWO}/"], PDF)
    assert remote.headers[dated] == (TYPES["pdf"], DAY) and remote.headers[f"signs/{ONE}/{ONE}-gate-450x620.pdf"] == PDF
    again = dp.make_plan(output, remote, 1e9, 0)
    assert (again.uploads, again.deletes, again.unchanged) == ([], [], 11)
    assert dp._next_state(again, output, {}) == remote.raw

    # under other rules every file's headers are compared, a bundle's against its recorded ones
    headers = {**remote.headers, f"signs/{TWO}/": (TYPES["bin"], SHORT)}  # as if sent so
    sha = {p: s for p, s in remote.sha.items() if s is not None}
    other = dp.decode_state(dp.encode_state(sha, headers, {}, "other rules", remote.bundles))
    plan = dp.make_plan(output, other, 1e9, 0)
    assert [u.path for u in plan.uploads] == sorted(f"signs/{TWO}/{TWO}-{size}.pdf" for size in SIZES)
    assert dp._next_state(plan, output, {}) == remote.raw
    plan = dp.make_plan(output, dp.decode_state(dp.encode_state(sha, remote.headers, {}, "x", remote.bundles)), 1e9, 0)
    assert (plan.uploads, plan.unchanged) == ([], 11)


def test_the_state_with_bundles_is_the_same_bytes_for_the_same_state() -> None:
    sha = {"index.html": "ab" * 32, "search/i/s/0.0123456789.bin": ""}
    bundles = {f"signs/{i:022d}/": pack({f"{i:022d}-{s}.pdf": f"{i:064x}" for s in SIZES}) for i in range(20)}
    headers: dict[str, tuple[str, str] | None] = {"index.html": (TYPES["html"], SHORT)}
    headers |= dict.fromkeys(bundles, PDF)
    headers[f"signs/{3:022d}/"] = None  # unknown
    retired = {"search/i/s/0.0123456789.bin": 1.7e9}
    one = dp.encode_state(sha, headers, retired, "r", bundles)
    back = dp.decode_state(one)
    assert back.bundles == bundles and list(back.bundles) == sorted(bundles)
    assert back.headers == {**{p: headers.get(p) for p in sha}, **{f: headers[f] for f in bundles}}
    assert (back.sha, back.retired, back.rules) == (sha, retired, "r")
    flipped = dict(reversed(bundles.items()))
    assert dp.encode_state(dict(reversed(sha.items())), headers, retired, "r", flipped) == one
    assert dp.encode_state(back.sha, back.headers, back.retired, "r", back.bundles) == one
    body = body_of(one)
    assert (body["format"], body["bundle"], body["path"]) == (3, sorted(bundles), sorted(sha))
    assert table_of(body, "bundle_header").count(None) == 1
    # a bundle is a folder: anything else is an unreadable state (the bucket is listed instead)
    broken = {**body, "bundle": [f.rstrip("/") for f in body["bundle"]]}
    with pytest.raises(ValueError, match="folder"):
        dp.decode_state(gzip.compress(json.dumps(broken).encode()))


def test_bundles_plan_what_their_files_one_by_one_would(sample_build: tuple[BuildResult, Path]) -> None:
    """The sample's signs, folded into bundles or not, locally and in the state: the same uploads and
    deletes whichever way, under the same rules or others."""
    out = sample_build[1]
    files = {p: f.sha256 for p, f in dp.local_files(out, need_md5=False).items()}
    plain, bundles = fold(files)
    assert len(bundles) > 50 and sum(p.count("\n") for p in bundles.values()) > 400
    folders = sorted(bundles)
    signs = sorted(p for p in files if p not in plain)
    # the bucket holds last night's site: some sign files changed, one more file in a folder, a permit
    # whose signs are gone, a permit whose signs are new tonight
    last = dict(files)
    changed = set(signs[::37])
    last.update(dict.fromkeys(changed, "0" * 64))
    extra, withdrawn = f"{folders[3]}old.pdf", "signs/91450600MA5K00009Z001W/"
    last |= {extra: "1" * 64} | {f"{withdrawn}{withdrawn[6:-1]}-{s}.pdf": "2" * 64 for s in SIZES}
    new = {p for p in signs if p.startswith(folders[5])}
    for p in new:
        del last[p]
    walked = dp.LocalFiles(files, lambda p, s: dp._local(out, p, s, -1, None))
    nightly = dp.local_output(out, need_md5=False, built=plain, bundles=bundles)
    expected_deletes = sorted({extra} | {p for p in last if p.startswith(withdrawn)})
    last_plain, last_bundles = fold(last)
    headers = {p: walked.local(p, files.get(p, "")).headers for p in last} | dict.fromkeys(last_bundles, PDF)
    for rules in (dp.RULES, "other rules"):
        for remote in (
            dp.decode_state(dp.encode_state(last, headers, {}, rules)),
            dp.decode_state(dp.encode_state(last_plain, headers, {}, rules, last_bundles)),
        ):
            for output in (walked, nightly):
                plan = dp.make_plan(output, remote, 1e9, 0)
                assert {u.path for u in plan.uploads} == changed | new
                assert (plan.deletes, plan.unchanged) == (expected_deletes, len(files) - len(changed | new))
                assert [u.phase for u in plan.uploads] == sorted(u.phase for u in plan.uploads)
                state = dp.decode_state(dp._next_state(plan, output, {}))
                assert (state.bundles == bundles) == (output is nightly)
                assert {p: state.sha_of(p) for p in files} == files


def test_the_nightly_report_counts_a_bundles_files() -> None:
    packed = pack({"a.pdf": "0" * 64, "b.pdf": "1" * 64})
    outputs = {"index.html": Output("2" * 64), f"signs/{ONE}/": Output(bundle_sha(packed), None, None, FOLDER_INODE)}
    assert file_count(Catalog(outputs, set(), set(), None, {f"signs/{ONE}/": packed})) == 3
