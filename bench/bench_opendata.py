"""Open-data benchmark: the stage cold, on an unchanged night and on nights where 1 % of the files changed.

Run by hand (never in CI):  .venv/bin/python bench/bench_opendata.py [--n 100000] [--changed 0.01] [--nights 3]
Reuses bench/out/data-<n> when present (`python build.py generate 100000 --seed 7 --out bench/out/data-100000`)
and keeps its own loader cache (bench/out/cache-opendata-<n>), so other benchmarks' directories stay as they
are. The changed nights read bench/out/data-<n>-changed: a hard-linked copy of the data in which every
1/changed-th file is replaced by a new file with one more line (a YAML comment: a new digest, so its rows are
encoded again; the data set itself is never written to). Results go to bench/RESULTS.md (the section between
the 'opendata' markers is replaced).

One process runs the nights in order, as the nightly build would: night 0 from nothing (empty open-data
cache, no live output), night 1 with nothing changed, then nights alternating between the changed copy and
the original (each one a night on which 1 % of the files changed), each with the night before as the live
output (its data.json files hard-linked through manifest.Reuse) and the same cache. The stage is timed
alone; loading the records is reported beside it. `--levels` then measures zlib levels on a sample of the
segments of night 0's zips (every 10th segment of every file, scaled up).

`--code DIR` runs the stage from a copy of the package (PYTHONPATH), e.g. to keep the loader's code
fingerprint (and so its warm cache) fixed while the package is being edited.
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

from bench.bench_load import write_section  # noqa: E402

NIGHTS = """
import json, resource, shutil, sys, time
from pathlib import Path
from yimatong.load import load
from yimatong.manifest import Manifest, Output, Reuse
from yimatong.opendata import write_open_data
data, changed, cache, work = (Path(a) for a in sys.argv[1:5])
nights = int(sys.argv[5])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
live, keys, out = None, None, []
for night in range(nights + 2):
    source = data if night < 2 or night % 2 == 1 else changed
    t = time.perf_counter()
    loaded = load(source, cache)
    load_s = time.perf_counter() - t
    staging = work / f"night{night}"
    reuse = Reuse(live, Manifest({p: Output("", k) for p, k in keys.items()}) if keys else None, staging)
    before = rss()
    t, c = time.perf_counter(), cpu()
    s = write_open_data(loaded, staging, live, cache_dir=work / "cache", reuse=reuse)
    out.append({"night": night, "load_s": load_s, "parsed": loaded.parsed, "stage_s": time.perf_counter() - t,
                "cpu_s": cpu() - c, "rss_before_mb": before, "rss_mb": rss(), "records": s.records,
                "encoded": s.encoded, "linked": s.linked, "compressed": s.compressed, "segments": s.segments,
                "downloads": [d.__dict__ for d in s.downloads]})
    print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    if live is not None:
        shutil.rmtree(live)
    live, keys = staging, reuse.keys
print(json.dumps(out))
"""

LEVELS = """
import json, pickle, sys, time, zlib
from pathlib import Path
from yimatong import opendata
folder = Path(sys.argv[1]) / opendata.CACHE
state = pickle.loads((folder / "state.pickle").read_bytes())  # whatever code wrote it
out = {}
for level in (1, 6, 9):
    size = seconds = plain_total = 0
    for st in state.streams.values():
        with (folder / st.file).open("rb") as f:
            for seg in st.segments[::10]:
                f.seek(st.start + seg[3])
                plain = zlib.decompressobj(-15).decompress(f.read(seg[4]))
                t = time.process_time()
                size += len(opendata.compress_segment(plain, level))
                seconds += time.process_time() - t
                plain_total += len(plain)
    out[level] = {"bytes": size, "cpu_s": seconds, "plain": plain_total}
