#!/bin/bash
# The 100,000-permit output with signs that bench_night.py --signs runs on, rebuilt from nothing
# (bench/out does not outlive the machine). Run by hand from the project root, never in CI:
#     bash bench/setup_signs_100k.sh
# About 40 minutes on 2 cores (2026-12-07): the export generated (2 min), the sample's signs
# rendered as models (1 min), a cold signs-excluded build and its 1 % rename night (bench_nightly.py,
# ~22 min), the sign cache seeded with hard links of the models (bench_signs.seed_cache, ~4 min: no
# sign rendered), then a first nightly with signs (~6.5 min: every sign linked, 535,364 pages
# merged into the county volumes' pieces). bench_nightly.py leaves 1 % of the files renamed; they
# become the baseline of bench/out/data-N, so the first `bench_night.py --change data` is a data
# night, not a night that renames 1,000 holders back.
set -euxo pipefail
N=${N:-100000}
PY=${PY:-.venv/bin/python}
OUT=bench/out
mkdir -p $OUT
$PY build.py build --data data --out $OUT/sample-public --cache $OUT/sample-cache --quiet
cp bench/RESULTS.md $OUT/RESULTS.md.before  # bench_nightly.py writes its rows: the setup's are no measurement
cp bench/nightly-results.json $OUT/nightly-results.json.before
$PY bench/bench_nightly.py --n "$N" --only ours-nosigns
cp $OUT/RESULTS.md.before bench/RESULTS.md
cp $OUT/nightly-results.json.before bench/nightly-results.json
BASE=$OUT/nightly/$N
rm -rf "$BASE/ours-signs"
cp -al "$BASE/ours-nosigns" "$BASE/ours-signs"
rm -f "$BASE/ours-signs/public.report.json"
$PY - "$BASE/ours-signs" "$OUT/data-$N" <<'PY'
import os
import shutil
import sys
from pathlib import Path

from bench.bench_signs import seed_cache

work, original = Path(sys.argv[1]), Path(sys.argv[2])
print(seed_cache(work / "data", work / "cache", models_from=(Path("data"), Path("bench/out/sample-cache")), links=10000))
for f in (work / "data" / "enterprises").iterdir():  # the renamed files: the new baseline
    g = original / "enterprises" / f.name
    if os.stat(f).st_ino != os.stat(g).st_ino and f.read_bytes() != g.read_bytes():
        tmp = g.with_suffix(".tmp")
        shutil.copyfile(f, tmp)
        os.replace(tmp, g)  # a new file: the copies hard-linked to the old one keep it
PY
$PY build.py nightly --data "$BASE/ours-signs/data" --out "$BASE/ours-signs/public" --cache "$BASE/ours-signs/cache" --quiet
