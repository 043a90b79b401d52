"""Signs benchmark: signs per second, lone vs. batched, where the time goes, and the cache.

Run by hand (never in CI):  .venv/bin/python bench/bench_signs.py [--data data] [--runs 3]
Results go to bench/RESULTS.md (the section between the 'signs' markers is replaced).

At scale:  .venv/bin/python bench/bench_signs.py --nightly 10000 [--cold | --seeded]
the stage cold, then nights with nothing / 1 % of addresses / 1 % of names changed, each in its own
process over the previous night's output (section 'signs-nightly-10000'; `--report 10000` rewrites
it from bench/out/signs-10000/results.json).

A "sign" here is one sign rendered in both variants (trim and print PDF). Each figure is the best
of `--runs` runs, as CPU time (what the work costs, and what other jobs on a shared machine disturb
least) and as wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import write_section  # noqa: E402
from yimatong import signs  # noqa: E402
from yimatong.load import load  # noqa: E402


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # this process and the worker processes it waited for

    def per(self, n: int) -> Timing:
        return Timing(self.wall / n, self.cpu / n)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best(runs: int, fn: Callable[[], object]) -> Timing:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu() - cpu)
    return Timing(min(walls), min(cpus))


def note(text: str) -> None:
    print(text, file=sys.stderr)


class SystemFontRenderer(signs.Renderer):
    """The same signs set in the installed Noto Sans CJK SC Black instead of the prepared face:
    what the prepared face saves."""

    def html(self, layouts: Sequence[signs.SignLayout]) -> str:
        return super().html(layouts).replace(f'font-family: "{signs.FONT_FAMILY}", ', "font-family: ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=signs.BATCH_SIZE)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-signs-"))
    try:
        lines = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_section(ROOT / "bench" / "RESULTS.md", "signs", "\n".join(lines))
    print("\n".join(lines))


def ms(t: float) -> str:
    return f"{t * 1000:.0f}"


def run(args: argparse.Namespace, work: Path) -> list[str]:
    runs = args.runs
    load_before = os.getloadavg()[0]
    cache = work / "cache"
    loaded = load(args.data, cache)
    contents = [c for p in signs.plan(loaded) for c in p.contents]
    t = time.perf_counter()
    font = signs.prepare_font(cache)
    prepare_s = time.perf_counter() - t
    sample = contents[: args.batch]  # one batch's worth, mixed formats as in the data
    n = len(sample)

    # 1. Lone signs vs. batches.
    naive = best(runs, lambda: [SystemFontRenderer(font).render([c]) for c in sample[:10]]).per(min(10, n))
    note(f"lone, fresh set-up, system face: {ms(naive.cpu)} ms/sign")
    lone_cold = best(runs, lambda: [signs.Renderer(font).render([c]) for c in sample[:10]]).per(min(10, n))
    note(f"lone, fresh set-up: {ms(lone_cold.cpu)} ms/sign")
    shared = signs.Renderer(font)
    shared.render(sample[:2])  # fonts loaded once
    lone = best(runs, lambda: [shared.render([c]) for c in sample]).per(n)
    note(f"lone, shared set-up: {ms(lone.cpu)} ms/sign")
    batch = best(runs, lambda: shared.render(sample)).per(n)
    note(f"batch of {n}: {ms(batch.cpu)} ms/sign")
    sizes = {}
    for size in (1, 5, 10, 20, 40, 80):
        chunk = (contents * 2)[:size]
        sizes[size] = best(runs, lambda chunk=chunk: shared.render(chunk)).per(size)
    note("batch sizes: " + ", ".join(f"{k}: {ms(v.cpu)} ms" for k, v in sizes.items()))

    # 2. Where a batched sign's time goes.
    t_layout = best(runs, lambda: [signs.layout(c, shared.measure) for c in sample]).per(n)
    layouts = [signs.layout(c, shared.measure) for c in sample]
    t_weasy = best(runs, lambda: shared.pages(layouts)).per(n)
    raws = shared.pages(layouts)
    t_finish = best(runs, lambda: [signs.finish(r, s) for r, s in zip(raws, layouts, strict=True)]).per(n)

    # 3. What the prepared face saves.
    system = SystemFontRenderer(font)
    system.render(sample[:2])
    t_system = best(runs, lambda: system.render(sample)).per(n)
    kb_system = statistics.mean(len(t) for t, _ in system.render(sample)) / 1024
    kb_prepared = statistics.mean(len(t) for t, _ in shared.render(sample)) / 1024

    # 4. The stage on the whole data set: cold (1 and all processes), then warm (all cached).
    def stage_run(workers: int, cold: bool) -> signs.SignStats:
        if cold:
            shutil.rmtree(cache / "signs" / "pdf", ignore_errors=True)
            shutil.rmtree(cache / "signs" / "batch", ignore_errors=True)
        shutil.rmtree(work / "out", ignore_errors=True)
        signs.PARALLEL_FROM = 0  # the pool whenever workers > 1, to measure it on the sample
        return signs.render_signs(loaded, work / "out", cache, workers=workers)

    cores = os.cpu_count() or 1
    stage: dict[str, tuple[Timing, signs.SignStats]] = {}
    for label, workers, cold in (
        ("cold, 1 process", 1, True),
        (f"cold, {cores} worker processes", cores, True),
        ("warm (nothing changed)", 1, False),
    ):
        found: list[signs.SignStats] = []
        timing = best(max(1, runs - 1) if cold else runs, lambda w=workers, c=cold, f=found: f.append(stage_run(w, c)))
        stage[label] = (timing, found[-1])
        note(f"stage {label}: {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU")
    files = list((work / "out").rglob("*.pdf"))
    site_mb = sum(f.stat().st_size for f in files) / 1e6

    total = len(contents)
    lines = [
        "<!-- signs:start -->",
        f"## Signs: {total} signs of the sample ({len(loaded.entries)} permits), {cores} cores",
        "",
        f"`.venv/bin/python bench/bench_signs.py --runs {runs}`; best of {runs} runs. The machine was shared"
        f" (load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end): CPU time is the"
        " steadier figure, wall time shows what the other jobs took. A sign is one sign in both variants"
        " (trim and print PDF).",
        "",
        "| how | CPU ms per sign | signs/s per core | wall ms per sign |",
        "|---|---|---|---|",
    ]
    for label, timing in (
        ("lone: a fresh WeasyPrint set-up per sign, the system's Noto Sans CJK SC Black", naive),
        ("lone: a fresh WeasyPrint set-up per sign", lone_cold),
        ("lone: one document per sign, fonts loaded once", lone),
        (f"**batch: {n} signs as pages of one document (the stage)**", batch),
        ("batch, but the system's Noto Sans CJK SC Black instead of the prepared face", t_system),
    ):
        lines.append(f"| {label} | {ms(timing.cpu)} | {1 / timing.cpu:.0f} | {ms(timing.wall)} |")
    lines += [
        "",
        "Batch size (CPU ms per sign): " + ", ".join(f"{k}: {ms(v.cpu)}" for k, v in sizes.items()) + ".",
        "",
        f"Where a batched sign's {ms(batch.cpu)} ms go (CPU): line fitting and QR code {t_layout.cpu * 1000:.1f} ms;"
        f" WeasyPrint (layout of the batch, then one PDF per page) {t_weasy.cpu * 1000:.1f} ms; pypdf (exact boxes,"
        f" metadata, /ID, and the trim variant derived from the print one) {t_finish.cpu * 1000:.1f} ms for both."
        f" Rendering the trim variant in WeasyPrint as well would cost another ~{ms(t_weasy.cpu)} ms a sign, so the"
        " stage derives it with pypdf.",
        "",
        f"Size per PDF: {kb_prepared:.0f} kB with the prepared face, {kb_system:.0f} kB with the system's face"
        " (WeasyPrint keeps glyph ids; the 65,000-glyph CFF face then carries ~140 kB of empty glyph slots into"
        f" every file). Preparing the face, once per cache: {prepare_s:.1f} s.",
        "",
        "| the stage on the sample | wall | CPU (incl. workers) | rendered | from cache | files written |",
        "|---|---|---|---|---|---|",
    ]
    for label, (timing, stats) in stage.items():
        lines.append(
            f"| {label} | {timing.wall:.1f} s | {timing.cpu:.1f} s | {stats.rendered} | {stats.reused}"
            f" | {stats.written} |"
        )
    lines += [
        "",
        f"The published signs take {site_mb:.1f} MB ({len(files)} PDFs, the city batches included).",
        "<!-- signs:end -->",
    ]
    return lines


# --- the nightly at scale: one stage run per process (peak RSS per run) ----------------------------


def phase(data: Path, cache: Path, out: Path, live: Path | None) -> dict[str, object]:
    """One sign stage, as the nightly build runs it: load (from the record cache), then the signs
    into `out` with a Reuse over `live`; writes out's manifest for the next night."""
    import resource

    from yimatong.manifest import Manifest, Reuse, catalog

    t0 = time.perf_counter()
    loaded = load(data, cache)
    t1, cpu1 = time.perf_counter(), _cpu()
    previous = Manifest.read(live) if live else None
    reuse = Reuse(live, previous, out)
    stats = signs.render_signs(loaded, out, cache, reuse=reuse)
    t2, cpu2 = time.perf_counter(), _cpu()
    note(f"stage: {t2 - t1:.1f} s wall, {cpu2 - cpu1:.1f} s CPU; {stats.rendered} rendered, {stats.linked} linked")
    files = catalog(out, live, previous, reuse.keys, reuse.dates)
    Manifest(files.outputs, {}, loaded.site.as_of.isoformat()).write(out)
    t3 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stats_out = {k: v for k, v in dataclasses.asdict(stats).items() if k != "qr_urls"}
    return {
        "load_s": round(t1 - t0, 1),
        "signs_s": round(t2 - t1, 1),
        "signs_cpu_s": round(cpu2 - cpu1, 1),
        "catalog_s": round(t3 - t2, 1),
        "peak_rss_mb": round(rss),
        "peak_rss_worker_mb": round(rss_children),
        "qr_urls": len(stats.qr_urls),
        "permits": len(loaded.entries),
        "changed_files": len(files.changed),
        **stats_out,
    }


