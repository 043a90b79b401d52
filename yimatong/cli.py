"""The command line: parse options, call one function, print results. No build logic here."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from .errors import Problem, YimatongError
from .load import ConfigInvalid, Loaded, load
from .pipeline import BuildResult, Options, VerificationFailed, build

COMMANDS = ("build", "nightly", "deploy", "check", "generate", "docs")

DESCRIPTION = """\
yimatong (一码通): builds the public environmental-disclosure site of every pollution-permit
holder from the departments' exported YAML.

With no command, builds the sample data in data/ into public/."""

EPILOG = """\
commands:
  build      validate the data and build the site into --out (staged, verified, then swapped in whole)
  nightly    what cron runs: check, build, verify, publish, then deploy when --bucket is given;
             writes a JSON run report beside the output (<out>.report.json)
  deploy     sync --out to an S3-compatible bucket: changed files only, assets before pages,
             deletes last
  check      validate the data only; print every problem as a table; exit 1 if a record is rejected
  generate   write N realistic generated enterprises into a new data directory (for benchmarks)
  docs       rewrite content/export-format.md from the model (the exporter documentation)

exit status: 0 ok; 1 records rejected (check, or build --strict), or verification or upload failed
(nothing published); 2 unusable input or usage error."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python build.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data", type=Path, default=Path("data"), metavar="DIR", help="the export to read (default: data/)"
    )
    common.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache"),
        metavar="DIR",
        help="parsed records, by content hash, so unchanged files are not parsed again (default: .cache/)",
    )
    common.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    building = argparse.ArgumentParser(add_help=False)
    building.add_argument(
        "--out", type=Path, default=Path("public"), metavar="DIR", help="output directory (default: public/)"
    )
    building.add_argument(
        "--full", action="store_true", help="render every output again instead of keeping unchanged ones"
    )
    building.add_argument("--no-signs", action="store_true", help="leave the signs out (faster; for previews)")
    building.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even if permits disappeared or the site lost more than 5%% of its pages",
    )
    building.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core)")

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--bucket", metavar="NAME", help="S3 bucket of the CDN origin")
    remote.add_argument("--endpoint", metavar="URL", help="S3 endpoint URL (default: AWS)")
    remote.add_argument("--dry-run", action="store_true", help="print what would be uploaded and deleted, do nothing")
    remote.add_argument(
        "--purge-list", type=Path, metavar="FILE", help="write the changed URLs here (default: <out>.purge.txt)"
    )

    b = sub.add_parser(
        "build",
        parents=[common, building],
        help="build the site",
        description="Validate the data and build the site.",
    )
    b.add_argument(
        "--strict", action="store_true", help="exit 1 when any record was rejected (the site is still built)"
    )
    sub.add_parser(
        "nightly",
        parents=[common, building, remote],
        help="check, build, verify, publish (and deploy)",
        description=(
            "The nightly run: check → build → verify → publish, then deploy to the bucket when --bucket is "
            "given. Prints a run report and writes it as JSON beside the output (<out>.report.json). Exits "
            "non-zero and publishes nothing when verification fails."
        ),
    )
    d = sub.add_parser(
        "deploy",
        parents=[remote],
        help="upload the output to the CDN origin",
        description="Sync the built output to an S3-compatible bucket (credentials: the AWS_* variables).",
    )
    d.add_argument("--out", type=Path, default=Path("public"), metavar="DIR", help="the built site (default: public/)")
    d.add_argument("--data", type=Path, default=Path("data"), metavar="DIR", help="for site.yaml's base_url")
    d.add_argument("--workers", type=int, default=8, metavar="N", help="uploads in flight (default: 8)")
    d.add_argument("--full-listing", action="store_true", help="list the bucket instead of trusting its state object")
    d.add_argument(
        "--keep-replaced",
        type=float,
        default=6 * 3600,
        metavar="SECONDS",
        help="keep replaced content-addressed files (search index) this long (default: 21600; 0 for a takedown)",
    )
    d.add_argument("--quiet", "-q", action="store_true", help="print the summary only")

    c = sub.add_parser(
        "check", parents=[common], help="validate only", description="Validate the data and list every problem."
    )
    c.add_argument("--no-warnings", action="store_true", help="list errors only")

    g = sub.add_parser(
        "generate",
        help="generate a large data directory",
        description="Write N realistic enterprises (deterministic for a seed) into a new data directory.",
    )
    g.add_argument("n", type=int, help="how many enterprises (up to 200000)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    g.add_argument("--out", type=Path, required=True, metavar="DIR", help="the data directory to write")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    sub.add_parser(
        "docs", help="rewrite content/export-format.md", description="Rewrite content/export-format.md from the model."
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "build")
    args = parser().parse_args(args_list)
    try:
        commands = {"build": _build, "nightly": _nightly, "deploy": _deploy, "check": _check}
        return {**commands, "generate": _generate, "docs": _docs}[args.command](args)
    except ConfigInvalid as err:
        print(f"错误：{err}", file=sys.stderr)
        print(table(err.problems), file=sys.stderr)
        return 2
    except YimatongError as err:
        print(f"错误：{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _progress(quiet: bool):
    if quiet:
        return None
    tty = sys.stderr.isatty()
    last: dict[str, int] = {}

    def show(stage: str, done: int, total: int) -> None:
        if tty:
            end = "\n" if done >= total else ""
            print(f"\r{stage} {done}/{total}", end=end, file=sys.stderr, flush=True)
        else:  # a log file: one line per tenth
            step = max(1, total // 10)
            if done >= total or done // step != last.get(stage, -1):
                last[stage] = done // step
                print(f"{stage} {done}/{total}", file=sys.stderr, flush=True)

    return show


def _options(args: argparse.Namespace) -> Options:
    return Options(full=args.full, signs=not args.no_signs, allow_shrink=args.allow_shrink, workers=args.workers)


def _build(args: argparse.Namespace) -> int:
    try:
        result = build(args.data, args.out, args.cache, progress=_progress(args.quiet), options=_options(args))
    except VerificationFailed as err:
        _print_build(args, err.result)
        print(f"错误：{err}", file=sys.stderr)
        return 1
    _print_build(args, result)
    return 1 if args.strict and result.loaded.rejected else 0


def _print_build(args: argparse.Namespace, result: BuildResult) -> None:
    loaded = result.loaded
    if loaded.problems:
        print(table(loaded.problems), file=sys.stderr)
    if result.problems:
        print("校验发现的问题：", file=sys.stderr)
        print(table(result.problems), file=sys.stderr)
    if args.quiet:
        return
    for permit, why in result.carried.items():
        print(f"{permit}：今晚的数据被拒绝，继续发布 {why['data_date']} 的数据（{why['reason']}）", file=sys.stderr)
    times = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    sg = result.signs
    signs = f"、{sg.written} 个标识牌 PDF（{sg.rendered} 个重新排版，{sg.reused} 个未变）" if sg else ""
    print(
        f"{summary(loaded)}\n{result.pages} 个页面（{result.rendered} 个重新生成）{signs}；"
        f"{len(result.files.changed)} 个文件有变化，{len(result.files.removed)} 个删除 → {args.out}/ （{times}）",
        file=sys.stderr,
    )


def _nightly(args: argparse.Namespace) -> int:
    from .nightly import run

    return run(args, _options(args), progress=_progress(args.quiet), show=lambda r: _print_build(args, r))


def _deploy(args: argparse.Namespace) -> int:
    from .nightly import deploy_out

    if not args.bucket:
        raise YimatongError("请用 --bucket 指定存储桶")
    report = deploy_out(args)
    return 0 if report is not None else 1


def _check(args: argparse.Namespace) -> int:
    show = _progress(args.quiet)
    loaded = load(args.data, args.cache, progress=(lambda d, t: show("读取", d, t)) if show else None)
    problems = [p for p in loaded.problems if not (args.no_warnings and p.severity == "warning")]
    if problems:
        print(table(problems))
    print(summary(loaded))
    return 1 if loaded.rejected else 0


def _generate(args: argparse.Namespace) -> int:
    from .generate import generate

    if not 1 <= args.n <= 200_000:
        raise YimatongError("N 应在 1 到 200000 之间")
    if args.out.exists() and any(args.out.iterdir()):
        raise YimatongError(f"{args.out} 已存在且不为空；请指定新目录")
    show = _progress(args.quiet)
    generate(args.n, args.seed, args.out, progress=(lambda d, t: show("生成", d, t)) if show else None)
    if not args.quiet:
        print(f"已生成 {args.n} 家企业 → {args.out}/", file=sys.stderr)
    return 0


def _docs(args: argparse.Namespace) -> int:
    from .docs import export_format_markdown
    from .pages import CONTENT

    target = CONTENT / "export-format.md"
    target.write_text(export_format_markdown(), encoding="utf-8")
    print(f"已更新 {target}", file=sys.stderr)
    return 0


def summary(loaded: Loaded) -> str:
    errors = sum(p.severity == "error" for p in loaded.problems)
    warnings = len(loaded.problems) - errors
    cached = loaded.files - loaded.parsed
    return (
        f"读取 {loaded.files} 个企业文件（{loaded.parsed} 个重新解析，{cached} 个来自缓存）："
        f"{len(loaded.entries)} 个通过，{len(loaded.rejected)} 个被拒绝；{errors} 个错误，{warnings} 个警告"
    )


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def table(problems: list[Problem]) -> str:
    """Problems as an aligned table (CJK characters count double)."""
    head = ("级别", "文件", "行", "字段", "问题")
    rows = [
        ("错误" if p.severity == "error" else "警告", p.file, str(p.line or ""), p.field or "-", p.message)
        for p in problems
    ]
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = ["  ".join(_pad(c, w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in [head, *rows]]
    lines.insert(1, "-" * min(120, sum(widths) + 8 + max(_width(r[4]) for r in [head, *rows])))
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
