"""The collector during a run: what the stages keep is frozen, and the process is itself again after."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from yimatong import heap
from yimatong.pipeline import Options, build

from .conftest import SAMPLE


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_a_build_freezes_what_its_stages_keep_and_leaves_the_collector_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (gc.get_threshold(), gc.isenabled(), gc.get_freeze_count())
    frozen: list[int] = []
    freeze = gc.freeze

    def counting() -> None:
        freeze()
        frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(heap.gc, "freeze", counting)
    build(SAMPLE, tmp_path / "public", tmp_path / "cache", options=Options(signs=False))
    build(SAMPLE, tmp_path / "public", tmp_path / "cache", options=Options(signs=False))  # a night after it

    assert len(frozen) >= 2 * 8  # after the index, last night's manifest, and every stage
    assert max(frozen) > 10_000  # the run's objects (the modules among them), not a handful
    assert (gc.get_threshold(), gc.isenabled(), gc.get_freeze_count()) == before


def test_cycles_dropped_during_a_run_are_collected_once_it_ends() -> None:
    with heap.batch():
        node = _Node()
        gone = weakref.ref(node)
        heap.keep()
        del node
        gc.collect()
        assert gone() is not None  # frozen: the run's collections no longer look at it
    gc.collect()
    assert gone() is None


def test_keep_outside_a_run_freezes_nothing() -> None:
    heap.keep()
    assert gc.get_freeze_count() == 0


def test_acyclic_turns_the_collector_back_on_even_when_the_work_fails() -> None:
    with pytest.raises(ValueError), heap.acyclic():
        assert not gc.isenabled()
        raise ValueError("bad input")
    assert gc.isenabled()
