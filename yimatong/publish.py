"""Build into a staging directory beside the output, then swap it in with one atomic rename.

The live output is never written into: a run that dies leaves the previous site as it was, and the
next run clears its leftover staging directory.
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


def begin(out: Path) -> Path:
    """A fresh, empty staging directory for `out` (a leftover from a killed run is removed)."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise YimatongError(f"{out} 不是本程序生成的输出目录，拒绝覆盖（请换一个 --out 目录）")
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(_old_dir(out), ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / MARKER).write_text("built by yimatong; this directory is replaced whole on every build\n")
    return staging


def swap(staging: Path, out: Path, swapped: Callable[[], None] | None = None) -> None:
    """Make `staging` the live `out` in one step. The previous tree is moved aside (`cleanup` removes
    it: at 100,000 permits that is 400,000 unlinks, which need not delay the upload). `swapped` is
    called right after the exchange, for the crash tests."""
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


def cleanup(out: Path) -> None:
    """Remove the previous tree that `swap` moved aside (also done by the next `begin`)."""
    shutil.rmtree(_old_dir(out.resolve()), ignore_errors=True)


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


def discard(staging: Path) -> None:
    """Throw away a build that must not be published."""
    shutil.rmtree(staging, ignore_errors=True)
