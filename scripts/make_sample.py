"""Regenerate the committed sample in data/, byte for byte: `.venv/bin/python scripts/make_sample.py`.

The sample is `generate(60, seed=2026)` as of 2026-11-20; tests/test_generate.py fails when data/
drifts from it, so change the generator, then run this and commit both.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so that it also runs from a checkout where yimatong is not installed

from yimatong.generate import SAMPLE_N, SAMPLE_SEED, generate  # noqa: E402

if __name__ == "__main__":
    generate(SAMPLE_N, SAMPLE_SEED, ROOT / "data")
    print(f"wrote {SAMPLE_N} enterprises to {ROOT / 'data'}")