print(json.dumps(out))
"""


def changed_copy(data: Path, target: Path, share: float) -> int:
    """A hard-linked copy of `data` with every 1/share-th enterprise file replaced by a new file."""
    marker = target / "CHANGED"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-al", str(data), str(target)], check=True)
    files = sorted((target / "enterprises").glob("*.yaml"))
    step = max(1, round(1 / share))
    for path in files[::step]:
        new = path.with_suffix(".new")
        new.write_bytes(path.read_bytes() + b"# changed for the benchmark\n")
        new.replace(path)  # a new file: the hard-linked original is untouched
    marker.write_text(str(len(files[::step])))
    return len(files[::step])


def run(script: str, args: list[str], code: Path) -> object:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, stdout=subprocess.PIPE, text=True, cwd=code, env=env
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="the generated data set to use (default 100000)")
    ap.add_argument("--changed", type=float, default=0.01, help="share of files changed per night (default 0.01)")
    ap.add_argument("--nights", type=int, default=3, help="how many nights with changed files (default 3)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--code", type=Path, default=ROOT, help="where the yimatong package is imported from")
    ap.add_argument("--levels", action="store_true", help="also measure zlib levels 1, 6, 9")
    args = ap.parse_args()

    data = args.work / f"data-{args.n}"
    if not (data / "site.yaml").exists():
        subprocess.run(
            [sys.executable, "build.py", "generate", str(args.n), "--seed", str(args.seed), "--out", str(data)],
            check=True,
            cwd=ROOT,
        )
    changed = args.work / f"data-{args.n}-changed"
    n_changed = changed_copy(data, changed, args.changed)
    cache = args.work / f"cache-opendata-{args.n}"
    work = args.work / f"opendata-{args.n}"
    t = time.perf_counter()
    nights = run(NIGHTS, [str(data), str(changed), str(cache), str(work), str(args.nights)], args.code.resolve())
    print(f"nights: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    levels = run(LEVELS, [str(work / "cache")], args.code.resolve()) if args.levels else None

    cold, same, *rest = nights
    med = statistics.median
    lines = [
        "<!-- opendata:start -->",
        f"## Open data: the stage at {args.n:,} generated enterprises, cold and nightly, {os.cpu_count()} cores",
        "",
        f"`.venv/bin/python bench/bench_opendata.py --n {args.n} --changed {args.changed} --nights {args.nights}"
        f"{' --levels' if args.levels else ''}` (docstring: what is measured). {n_changed:,} files"
        f" ({args.changed:.0%}) differ between the data set and its changed copy; each changed night is one such"
        " change from the night before. The machine is shared (other jobs ran): CPU time (the stage's process"
        " and its encoding workers) is the steadier figure.",
        "",
        "| night | stage (wall) | CPU | encoded | data.json linked | segments compressed | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(label: str, r: dict) -> str:
        return (
            f"| {label} | {r['stage_s']:.1f} s | {r['cpu_s']:.1f} s | {r['encoded']:,} | {r['linked']:,} |"
            f" {r['compressed']:,} of {r['segments']:,} | {r['rss_mb']:,.0f} MB |"
        )

    lines += [row("cold (empty cache)", cold), row("nothing changed", same)]
    lines += [row(f"{args.changed:.0%} changed ({i + 1})", r) for i, r in enumerate(rest)]
    if rest:
        lines += [
            "",
            f"Median of the {len(rest)} changed nights: stage **{med(r['stage_s'] for r in rest):.1f} s** wall,"
            f" {med(r['cpu_s'] for r in rest):.1f} s CPU (loading the records, not part of the stage:"
            f" {med(r['load_s'] for r in rest):.1f} s with {med(r['parsed'] for r in rest):,.0f} files parsed).",
        ]
    if levels:
        lines += ["", "zlib level, on every 10th segment of every file (sizes and CPU scaled ×10):", ""]
        lines += ["| level | zip bytes (all files) | CPU to compress everything |", "|---|---|---|"]
        for level, m in levels.items():
            lines.append(f"| {level} | {m['bytes'] * 10 / 1e6:,.0f} MB | {m['cpu_s'] * 10:.0f} s |")
    lines += ["", f"Downloads for {cold['records']:,} enterprises (zip size; rows):", ""]
    lines += ["| file | rows | zip | uncompressed |", "|---|---|---|---|"]
    for d in cold["downloads"]:
        lines.append(
            f"| `{d['name']}` | {d['rows']:,} | {d['bytes'] / 1e6:,.1f} MB | {d['uncompressed_bytes'] / 1e6:,.1f} MB |"
        )
    total = sum(d["bytes"] for d in cold["downloads"])
    lines += [
        "",
        f"Total {total / 1e6:,.0f} MB; the monthly archive links them (no copies).",
        "<!-- opendata:end -->",
    ]
    write_section(ROOT / "bench" / "RESULTS.md", "opendata", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
