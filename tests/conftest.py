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


# --- browser tests: Debian's Chromium through Playwright, axe-core, the Nu HTML checker -----------
# The helpers are in tests/browser.py. A missing tool skips these tests with the reason, except on CI
# (CI=true), where they must run: there a missing tool is a failure.

from collections.abc import Iterator  # noqa: E402
from typing import TYPE_CHECKING, NoReturn  # noqa: E402

from .browser import browser_problem, launch, on_ci, serve, vnu_problem  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def unavailable(problem: str) -> NoReturn:
    """Skip for a tool that is not installed here; on CI, fail: CI must run every test."""
    if on_ci():
        pytest.fail(f"{problem} (CI=true: the browser tests must run on CI, not skip)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """Headless Chromium, launched once per session (contexts per test keep tests apart)."""
    problem = browser_problem()
    if problem:
        unavailable(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def vnu_ready() -> None:
    """The Nu HTML checker (vnu.jar) and Java are installed."""
    problem = vnu_problem()
    if problem:
        unavailable(problem)


@pytest.fixture(scope="session")
def sample_site(sample_build: tuple[BuildResult, Path]) -> Iterator[str]:
    """The built sample served on 127.0.0.1; the base URL, ending in '/'."""
    with serve(sample_build[1]) as url:
        yield url
