"""Signs benchmark: signs per second, lone vs. batched, where the time goes, and the cache.

Run by hand (never in CI):  .venv/bin/python bench/bench_signs.py [--data data] [--runs 3]
Results go to bench/RESULTS.md (the section between the 'signs' markers is replaced).

A "sign" here is one sign rendered in both variants (trim and print PDF). Each figure is the best
of `--runs` runs, as CPU time (what the work costs, and what other jobs on a shared machine disturb
least) and as wall time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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


if __name__ == "__main__":
    main()
