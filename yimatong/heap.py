"""The cyclic garbage collector, told what a night's build keeps.

A night holds millions of long-lived objects (last night's manifest, the records, tonight's
catalog, the deploy's remote state). Left alone, the collector walks all of them again each time
the heap grows by a quarter, and each forked worker's collections write to every page it shares
with its parent: at 100,000 permits about 40 full collections and 10 s a night, no garbage found.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BATCH_THRESHOLD = 100_000  # allocations between young collections (Python's default: 700)
_depth = 0  # batches open (a nightly's build and deploy run inside its own)


@contextmanager
def batch() -> Iterator[None]:
    """A run (a build, a deploy) that makes millions of objects and keeps most of them: young
    objects are collected a hundred times less often, and `keep` may freeze. On leaving the
    outermost batch the process is as before: thresholds restored, nothing frozen."""
    global _depth
    before = gc.get_threshold()
    if _depth == 0:
        gc.set_threshold(BATCH_THRESHOLD, *before[1:])
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.set_threshold(*before)
            gc.unfreeze()  # what the run dropped in cycles is found by the next full collection


def keep(collect: bool = True) -> None:
    """Within a batch: everything alive now lives until the run ends (a stage's results), so later
    collections skip it, and workers forked from here on share its pages (the collector no longer
    writes to them). The garbage cycles among the objects made since the last `keep` are
    collected first (frozen, they would stay till the end); `collect=False` when those objects
    are known to hold none. Outside a batch (a test calling a stage) it does nothing."""
    if _depth:
        if collect:
            gc.collect()
        gc.freeze()


@contextmanager
def acyclic() -> Iterator[None]:
    """Build a large structure that holds no reference cycles (decoded JSON, rows of it) without a
    collection every few thousand containers. The pause is the whole process's: keep it short."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