def _changed_copy(data: Path, target: Path, every: int, field: str, suffix: str) -> int:
    """`cp -al` of the export, then every `every`-th enterprise file rewritten as a new file (never
    in place: the copy shares its inodes with the original) with `suffix` added to its first
    `field:` line (the enterprise's name or address). Returns how many files changed."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-al", str(data), str(target)], check=True)
    files = sorted((target / "enterprises").glob("*.yaml"))[::every]
    for path in files:
        text = path.read_text(encoding="utf-8")
        head, sep, rest = text.partition(f"\n  {field}: ")
        line, nl, tail = rest.partition("\n")
        new = path.with_suffix(".new")
        new.write_text(head + sep + line + suffix + nl + tail, encoding="utf-8")
        new.replace(path)
    return len(files)


def _run_phase(data: Path, cache: Path, out: Path, live: Path | None) -> dict[str, object]:
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, __file__, "phase", str(data), str(cache), str(out), *([str(live)] if live else [])]
    wall = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    (out.parent / f"{out.name}.log").write_text(done.stderr)
    done.check_returncode()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - wall, 1)
    note(f"{out.name}: {result}")
    return result


def seed_cache(
    data: Path, cache: Path, models_from: tuple[Path, Path] | None = None, links: int = 0
) -> dict[str, object]:
    """Fill the sign cache without rendering: every sign not yet rendered gets a copy of a real
    sign of its format (same size and structure; only what it shows differs). For the nightly runs
    on a machine too busy to render 30,000 signs in time: what a night costs does not depend on
    what the cached PDFs show; the cold render is 34 ms CPU a sign (the table above).

    `models_from` (data, cache): take the real signs from another build's cache (bench/out/signs-1000).
    `links`: hard-link each model file into at most this many cache entries (a fresh copy of the model
    starts the next run of links) instead of copying every one: 100,000 permits' ~1.1 million cache
    files cost no disk. Keep it well under ext4's 65,000 links a file: the published trees link them again."""
    loaded = load(data, cache)
    font = signs.prepare_font(cache)
    renderer = signs.renderer_version(font)
    rows, _ = signs._plan_all(loaded, {}, renderer)
    cache_files = signs.SignCache(cache)
    models: dict[str, tuple[Path, Path]] = {}
    if models_from is not None:
        model_data, model_cache = models_from
        model_rows, _ = signs._plan_all(load(model_data, model_cache), {}, renderer)
        model_files = signs.SignCache(model_cache)
        for row in model_rows.values():
            for fields, key in zip(row.contents, row.keys, strict=True):
                if model_files.has(key):
                    models.setdefault(signs.SignContent(*fields).format, model_files.paths(key))
    missing: list[tuple[str, str]] = []
    for row in rows.values():
        for fields, key in zip(row.contents, row.keys, strict=True):
            fmt = signs.SignContent(*fields).format
            if cache_files.has(key):
                models.setdefault(fmt, cache_files.paths(key))
            else:
                missing.append((fmt, key))
    pool = cache_files.root / "seed-models"
    used: dict[str, int] = {}
    heads: dict[str, tuple[Path, ...]] = {}
    for fmt, key in missing:
        if links and used.get(fmt, links) >= links:  # a fresh copy of the model for the next run of links
            k = sum(1 for _ in pool.glob(f"{fmt}-*")) if pool.exists() else 0
            heads[fmt] = tuple(pool / f"{fmt}-{k}" / s.name for s in models[fmt])
            for source, copy in zip(models[fmt], heads[fmt], strict=True):
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
            used[fmt] = 0
        for source, target in zip(heads[fmt] if links else models[fmt], cache_files.paths(key), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            if links:
                target.unlink(missing_ok=True)
                os.link(source, target)
            else:
                shutil.copyfile(source, target)
        used[fmt] = used.get(fmt, 0) + 1
    return {"rendered": sum(len(r.keys) for r in rows.values()) - len(missing), "seeded": len(missing)}


def nightly(n: int, cold: bool, seeded: bool = False) -> None:
    """The sign stage at scale: cold, then nights with nothing, 1 % of records' addresses, 1 % of
    names changed (each night's output is the next night's live build)."""
    data = ROOT / "bench" / "out" / f"data-{n}"
    if not data.exists():
        generate = [sys.executable, str(ROOT / "build.py"), "generate", str(n), "--seed", "11", "--out", str(data)]
        subprocess.run(generate, check=True)
    base = ROOT / "bench" / "out" / f"signs-{n}"
    cache = base / "cache"
    results_file = base / "results.json"
    results: dict[str, dict[str, object]] = json.loads(results_file.read_text()) if results_file.exists() else {}
    load_before = os.getloadavg()[0]
    if seeded:
        for built in ("batch", "plan-*.pickle"):  # a first build: no volumes, no plan yet
            for path in (cache / "signs").glob(built):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        results["seed"] = seed_cache(data, cache)
        note(f"seeded: {results['seed']}")
        results["cold"] = _run_phase(data, cache, base / "out-cold", None)
    elif cold or "cold" not in results:
        shutil.rmtree(cache / "signs", ignore_errors=True)
        results["cold"] = _run_phase(data, cache, base / "out-cold", None)
        results.pop("seed", None)
    every = 100  # 1 %
    address = base / "data-address"
    rename = base / "data-rename"
    changed = _changed_copy(data, address, every, "address", "（新址）")
    _changed_copy(data, rename, every, "name", "新厂")
    results["nothing"] = _run_phase(data, cache, base / "out-nothing", base / "out-cold")
    results["address"] = _run_phase(address, cache, base / "out-address", base / "out-nothing")
    results["rename"] = _run_phase(rename, cache, base / "out-rename", base / "out-address")
    results["changed"] = {"files": changed, "load_before": load_before, "load_after": os.getloadavg()[0]}
    results_file.write_text(json.dumps(results, indent=1))
    report(n)


def report(n: int) -> None:
    """bench/RESULTS.md's section for the runs at `n` (from bench/out/signs-<n>/results.json)."""
    results = json.loads((ROOT / "bench" / "out" / f"signs-{n}" / "results.json").read_text())
    lines = _nightly_lines(n, results)
    write_section(ROOT / "bench" / "RESULTS.md", f"signs-nightly-{n}", "\n".join(lines))
    print("\n".join(lines))


def _nightly_lines(n: int, results: dict[str, dict[str, Any]]) -> list[str]:
    cold = results["cold"]
    changed = results["changed"]["files"]
    lines = [
        f"<!-- signs-nightly-{n}:start -->",
        f"## Signs, nightly at scale: {n:,} generated enterprises ({cold['permits']:,} permits,"
        f" {cold['rendered'] + cold['reused']:,} signs), 2 cores",
        "",
        f"`.venv/bin/python bench/bench_signs.py --nightly {n}`: each run is the sign stage in its own process"
        " (load from the record cache, then `render_signs` with a `Reuse` over the previous run's output, then"
        " `manifest.catalog`), one run each. The machine was shared by other jobs (load average"
        f" {results['changed']['load_before']:.1f} at the start, {results['changed']['load_after']:.1f} at the end):"
        " wall times are inflated, CPU is the steadier figure.",
        "",
        "| run | stage wall | stage CPU | peak RSS (main / a worker) | planned | rendered | volumes merged"
        " | files linked from live / written | catalog |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    seed = results.get("seed")
    labels = {
        "cold": (
            f"first build: sign cache warm ({seed['rendered']:,} signs rendered, {seed['seeded']:,} copies of real"
            " signs), no live build"
            if seed
            else "cold: empty sign cache, no live build"
        ),
        "nothing": "warm, nothing changed",
        "address": f"warm, 1 % changed ({changed} addresses: not on a sign)",
        "rename": f"warm, 1 % renamed ({changed} names: their signs change)",
    }
    for key, label in labels.items():
        r = results[key]
        lines.append(
            f"| {label} | {r['signs_s']} s | {r['signs_cpu_s']} s | {r['peak_rss_mb']} / {r['peak_rss_worker_mb']} MB"
            f" | {r['planned']} | {r['rendered']} | {r['volumes']} | {r['linked']} / {r['written']}"
            f" | {r['catalog_s']} s |"
        )
    if results.get("notes"):
        lines += ["", results["notes"]]
    lines.append(f"<!-- signs-nightly-{n}:end -->")
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        report(int(sys.argv[2]))
    elif sys.argv[1:2] == ["--nightly"]:
        nightly(int(sys.argv[2]), "--cold" in sys.argv, "--seeded" in sys.argv)
    elif sys.argv[1:2] == ["phase"]:
        import json

        data_dir, cache_dir, out_dir = (Path(a) for a in sys.argv[2:5])
        live_dir = Path(sys.argv[5]) if len(sys.argv) > 5 else None
        print(json.dumps(phase(data_dir, cache_dir, out_dir, live_dir)))
    else:
        main()
