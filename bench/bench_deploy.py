"""Deploy at scale: one night's upload of a large site to an S3-compatible server on this machine.

Run by hand (never in CI), for example, after two nights of the 100,000-permit nightly bench:
    .venv/bin/python bench/bench_deploy.py --previous /work/tmp/dep/nightA \
        --current bench/out/nightly/100000/ours-nosigns/public --workers 8 32 --runs 3

What is measured: `yimatong.deploy.deploy` of `--current` into a bucket of moto's S3 server
(`moto_server`, its own process on 127.0.0.1) whose remote state object says it holds `--previous`
(the state is written from `--previous`'s build manifest, its bundles folded as a deploy records
them; the objects themselves are not uploaded first: a night's deploy reads the state object, never
lists the bucket, so what it does depends only on that state). The deploy is given the build's own
hashes (`built` and `bundles`, as `build.py nightly` does), so it reads no file it does not upload.
Wall time per phase: reading the remote state, the local table, the plan, the uploads (assets,
pages, entry points), the deletes, writing the new state. Medians of `--runs`. A real origin adds
network latency per request; moto on the same 2 cores as the client is the other way round: it
competes with the uploader for CPU.

Results go to bench/RESULTS.md (the section between the 'deploy-nightly' markers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import write_section  # noqa: E402
from yimatong import deploy as dp  # noqa: E402
from yimatong.manifest import Manifest, bundled_count, plain_files  # noqa: E402

BUCKET = "bench-deploy"
Built = tuple[dict[str, str], dict[str, str]]  # plain path -> sha256, bundle folder -> packed files


def outputs(tree: Path) -> Built:
    """A build's plain files and bundles, from its manifest (a version-2 one's sign PDFs read as the
    bundles their folders are now)."""
    listed = Manifest.read(tree)
    assert listed is not None, tree
    return plain_files(listed.outputs), listed.bundles


def file_count(built: Built) -> int:
    plain, bundles = built
    return len(plain) + bundled_count(bundles)


# moto's S3 alone, served as `moto_server` serves every service (werkzeug, a thread per request)
# but without its dispatcher, which matches each request against every AWS service moto knows
# (half of the server's CPU per PUT: 2.4 against 5 ms; 2,600 PUTs of 30 kB from 8 threads took 7.6-8.0
# against 13-15.6 s on 2 cores, 2026-12-07). A real origin serves S3 alone, and not on our cores.
S3_ONLY = """
import logging, sys
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple
logging.getLogger("werkzeug").setLevel(logging.ERROR)
run_simple(sys.argv[1], int(sys.argv[2]), create_backend_app("s3"), threaded=True, request_handler=MotoRequestHandler)
"""


@contextlib.contextmanager
def moto_server(every_service: bool = False) -> Iterator[str]:
    """moto's S3 on 127.0.0.1 in its own process; `every_service`: the `moto_server` command itself
    (as the tests run it, and the benches did before 2026-12-07)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if every_service:
        command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    else:
        command = [sys.executable, "-c", S3_ONLY, "127.0.0.1", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def seed(client, tree: Path, built: Built) -> bytes:
    """A new bucket whose state object says it holds `tree` (`built`, from its manifest), without
    uploading the objects: a night's deploy reads only the state. The state is the one a first deploy
    of `tree` records (format 3, its bundles folded, every file's headers). Returns it."""
    client.create_bucket(Bucket=BUCKET)
    plain, bundles = built
    output = dp.local_output(tree, need_md5=False, built=plain, bundles=bundles)
    empty = dp.RemoteState("state", {}, rules=dp.RULES)
    state = dp._next_state(dp.make_plan(output, empty, time.time(), dp.KEEP_REPLACED), output, {})
    client.put_object(Bucket=BUCKET, Key=dp.STATE_KEY, Body=state)
    return state


class Phases:
    """Wall time spent inside some deploy functions (wrapped for the run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, label: str) -> None:
        fn = getattr(dp, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t

        setattr(dp, name, timed)


def one_run(previous: Built, previous_tree: Path, current: Path, built: Built, workers: int) -> dict:
    os.environ.update(CREDENTIALS)
    with moto_server() as endpoint:
        client = dp.make_client(endpoint, workers=workers)
        state = seed(client, previous_tree, previous)
        saved = {
            n: getattr(dp, n) for n in ("read_remote", "local_output", "make_plan", "run_all", "delete", "encode_state")
        }
        phases = Phases()
        for name, label in (
            ("read_remote", "state read"),
            ("local_output", "local"),
            ("make_plan", "plan"),
            ("run_all", "uploads"),
            ("delete", "deletes"),
            ("encode_state", "state write"),
        ):
            phases.wrap(name, label)
        try:
            t = time.perf_counter()
            report = dp.deploy(
                current,
                BUCKET,
                endpoint,
                base_url="https://example.org/",
                workers=workers,
                client=client,
                log=lambda _m: None,
                built=built[0],
                bundles=built[1],
                purge_list=Path("/tmp/bench-deploy-purge.txt"),
            )
            wall = time.perf_counter() - t
        finally:
            for n, fn in saved.items():
                setattr(dp, n, fn)
    return {
        "workers": workers,
        "wall": wall,
        "uploaded": report.uploaded,
        "deleted": report.deleted,
        "kept": report.kept,
        "unchanged": report.unchanged,
        "bytes": report.bytes,
        "state_bytes": len(state),
        "phases": {k: round(v, 2) for k, v in phases.seconds.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--previous", type=Path, required=True, help="the tree the bucket holds (its manifest)")
    ap.add_argument("--current", type=Path, required=True, help="tonight's tree")
    ap.add_argument("--workers", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    previous, built = outputs(args.previous), outputs(args.current)
    rows = []
    for workers in args.workers:
        runs = [one_run(previous, args.previous, args.current, built, workers) for _ in range(args.runs)]
        walls = sorted(r["wall"] for r in runs)
        median = runs[[r["wall"] for r in runs].index(statistics.median_low(walls))]
        print(json.dumps({"walls": [round(w, 1) for w in walls], **median}, ensure_ascii=False), flush=True)
        rows.append((workers, walls, median))
    n = file_count(built)
    lines = [
        "<!-- deploy-nightly:start -->",
        f"## Deploy, one night at scale: {n:,} files, moto's S3 server on 127.0.0.1, {os.cpu_count()} cores",
        "",
        "`.venv/bin/python bench/bench_deploy.py --previous A --current B` (its docstring says what is"
        " measured): the bucket's state object says it holds night A; night B is deployed with the build's"
        f" own hashes, as `build.py nightly --bucket` does. Median of {args.runs} runs. {args.note}",
        "",
        "| uploads in flight | wall (median; all runs) | uploaded | deleted | kept (replaced search version)"
        " | bytes | phases (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for workers, walls, r in rows:
        phases = ", ".join(f"{k} {v}" for k, v in r["phases"].items())
        lines.append(
            f"| {workers} | {r['wall']:.1f} s ({', '.join(f'{w:.1f}' for w in walls)}) | {r['uploaded']:,} |"
            f" {r['deleted']:,} | {r['kept']:,} | {r['bytes'] / 1e6:.1f} MB | {phases} |"
        )
    lines.append("<!-- deploy-nightly:end -->")
    write_section(ROOT / "bench" / "RESULTS.md", "deploy-nightly", "\n".join(lines))


if __name__ == "__main__":
    main()
