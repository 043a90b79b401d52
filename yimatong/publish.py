"""Build into a staging directory beside the output, then swap it in with one atomic rename.

The live output is never written into: a run that dies leaves the previous site as it was.

The staging directory starts as the tree the last swap moved aside (or a killed run's leftover),
not empty: most of its files are hard links shared with the live tree, and a night that keeps them
touches nothing (at 100,000 permits, re-linking 400,000 files into an empty tree and deleting the
old one cost a minute). So no stage ever writes into an existing file, which may be the live
site's: `write_file` and `link_file` replace the directory entry (a new file, then rename), and
`manifest.catalog` drops what the base held that tonight's build did not make.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from .errors import YimatongError

MARKER = ".yimatong-output"  # only directories we made are ever replaced
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


_HELD: set[Path] = set()


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One run per output at a time (cron overlapping a slow night, or a deploy during a build): a
    second run stops at once. Re-entrant within a process (nightly holds it over build and deploy)."""
    out = out.resolve()
    if out in _HELD:
        yield
        return
    lock = out.parent / f".{out.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise YimatongError(f"另一个构建或上传正在使用 {out}，本次不运行") from None
        _HELD.add(out)
        try:
            yield
        finally:
            _HELD.discard(out)


def staging_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.staging"


class Staging(NamedTuple):
    path: Path
    pristine: bool  # the tree the last swap moved aside, untouched since: manifests say what it holds


def begin(out: Path) -> Staging:
    """The staging directory for `out`: a killed run's leftover, else the tree the last swap moved
    aside, else an empty one. What it holds is only a starting point: whatever tonight's build does
    not make again is removed before verification (`manifest.Reuse`, `manifest.catalog`)."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise YimatongError(f"{out} 不是本程序生成的输出目录，拒绝覆盖（请换一个 --out 目录）")
    staging, old = staging_dir(out), _old_dir(out)
    pristine = False
    if not (staging / MARKER).is_file():
        shutil.rmtree(staging, ignore_errors=True)
    if staging.exists():
        shutil.rmtree(old, ignore_errors=True)  # after a killed run: keep its staging (newer)
    elif (old / MARKER).is_file():
        old.rename(staging)
        pristine = True
    else:
        shutil.rmtree(old, ignore_errors=True)
        staging.mkdir(parents=True)
    write_file(staging / MARKER, "built by yimatong; this directory is replaced whole on every build\n")
    return Staging(staging, pristine)


def write_file(path: Path, data: bytes | str) -> None:
    """Write `path` as a new file, never into an existing one (it may be a hard link shared with the
    live site): a fresh name is created exclusively; an existing one is replaced by a rename."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        f = open(path, "xb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "xb")  # noqa: SIM115
    except FileExistsError:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # a killed run's leftover: removed next time
        tmp.write_bytes(raw)
        os.replace(tmp, path)
        return
    with f:
        f.write(raw)


def link_file(source: Path | str, target: Path | str) -> None:
    """Hard-link `source` at `target`, replacing whatever `target` was (never writing into it)."""
    try:
        os.link(source, target)
    except FileExistsError:
        tmp = f"{target}.{os.getpid()}.tmp"
        os.link(source, tmp)
        os.replace(tmp, target)


def swap(staging: Path, out: Path, swapped: Callable[[], None] | None = None) -> None:
    """Make `staging` the live `out` in one step. The previous tree is moved aside: the next build
    starts from it. `swapped` is called right after the exchange, for the crash tests."""
    out = out.resolve()
    old = _old_dir(out)
    shutil.rmtree(old, ignore_errors=True)
    if out.exists() and _exchange(staging, out):
        if swapped:
            swapped()
        staging.rename(old)  # now holds the previous site
        return
    if out.exists():  # no renameat2 (not Linux): two renames, the gap is a few microseconds
        out.rename(old)
    staging.rename(out)


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically with renameat2(RENAME_EXCHANGE) where the kernel has it."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0
