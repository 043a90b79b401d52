from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from yimatong.load import Loaded, load
from yimatong.pipeline import BuildResult, build

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
SAMPLE = ROOT / "data"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the bad-file corpus, so tests may add files to it."""
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, Path]:
    """The committed sample, built once per test session."""
    base = tmp_path_factory.mktemp("sample")
    result = build(SAMPLE, base / "public", base / "cache")
    return result, base / "public"


@pytest.fixture(scope="session")
def sample_loaded(sample_build: tuple[BuildResult, Path]) -> Loaded:
    return sample_build[0].loaded


def load_fresh(data: Path, cache: Path) -> Loaded:
    return load(data, cache, workers=1)
