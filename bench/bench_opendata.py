"""Open-data benchmark: time and peak memory of the open-data stage for N generated enterprises.

Run by hand (never in CI):  .venv/bin/python bench/bench_opendata.py [--n 100000] [--steps 10000,100000]
Reuses bench/out/data-<n> when present (`python build.py generate 100000 --seed 7 --out bench/out/data-100000`)
and keeps its own cache (bench/out/cache-opendata-<n>), so other benchmarks' directories stay as they are.
Results go to bench/RESULTS.md (the section between the 'opendata' markers is replaced).

Each step runs in a fresh process: load (from the cache) → the first `step` enterprises → the stage,
once without a previous output, then once more with the first run as the previous output (the
archive carried over). Peak RSS is read after loading and after the stage: memory that stays flat
in N shows as the same growth at every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import write_section  # noqa: E402

ONCE = """
import json, resource, sys, time
from pathlib import Path
from yimatong.load import load
from yimatong.opendata import write_open_data
data, cache, work, step = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cpu = lambda: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
t = time.perf_counter()
loaded = load(data, cache)
load_s = time.perf_counter() - t
loaded.entries = loaded.entries[:step]
after_load = rss()
t, c = time.perf_counter(), cpu()
first = write_open_data(loaded, work / "first", None)
first_s, first_cpu = time.perf_counter() - t, cpu() - c
after_first = rss()
t = time.perf_counter()
write_open_data(loaded, work / "second", work / "first")
second_s = time.perf_counter() - t
print(json.dumps({"load_s": load_s, "first_s": first_s, "first_cpu": first_cpu, "second_s": second_s,
                  "rss_load_mb": after_load,
                  "rss_stage_mb": after_first, "rss_end_mb": rss(), "records": first.records,
                  "downloads": [d.__dict__ for d in first.downloads]}))
"""


def once(data: Path, cache: Path, work: Path, step: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-c", ONCE, str(data), str(cache), str(work), str(step)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="the generated data set to use (default 100000)")
    ap.add_argument("--steps", default="10000,100000", help="how many of its enterprises to publish, per run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()

    data = args.work / f"data-{args.n}"
    if not (data / "site.yaml").exists():
        subprocess.run(
            [sys.executable, "build.py", "generate", str(args.n), "--seed", str(args.seed), "--out", str(data)],
            check=True,
            cwd=ROOT,
        )
    cache = args.work / f"cache-opendata-{args.n}"
    results = []
    for step in (int(s) for s in args.steps.split(",")):
        t = time.perf_counter()
        r = once(data, cache, args.work / f"opendata-{step}", step)
        results.append((step, r))
        print(f"{step}: stage {r['first_s']:.0f} s, peak RSS {r['rss_stage_mb']:.0f} MB", file=sys.stderr)
        print(f"   (wall {time.perf_counter() - t:.0f} s incl. load {r['load_s']:.0f} s)", file=sys.stderr)

    lines = [
        "<!-- opendata:start -->",
        f"## Open data: the stage for up to {args.n:,} generated enterprises, {os.cpu_count()} cores",
        "",
        f"`.venv/bin/python bench/bench_opendata.py --n {args.n} --steps {args.steps}`; one run per step, each in a"
        " fresh process that first loads the records from a warm cache. The stage runs in one process; the machine"
        " is shared, so CPU time is the steadier figure.",
        "",
        "| enterprises | stage (wall) | CPU | CPU per enterprise | peak RSS after load | after the stage | growth"
        " | again, archive carried (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for step, r in results:
        lines.append(
            f"| {step:,} | {r['first_s']:.0f} s | {r['first_cpu']:.0f} s | {r['first_cpu'] / step * 1000:.1f} ms"
            f" | {r['rss_load_mb']:,.0f} MB |"
            f" {r['rss_stage_mb']:,.0f} MB | {r['rss_stage_mb'] - r['rss_load_mb']:,.0f} MB | {r['second_s']:.0f} s |"
        )
    step, r = results[-1]
    lines += ["", f"Downloads for {step:,} enterprises (zip size; rows):", ""]
    lines += ["| file | rows | zip | uncompressed |", "|---|---|---|---|"]
    for d in r["downloads"]:
        lines.append(
            f"| `{d['table']}.{d['format']}` | {d['rows']:,} | {d['bytes'] / 1e6:,.1f} MB |"
            f" {d['uncompressed_bytes'] / 1e6:,.1f} MB |"
        )
    total = sum(d["bytes"] for d in r["downloads"])
    lines += [
        "",
        f"Total {total / 1e6:,.0f} MB per night; the archive keeps 12 such sets (hard links, no copies).",
        "<!-- opendata:end -->",
    ]
    write_section(ROOT / "bench" / "RESULTS.md", "opendata", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
