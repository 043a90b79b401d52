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


def test_a_format_1_state_is_read_as_it_was_and_replaced_by_format_2(
    endpoint: str, base_url: str, tmp_path: Path
) -> None:
    """A bucket deployed by the code before format 2 is not sent again: its recorded hashes and
    headers are compared file by file (it has no rules), and the next state is format 2."""
    out = small_site(tmp_path / "public")
    client = new_bucket(endpoint, "format-1")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    deploy(out, "format-1", endpoint, base_url=base_url, client=client, log=quiet)
    state = dp.decode_state(state_bytes(client, "format-1"))
    assert (body_of(state_bytes(client, "format-1"))["format"], state.rules) == (2, dp.RULES)

    client.put_object(Bucket="format-1", Key=STATE_KEY, Body=encode_state_v1(state))
    calls = Calls(client)
    report = deploy(out, "format-1", endpoint, base_url=base_url, client=client, log=quiet)
    assert (report.uploaded, report.deleted, report.unchanged) == (0, 0, 4)
    assert calls.events == [("put", STATE_KEY)]  # nothing but the state, now in format 2
    after = dp.decode_state(state_bytes(client, "format-1"))
    assert body_of(state_bytes(client, "format-1"))["format"] == 2
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
    counted = dp.LocalFiles(nightly.sha, lambda p: described.append(p) or nightly.local(p))
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
