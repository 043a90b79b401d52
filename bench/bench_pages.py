"""Page-rendering benchmark: the per-enterprise work of `pages.render` on one core.

For each of the first N enterprises of a generated data set: the enterprise page's context and
template render, then each outlet page's (exactly the loop in `pages.render`, without writing
files). Reports pages per second (enterprise and outlet pages), the split between building the
contexts and rendering the templates, and the cProfile top functions of one more pass.

Run by hand (never in CI):
    .venv/bin/python build.py generate 2000 --seed 7 --out /tmp/pg-2000
    .venv/bin/python bench/bench_pages.py --data /tmp/pg-2000 --n 500 --runs 3
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

from jinja2 import Environment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from yimatong import pages  # noqa: E402
from yimatong.context import enterprise_page, outlet_page  # noqa: E402
from yimatong.load import Loaded, iter_views, load  # noqa: E402


def views(loaded: Loaded, n: int) -> list[tuple[str, dict]]:
    """The first n records' public views, read once so the timed loop does not include the store."""
    out = []
    for entry, view in iter_views(loaded, loaded.entries[:n]):
        out.append((entry.region, view))
    return out


def once(loaded: Loaded, records: list[tuple[str, dict]], env: Environment) -> dict[str, float]:
    """One pass of pages.render's per-enterprise loop; CPU seconds for contexts and for templates.
    The environment is made (and its templates compiled) once, as a render process does."""
    site, place = loaded.site, pages.places(loaded.regions)
    tones = {c.level: c.tone for c in site.credit_scale}
    enterprise_t, outlet_t = env.get_template("enterprise.html"), env.get_template("outlet.html")
    contexts = templates = 0.0
    count = chars = 0
    clock = time.process_time
    for region, view in records:
        t0 = clock()
        page = enterprise_page(view, site, place(region), tones)
        t1 = clock()
        chars += len(enterprise_t.render(page=page))
        t2 = clock()
        contexts += t1 - t0
        templates += t2 - t1
        count += 1
        for outlet in page.outlets:
            t0 = clock()
            sub = outlet_page(view, site, page.place, outlet)
            t1 = clock()
            chars += len(outlet_t.render(page=sub))
            t2 = clock()
            contexts += t1 - t0
            templates += t2 - t1
            count += 1
    total = contexts + templates
    return {"pages": count, "contexts": contexts, "templates": templates, "total": total, "chars": chars}


def profile(loaded: Loaded, records: list[tuple[str, dict]], env: Environment, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    once(loaded, records, env)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/tmp/pg-2000"), help="a generated data directory")
    ap.add_argument("--cache", type=Path, default=None, help="the loader's cache (default: DATA/../<name>-cache)")
    ap.add_argument("--n", type=int, default=500, help="enterprises to render per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=25, help="cProfile rows to print (0: no profile)")
    args = ap.parse_args()
    cache = args.cache or args.data.parent / f"{args.data.name}-cache"
    loaded = load(args.data, cache)
    records = views(loaded, args.n)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t = time.process_time()
    env = pages.environment()
    once(loaded, records[:20], env)  # warm-up: template compilation, imports
    print(f"environment and first 20 enterprises (compiles the templates): {time.process_time() - t:.2f} s CPU")
    results = []
    ms = 1000 / len(records)  # seconds for all → ms per enterprise
    for run in range(args.runs):
        r = once(loaded, records, env)
        results.append(r)
        print(
            f"run {run + 1}: {r['pages']} pages ({len(records)} enterprises) in {r['total']:.2f} s CPU: "
            f"{r['pages'] / r['total']:.0f} pages/s, {ms * r['total']:.1f} ms per enterprise "
            f"(contexts {ms * r['contexts']:.1f}, templates {ms * r['templates']:.1f}), "
            f"{r['chars'] / r['pages'] / 1000:.0f} kchars per page"
        )
    med = statistics.median(r["total"] for r in results)
    pages_n = results[0]["pages"]
    print(
        f"median: {pages_n / med:.0f} pages/s per core, {1000 * med / pages_n:.2f} ms per page, "
        f"{1000 * med / len(records):.1f} ms per enterprise; "
        f"contexts {1000 * statistics.median(r['contexts'] for r in results) / len(records):.1f} ms, "
        f"templates {1000 * statistics.median(r['templates'] for r in results) / len(records):.1f} ms per enterprise"
    )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.top:
        print(profile(loaded, records, env, args.top))


if __name__ == "__main__":
    main()
