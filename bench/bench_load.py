"""Loader benchmark: cold parse of N generated enterprises, then a re-check with unchanged files.

Run by hand (never in CI):  .venv/bin/python bench/bench_load.py --n 100000 --runs 3
Results go to bench/RESULTS.md (the section between the 'loader' markers is replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ONCE = """
import json, resource, sys, time
from pathlib import Path
from yimatong.load import load
t = time.perf_counter()
loaded = load(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - t
kb = lambda who: resource.getrusage(who).ru_maxrss
print(json.dumps({"seconds": seconds, "files": loaded.files, "parsed": loaded.parsed,
                  "good": len(loaded.entries), "problems": len(loaded.problems),
                  "rss_parent_mb": kb(resource.RUSAGE_SELF) / 1024,
                  "rss_worker_mb": kb(resource.RUSAGE_CHILDREN) / 1024}))
"""


def once(data: Path, cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", ONCE, str(data), str(cache)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout)


def raw_parse_rate(data: Path, sample: int = 500) -> float:
    """Plain yaml.load with CSafeLoader on one core, for reference."""
    import yaml

    files = sorted((data / "enterprises").glob("*.yaml"))[:sample]
    t = time.perf_counter()
    for f in files:
        yaml.load(f.read_bytes(), Loader=yaml.CSafeLoader)
    return len(files) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()

    data = args.work / f"data-{args.n}"
    if not (data / "site.yaml").exists():
        from yimatong.generate import generate

        shutil.rmtree(data, ignore_errors=True)
        t = time.perf_counter()
        generate(args.n, args.seed, data)
        print(f"generated {args.n} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    files = list((data / "enterprises").glob("*.yaml"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    cold, warm = [], []
    for run in range(args.runs):
        cache = args.work / f"cache-{args.n}"
        shutil.rmtree(cache, ignore_errors=True)
        subprocess.run(["sync"], check=False)
        cold.append(once(data, cache))
        warm.append(once(data, cache))
        print(f"run {run + 1}: cold {cold[-1]['seconds']:.1f} s, warm {warm[-1]['seconds']:.1f} s", file=sys.stderr)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rate = raw_parse_rate(data)
    lines = [
        "<!-- loader:start -->",
        f"## Loader: {args.n:,} generated enterprises ({size_mb:,.0f} MB of YAML, {os.cpu_count()} cores)",
        "",
        f"`.venv/bin/python bench/bench_load.py --n {args.n} --runs {args.runs}`; medians of {args.runs} runs;"
        " each run in a fresh process; the file cache of the OS is warm (the files were just written).",
        "",
        "| run | wall time | files/s | files parsed | peak RSS parent | peak RSS per worker |",
        "|---|---|---|---|---|---|",
        f"| cold (empty cache) | {med(cold, 'seconds'):.1f} s | {args.n / med(cold, 'seconds'):,.0f} |"
        f" {med(cold, 'parsed'):,.0f} | {med(cold, 'rss_parent_mb'):,.0f} MB | {med(cold, 'rss_worker_mb'):,.0f} MB |",
        f"| unchanged files (warm cache) | {med(warm, 'seconds'):.1f} s | {args.n / med(warm, 'seconds'):,.0f} |"
        f" {med(warm, 'parsed'):,.0f} | {med(warm, 'rss_parent_mb'):,.0f} MB | {med(warm, 'rss_worker_mb'):,.0f} MB |",
        "",
        f"Reference: plain `yaml.load(..., CSafeLoader)` of these files on one core: {rate:,.0f} files/s"
        " (validation, hashing and caching come on top; two worker processes share the work).",
        f"Target: {args.n:,} unchanged files re-checked in under 10 s.",
        "<!-- loader:end -->",
    ]
    write_section(ROOT / "bench" / "RESULTS.md", "loader", "\n".join(lines))
    print("\n".join(lines))


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the marked section of RESULTS.md (or append it), leaving the others alone."""
    old = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else "# Benchmark results\n\nMeasured by hand on the project's 2-core machine.\n"
    )
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start in old:
        head, rest = old.split(start, 1)
        new = head + text + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
