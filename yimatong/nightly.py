"""The nightly run an operator schedules: check → build → verify → publish → deploy, and a report.

The report is printed and written as JSON beside the output (`<out>.report.json`), whether the
night published or not, so monitoring can read one file.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from . import heap, publish
from .errors import YimatongError
from .manifest import Catalog, bundled_count, plain_files
from .pipeline import BuildResult, Options, Progress, VerificationFailed, build, tidy


def report_path(out: Path) -> Path:
    out = out.resolve()
    return out.with_name(out.name + ".report.json")


def run(
    args: argparse.Namespace, options: Options, progress: Progress | None, show: Callable[[BuildResult], None]
) -> int:
    started = time.perf_counter()
    with publish.exclusive(args.out), heap.batch():  # the build and the deploy: one run
        return _run(args, options, progress, show, started)


def _run(
    args: argparse.Namespace,
    options: Options,
    progress: Progress | None,
    show: Callable[[BuildResult], None],
    started: float,
) -> int:
    try:
        result = build(args.data, args.out, args.cache, progress=progress, options=options, keep_old=True)
    except VerificationFailed as err:
        show(err.result)
        write_report(args.out, err.result, None, time.perf_counter() - started)
        print(f"错误：{err}", flush=True)
        return 1
    show(result)
    uploaded = None
    status = 0
    if args.bucket:
        t = time.perf_counter()
        # Tonight's hashes, from the build just published under the same lock: deploy reads no file.
        # Bundles (a permit's sign PDFs) stay folded: deploy compares each as one entry.
        files = result.files
        uploaded = deploy_out(args, plain_files(files.outputs), files.bundles)
        result.seconds["deploy"] = round(time.perf_counter() - t, 3)
        status = 0 if uploaded is not None else 1
    t = time.perf_counter()
    tidy(result, args.out)
    result.seconds["tidy"] = round(time.perf_counter() - t, 3)
    write_report(args.out, result, uploaded, time.perf_counter() - started)
    return status


def deploy_out(
    args: argparse.Namespace, built: Mapping[str, str] | None = None, bundles: Mapping[str, str] | None = None
) -> Any | None:
    """Deploy the live output; None when the upload failed (nothing was deleted then)."""
    from .load import site_settings

    site = site_settings(args.data)
    with publish.exclusive(args.out):
        return _deploy(args, site.base_url, built, bundles)


def _deploy(
    args: argparse.Namespace,
    base_url: str,
    built: Mapping[str, str] | None = None,
    bundles: Mapping[str, str] | None = None,
) -> Any | None:
    from . import deploy

    quiet = getattr(args, "quiet", False) and not args.dry_run
    try:
        done = deploy.deploy(
            args.out.resolve(),
            args.bucket,
            args.endpoint,
            base_url=base_url,
            dry_run=args.dry_run,
            purge_list=args.purge_list,
            workers=getattr(args, "workers", None) or 8,
            full_listing=getattr(args, "full_listing", False),
            keep_replaced=getattr(args, "keep_replaced", deploy.KEEP_REPLACED),
            log=(lambda _m: None) if quiet else print,
            built=built,
            bundles=bundles,
        )
    except deploy.DeployError as err:
        print(f"错误：上传失败：{err}", flush=True)
        return None
    print(done.summary(), flush=True)
    return done


def report(result: BuildResult, uploaded: Any | None, seconds: float) -> dict[str, Any]:
    loaded = result.loaded
    sg = result.signs
    return {
        "as_of": loaded.site.as_of.isoformat(),
        "published": result.published,
        "records": {
            "files": loaded.files,
            "parsed": loaded.parsed,
            "from_cache": loaded.files - loaded.parsed,
            "published": len(loaded.entries),
            "rejected": [
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in loaded.problems
                if p.severity == "error"
            ],
            "warnings": sum(p.severity == "warning" for p in loaded.problems),
            "kept_last_good": result.carried,
        },
        "pages": {"total": result.pages, "rendered": result.rendered, "unchanged": result.pages - result.rendered},
        "signs": None if sg is None else {"written": sg.written, "rendered": sg.rendered, "unchanged": sg.reused},
        "files": {
            "total": file_count(result.files),
            "changed": len(result.files.changed),
            "removed": len(result.files.removed),
        },
        "verification": [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in result.problems
        ],
        "upload": _plain(uploaded),
        "seconds": {**result.seconds, "total": round(seconds, 3)},
    }


def file_count(files: Catalog) -> int:
    """Files, a bundle's each (its entry is one of the outputs): without unpacking a bundle."""
    return len(files.outputs) - len(files.bundles) + bundled_count(files.bundles)


def write_report(out: Path, result: BuildResult, uploaded: Any | None, seconds: float) -> Path:
    path = report_path(out)
    text = json.dumps(report(result, uploaded, seconds), ensure_ascii=False, indent=2, sort_keys=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _plain(obj: Any) -> Any:
    if obj is None:
        return None
    if is_dataclass(obj) and not isinstance(obj, type):
        keep = ("uploaded", "unchanged", "deleted", "kept", "bytes", "seconds", "purge_list", "dry_run")
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(obj).items() if k in keep}
    raise YimatongError(f"unexpected upload report {obj!r}")
