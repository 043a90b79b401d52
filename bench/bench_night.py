"""One more night on an existing bench output: flip 1 % of the export, run `build.py nightly`, measure.

Run by hand (never in CI), after bench_nightly.py has built N once, for example:
    .venv/bin/python bench/bench_night.py --n 100000 --change name --runs 3
    .venv/bin/python bench/bench_night.py --n 100000 --change data --runs 3 --bucket

Each run flips the same 1 % of the permits (bench_nightly.chosen) of
bench/out/nightly/N/ours-nosigns/data between their original export (bench/out/data-N) and a
changed one, so every run is a night with 1 % of the files changed:
- `name`: a new enterprise name (bench_nightly.renamed): the page and outlet pages, the lists, the
  search index, the open data and the signs all change. The costliest small change.
- `data`: a new self-monitoring result (the last value of the enterprise's first self-monitoring
  series): its pages, data.json and open-data rows change; the lists and the search index only if
  a count they show changes. What most nights bring.
- `mixed`: `data`, but one file in MIXED_RENAMES (50 at 100,000) renamed: a night that changes the
  search index a little, as most real nights do (a new holder, a new status, a rename).
It then runs `build.py nightly --no-signs` on that output and cache with the checkout's code, or
with `--code DIR` another copy of it (the first run after a code change re-renders what the change
touches: run a night to warm up, or run the snapshot the output was built with),
and with `--bucket` also uploads to moto's S3 server (its own process on 127.0.0.1), seeded with a
state object that says the bucket holds the output as it was before the night (see bench_deploy.py);
since 2026-12-07 moto's S3 alone (`--every-service`: the `moto_server` command, as before).
Measured: wall time, stage seconds (the nightly's report), peak memory of the process tree as PSS
(proportional set size: a page shared by the forked workers counts once, split between them) and
as the sum of RSS (each process counts it in full), the main process's peak RSS, and the peak PSS
within each stage. Each run is
appended to bench/out/nightly/N/nights.json; the table is written by hand to RESULTS.md.

With `--signs` the night runs with the sign stage on bench/out/nightly/N/ours-signs: a hard-linked
copy (`cp -al`) of ours-nosigns' cache, data and public, whose sign cache
`bench_signs.seed_cache(data, cache, models_from=(sample data, its sign cache), links=10000)` filled,
then built once with `build.py nightly`: `bash bench/setup_signs_100k.sh` makes it all (~40 min).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_deploy import BUCKET, CREDENTIALS, moto_server, outputs, seed  # noqa: E402
from bench.bench_nightly import chosen, load_average, renamed, rollup  # noqa: E402

_VALUES = re.compile(r"^(      values: \[)([^\]]*)(\])$", re.M)
_ADDRESS = re.compile(r"^(  address: )(.+)$", re.M)


def monitored(text: str) -> str:
    """The export with a new last value in its first self-monitoring series (or, without one, a
    corrected address), still valid."""
    start = text.index("\nself_monitoring:")
    m = _VALUES.search(text, start)
    values = m.group(2).split(", ") if m else []
    last = next((i for i in range(len(values) - 1, -1, -1) if values[i] != "null"), None)
    if m is None or last is None:  # no self-monitoring results: a corrected address instead
        return _ADDRESS.sub(lambda a: a.group(1) + a.group(2) + "（更正）", text, count=1)
    values[last] = f"{float(values[last]) * 1.01 + 0.01:.2f}"
    return text[: m.start(2)] + ", ".join(values) + text[m.end(2) :]


MIXED_RENAMES = 20  # `mixed`: one changed file in 20 is a rename, the others a new result


def flip(data: Path, original: Path, change: str) -> int:
    """Flip the chosen 1 % between original and changed (a new file each); returns how many."""
    files = sorted((data / "enterprises").glob("*.yaml"))
    flipped = 0
    for k, f in enumerate(chosen(files)):
        changed = renamed if change == "name" or (change == "mixed" and k % MIXED_RENAMES == 0) else monitored
        orig = (original / f.relative_to(data)).read_text(encoding="utf-8")
        now = f.read_text(encoding="utf-8")
        new = orig if now != orig else changed(orig)
        if new != now:
            tmp = f.with_suffix(".tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, f)
            flipped += 1
    return flipped


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


# The nightly's stages in the order they run (its report lists them by name).
STAGES = ("load", "changes", "pages", "search", "open data", "signs", "catalog", "verify", "swap", "deploy", "tidy")


def watch(pid: int, peaks: dict[str, float], timeline: list[tuple[float, float]] | None = None) -> None:
    """Poll the process tree's memory every 0.2 s until it exits (kB → MB in `peaks`; `pss_at`:
    seconds from the start to the PSS peak; `timeline`: (seconds, PSS MB) of every poll)."""
    started = time.perf_counter()
    while os.path.exists(f"/proc/{pid}"):
        tree, stack = [], [pid]
        while stack:
            p = stack.pop()
            tree.append(p)
            stack += _children(p)
        rolls = [rollup(p) for p in tree]
        pss = sum(r.get("Pss", 0) for r in rolls)
        if timeline is not None:
            timeline.append((time.perf_counter() - started, pss / 1024))
        if pss / 1024 > peaks.get("pss", 0.0):
            peaks["pss_at"] = round(time.perf_counter() - started)
        for key, value in (
            ("pss", pss),
            ("rss_sum", sum(r.get("Rss", 0) for r in rolls)),
            ("main_rss", rolls[0].get("Rss", 0) if rolls else 0),
        ):
            peaks[key] = max(peaks.get(key, 0.0), value / 1024)
        time.sleep(0.2)


def stage_peaks(timeline: list[tuple[float, float]], seconds: dict[str, float], wall: float) -> dict[str, int]:
    """Peak PSS (MB) per stage: the report's stage seconds laid end to end, after the start-up the
    report does not count (wall minus its total)."""
    at = max(0.0, wall - seconds.get("total", wall))
    peaks: dict[str, int] = {}
    for stage in STAGES:
        if stage not in seconds:
            continue
        end = at + seconds[stage]
        inside = [mb for t, mb in timeline if at <= t < end]
        if inside:
            peaks[stage] = round(max(inside))
        at = end
    return peaks


def night(
    n: int,
    change: str,
    bucket: bool,
    code: Path = ROOT,
    profile: Path | None = None,
    spy_options: tuple[str, ...] = ("--idle",),
    with_signs: bool = False,
    every_service: bool = False,
) -> dict:
    work = ROOT / "bench" / "out" / "nightly" / str(n) / ("ours-signs" if with_signs else "ours-nosigns")
    data, out, cache = work / "data", work / "public", work / "cache"
    flipped = flip(data, ROOT / "bench" / "out" / f"data-{n}", change)
    command = [sys.executable, str(code / "build.py"), "nightly", *([] if with_signs else ["--no-signs"])]
    command += ["--data", str(data), "--out", str(out)]
    command += ["--cache", str(cache), "--quiet"]
    load = load_average()
    server = moto_server(every_service) if bucket else None
    env = dict(os.environ)
    if server is not None:
        endpoint = server.__enter__()
        env.update(CREDENTIALS)
        os.environ.update(CREDENTIALS)
        from yimatong import deploy as dp

        seed(dp.make_client(endpoint), out, outputs(out))
        command += ["--bucket", BUCKET, "--endpoint", endpoint]
    if profile is not None:  # py-spy's raw stacks: see where the time goes
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", *spy_options, "--format", "raw"]
        spy += ["-o", str(profile)]
        command = [*spy, "--", *command]
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peaks: dict[str, float] = {}
        timeline: list[tuple[float, float]] = []
        watcher = threading.Thread(target=watch, args=(proc.pid, peaks, timeline), daemon=True)
        watcher.start()
        _, err = proc.communicate()
        wall = time.perf_counter() - started
        watcher.join()
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    report = json.loads((out.parent / f"{out.name}.report.json").read_text(encoding="utf-8"))
    result = {
        "n": n,
        "change": change,
        "flipped": flipped,
        "bucket": bucket and ("moto_server" if every_service else "moto s3"),
        "signs": report.get("signs") if with_signs else None,
        "exit": proc.returncode,
        "wall": round(wall, 1),
        "load_before": load,
        "peak_mb": {k: round(v) for k, v in peaks.items()},
        "seconds": report.get("seconds"),
        "pss_by_stage": stage_peaks(timeline, report.get("seconds") or {}, wall),
        "files": report.get("files"),
        "pages": report.get("pages"),
        "upload": report.get("upload"),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "code": str(code.relative_to(ROOT)) if code.is_relative_to(ROOT) else str(code),
    }
    if proc.returncode != 0:
        result["error"] = err.decode(errors="replace")[-2000:]
    with (work.parent / "nights.json").open("a", encoding="utf-8") as f:
        f.write(json.dumps(result, ensure_ascii=False) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--change", choices=("name", "data", "mixed"), default="name")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--bucket", action="store_true", help="also upload to moto's S3 server")
    ap.add_argument(
        "--every-service",
        action="store_true",
        help="with --bucket: the `moto_server` command (every AWS service moto knows, as the benches ran"
        " it before 2026-12-07) instead of moto's S3 alone (bench_deploy.moto_server)",
    )
    ap.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="run this copy of the code (e.g. the snapshot bench_nightly.py built the output with: a"
        " change to the checkout's code would make the first night re-render what it touches)",
    )
    ap.add_argument("--profile", type=Path, help="record the night with py-spy (pip install py-spy) into this file")
    ap.add_argument(
        "--spy-options",
        default="--idle",
        help="py-spy's options for --profile: '--idle' (waits included, one process) or"
        " '--subprocesses --threads' (CPU only, the workers too)",
    )
    ap.add_argument(
        "--signs",
        action="store_true",
        help="signs included: bench/out/nightly/N/ours-signs (a copy of ours-nosigns whose sign cache"
        " bench_signs.seed_cache filled, built once with signs: see RESULTS.md)",
    )
    args = ap.parse_args()
    for _ in range(args.runs):
        spy = tuple(args.spy_options.split())
        result = night(
            args.n, args.change, args.bucket, args.code.resolve(), args.profile, spy, args.signs, args.every_service
        )
        print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
