"""The nightly run as an operator meets it: run it twice, change a file, break a file, pull the plug.

Every build here runs the real `build.py nightly` (or `pipeline.build`) on a copy of the sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yimatong import feed, manifest, pipeline, search
from yimatong.pipeline import KILL_AT, BuildResult, Options, build

from .conftest import ROOT, SAMPLE


def tree(root: Path) -> dict[str, str]:
    """Every file of a built site (state folder included) with its sha256."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def nightly(data: Path, out: Path, cache: Path, *extra: str, env: dict[str, str] | None = None):
    command = ["nightly", "--data", str(data), "--out", str(out), "--cache", str(cache), "--quiet"]
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *command, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def copy_sample(dest: Path) -> Path:
    return Path(shutil.copytree(SAMPLE, dest))


def a_file(data: Path, n: int = 0) -> Path:
    return sorted((data / "enterprises").glob("*.yaml"))[n]


def permit_of(file: Path) -> str:
    return file.stem


def rename(file: Path, new: str) -> str:
    """Give the enterprise a new name (the way a changed export would); returns the old name."""
    text = file.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  name: "))
    file.unlink()  # a new file, as an export tool writes it (the live build may hold a hard link)
    file.write_text(text.replace(line, f"  name: {new}", 1), encoding="utf-8")
    return line.removeprefix("  name: ")


@pytest.fixture(scope="module")
def night_one(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The sample built once, without signs (their own tests cover their reuse): data, out, cache."""
    base = tmp_path_factory.mktemp("night")
    data = copy_sample(base / "data")
    done = nightly(data, base / "public", base / "cache", "--no-signs")
    assert done.returncode == 0, done.stderr
    return data, base / "public", base / "cache"


def fresh_copy(night_one: tuple[Path, Path, Path], dest: Path) -> tuple[Path, Path, Path]:
    data, out, cache = night_one
    dest.mkdir(parents=True, exist_ok=True)
    d = copy_sample(dest / "data")
    shutil.rmtree(d)
    shutil.copytree(data, d)
    o = dest / "public"
    shutil.copytree(out, o, symlinks=True)
    c = dest / "cache"
    shutil.copytree(cache, c)
    return d, o, c


def test_same_input_gives_byte_identical_output(tmp_path: Path, sample_build: tuple[BuildResult, Path]) -> None:
    """Two builds of the same export, in different directories with different caches: every file,
    sign PDFs and zips included, is the same bytes (so the CDN re-uploads nothing)."""
    _, first = sample_build
    second = build(SAMPLE, tmp_path / "elsewhere" / "site", tmp_path / "other-cache")
    assert second.published
    a, b = published(tree(first)), published(tree(tmp_path / "elsewhere" / "site"))
    assert a.keys() == b.keys()
    differ = [p for p in a if a[p] != b[p]]
    assert differ == []
    assert any(p.endswith(".pdf") for p in a) and any(p.endswith(".zip") for p in a)


def published(files: dict[str, str]) -> dict[str, str]:
    """What deploy uploads: all but the dot paths (the build's own state, which records inode
    numbers of the tree it describes, and the marker)."""
    return {p: h for p, h in files.items() if not any(part.startswith(".") for part in p.split("/"))}


def test_a_one_file_change_touches_only_what_shows_it(night_one, tmp_path: Path) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    before = tree(out)
    file = a_file(data, 3)
    permit = permit_of(file)
    rename(file, "南宁市改名后的测试化工有限公司")
    result = build(data, out, cache, options=Options(signs=False))
    assert result.loaded.parsed == 1
    pages_of_permit = {p for p in result.files.changed if p.startswith(f"P/{permit}/")}
    assert f"P/{permit}/index.html" in pages_of_permit and f"P/{permit}/data.json" in pages_of_permit
    other_permit_pages = [p for p in result.files.changed if p.startswith("P/") and not p.startswith(f"P/{permit}/")]
    assert other_permit_pages == []
    # what renders the name elsewhere: a list page of its city, industry and category, the search index
    assert any(p.startswith("city/") for p in result.files.changed)
    assert any(p.startswith("search/") for p in result.files.changed)
    assert result.rendered < 20  # of 250 pages
    after = tree(out)
    assert {p for p in after if after[p] != before.get(p)} - {manifest.MANIFEST} == result.files.changed
    page = (out / f"P/{permit}/index.html").read_text(encoding="utf-8")
    assert "南宁市改名后的测试化工有限公司" in page


def test_incremental_and_cold_builds_give_identical_trees(
    night_one, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Night two built on top of night one equals night two built from nothing but night one's
    history. (Night two patches the live search index rather than building it whole.)"""
    data, out, cache = fresh_copy(night_one, tmp_path / "incremental")
    _, cold_out, _ = fresh_copy(night_one, tmp_path / "cold")
    for n, name in ((1, "甲测试有限公司"), (7, "乙测试有限公司")):
        rename(a_file(data, n), name)
    whole = []
    index = search._index
    monkeypatch.setattr(search, "_index", lambda *a: whole.append(1) or index(*a))
    incremental = build(data, out, cache, options=Options(signs=False))
    assert whole == [], "the search index was built whole"
    cold = build(data, cold_out, tmp_path / "empty-cache", options=Options(signs=False, full=True))
    assert whole == [1]
    assert incremental.rendered < cold.rendered
    a, b = published(tree(out)), published(tree(cold_out))
    assert a.keys() == b.keys()
    assert [p for p in a if a[p] != b[p]] == []


def test_a_rejected_record_keeps_its_last_good_page(night_one, tmp_path: Path) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    file = a_file(data, 5)
    permit = permit_of(file)
    old_page = (out / f"P/{permit}/index.html").read_text(encoding="utf-8")
    text = file.read_text(encoding="utf-8")
    file.unlink()
    file.write_text(text.replace("schema_version: 1", "schema_version: 1\nbogus_field: 1", 1), encoding="utf-8")
    done = nightly(data, out, cache, "--no-signs")
    assert done.returncode == 0, done.stderr
    report = json.loads((out.parent / "public.report.json").read_text(encoding="utf-8"))
    assert report["published"] is True
    assert [r["file"] for r in report["records"]["rejected"]] == [f"enterprises/{file.name}"]
    kept = report["records"]["kept_last_good"]
    assert list(kept) == [permit] and "bogus_field" in kept[permit]["reason"]
    page = (out / f"P/{permit}/index.html").read_text(encoding="utf-8")
    name = old_page.split("<h1>")[1].split("<")[0]
    assert name in page
    assert "未通过校验" in page  # the page says it shows the last good data, and as of when
    assert (out / f"P/{permit}/data.json").is_file()


@pytest.mark.parametrize("point", ["load", "pages", "search", "opendata", "swap"])
def test_a_killed_night_leaves_the_live_site_intact(night_one, tmp_path: Path, point: str) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    before = tree(out)
    rename(a_file(data, 2), "被中断那晚改名的公司")
    died = nightly(data, out, cache, "--no-signs", env={KILL_AT: point})
    assert died.returncode == -9, died.stderr
    assert tree(out) == before  # intact: every file, the state folder included
    assert (out / "index.html").is_file()
    done = nightly(data, out, cache, "--no-signs")  # the next run recovers by itself
    assert done.returncode == 0, done.stderr
    assert "被中断那晚改名的公司" in (out / f"P/{permit_of(a_file(data, 2))}/index.html").read_text(encoding="utf-8")
    assert not (out.parent / f".{out.name}.staging").exists()


def test_killed_right_after_the_swap_the_new_site_is_whole(night_one, tmp_path: Path) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    rename(a_file(data, 2), "换上线后中断的公司")
    died = nightly(data, out, cache, "--no-signs", env={KILL_AT: "swapped"})
    assert died.returncode == -9, died.stderr
    live = tree(out)
    listed = manifest.Manifest.read(out)
    assert listed is not None
    assert {p: v.sha256 for p, v in listed.outputs.items()} == {
        p: h for p, h in live.items() if not p.startswith(".")
    }  # the new site is live and whole: exactly the files its manifest lists
    done = nightly(data, out, cache, "--no-signs")
    assert done.returncode == 0, done.stderr
    assert not (out.parent / f".{out.name}.staging").exists()


def test_a_leak_stops_the_night_and_publishes_nothing(night_one, tmp_path: Path, monkeypatch) -> None:
    """A template bug that printed a withheld value: verification finds it, the live site stays."""
    from yimatong import generate, pages
    from yimatong.pipeline import VerificationFailed

    data, out, cache = fresh_copy(night_one, tmp_path)
    before = tree(out)
    secret = next(
        s for f in sorted((data / "enterprises").glob("*.yaml")) for s in _secrets(f) if generate.SECRET_MARK in s
    )
    write = pages.write

    def leaky(staging: Path, path: str, text: str) -> None:
        write(staging, path, text.replace("</main>", f"<p>{secret}</p></main>") if path == "index.html" else text)

    monkeypatch.setattr(pages, "write", leaky)
    with pytest.raises(VerificationFailed) as failed:
        build(data, out, cache, options=Options(signs=False, full=True))
    assert [p.file for p in failed.value.result.problems] == ["index.html"]
    assert secret not in str(failed.value.result.problems)  # the report does not repeat it
    assert tree(out) == before


def _secrets(file: Path) -> set[str]:
    from yimatong.load import read_model
    from yimatong.public import secrets
    from yimatong.schema import EnterpriseFile

    record, _ = read_model(file.read_bytes(), EnterpriseFile)
    return secrets(record) if record else set()


def test_a_vanished_permit_stops_the_night_unless_allowed(night_one, tmp_path: Path) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    before = tree(out)
    gone = a_file(data, 9)
    gone.unlink()
    refused = nightly(data, out, cache, "--no-signs")
    assert refused.returncode == 1
    assert f"P/{gone.stem}/index.html" in refused.stdout + refused.stderr
    assert tree(out) == before
    report = json.loads((out.parent / "public.report.json").read_text(encoding="utf-8"))
    assert report["published"] is False and report["verification"]
    allowed = nightly(data, out, cache, "--no-signs", "--allow-shrink")
    assert allowed.returncode == 0, allowed.stderr
    assert not (out / f"P/{gone.stem}").exists()


def test_a_night_starts_from_last_nights_tree_and_never_writes_into_the_live_one(night_one, tmp_path: Path) -> None:
    """From the third night on, staging starts as the tree the last swap moved aside, whose files are
    mostly hard links shared with the live site. A night that dies half way, and the night after it,
    must leave every live file's bytes alone, drop what is gone, and end equal to a cold build."""
    data, out, cache = fresh_copy(night_one, tmp_path / "incremental")
    old = out.parent / f".{out.name}.old"
    rename(a_file(data, 1), "第二晚改名的测试有限公司")
    assert nightly(data, out, cache, "--no-signs").returncode == 0
    assert old.is_dir()  # last night's tree, kept as tomorrow's starting point
    rename(a_file(data, 3), "第三晚改名的测试有限公司")
    rename(a_file(data, 1), "第二晚改名又改回的测试有限公司")
    gone = a_file(data, 9)
    gone.unlink()
    before = tree(out)
    died = nightly(data, out, cache, "--no-signs", "--allow-shrink", env={KILL_AT: "opendata"})
    assert died.returncode == -9, died.stderr
    assert tree(out) == before
    done = nightly(data, out, cache, "--no-signs", "--allow-shrink")
    assert done.returncode == 0, done.stderr
    assert tree(old) == before  # the previous live tree, byte for byte: nothing wrote into its files
    assert not (out / f"P/{gone.stem}").exists()
    assert not (out.parent / f".{out.name}.staging").exists()
    _, cold_out, _ = fresh_copy(night_one, tmp_path / "cold")  # the same history (the month's archive)
    build(data, cold_out, tmp_path / "empty-cache", options=Options(signs=False, full=True, allow_shrink=True))
    a, b = published(tree(out)), published(tree(cold_out))
    assert a.keys() == b.keys()
    assert [p for p in a if a[p] != b[p]] == []


def test_a_night_from_last_nights_tree_reads_its_list_of_files_not_its_folders(
    night_one, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging starts as the tree the last swap moved aside, which nothing has touched since: the
    live build's manifest says which of its files are shared with the live tree and which are not,
    and the files under the permit folders and signs/ are known from what the stages made (at
    100,000 permits, 1.4 of the 1.5 million files), so only the folders outside them are read. The
    manifest still lists exactly the files published, a renamed holder's new signs and county
    volumes among them, and a removed permit's files are gone."""
    data, out, cache = fresh_copy(night_one, tmp_path / "incremental")
    rename(a_file(data, 1), "第二晚改名的测试有限公司")
    assert build(data, out, cache).published  # the signs too, from tonight on
    rename(a_file(data, 3), "第三晚改名的测试有限公司")
    gone = a_file(data, 9)
    gone.unlink()
    read: list[tuple[str, tuple[str, ...]]] = []
    walk = manifest.inodes

    def spy(root: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
        read.append((root.name, skip))
        return walk(root, skip)

    monkeypatch.setattr(manifest, "inodes", spy)
    own: list[Path] = []  # the moved-aside tree's own manifest: not needed, the live one says what it holds
    monkeypatch.setattr(pipeline, "tree_of", lambda root: own.append(root) or manifest.tree_of(root))
    assert build(data, out, cache, options=Options(allow_shrink=True)).published
    assert own == []
    whole = [skip for name, skip in read if name == f".{out.name}.staging"]
    assert whole == [("P/", "signs/")]  # once, by the catalog, and not the permit or sign folders
    listed = manifest.Manifest.read(out)
    assert listed is not None
    files = set(published(tree(out)))
    assert set(listed.outputs) == files
    assert sum(p.startswith("signs/") for p in files) > 100
    assert not any(gone.stem in p for p in files)
    assert manifest.tree_of(out) == walk(out)  # what a manifest without `prior` falls back on
    assert not (out / f"P/{gone.stem}").exists()
    _, cold_out, _ = fresh_copy(night_one, tmp_path / "cold")
    build(data, cold_out, cache, options=Options(full=True, allow_shrink=True))  # signs from the cache
    a, b = published(tree(out)), published(tree(cold_out))
    assert a.keys() == b.keys()
    assert [p for p in a if a[p] != b[p]] == []


def test_a_damaged_live_feed_does_not_stop_the_night(night_one, tmp_path: Path) -> None:
    """feed.xml is the only output a night reads back (past nights' changes); if it is damaged on
    disk, the night goes on, says so, and the feed starts again from tonight's changes."""
    data, out, cache = fresh_copy(night_one, tmp_path)
    live_feed = out / "feed.xml"
    live_feed.unlink()  # shared with last night's tree: replaced, not written into
    live_feed.write_bytes(b"<feed><entry>")
    file = a_file(data, 4)
    text = file.read_text(encoding="utf-8")
    revoked = "  status: revoked\n  status_date: 2026-11-19\n  status_reason: 依法撤销\n"
    assert "\n  status: valid\n" in text
    file.unlink()
    file.write_text(text.replace("\n  status: valid\n", "\n" + revoked, 1), encoding="utf-8")
    done = nightly(data, out, cache, "--no-signs")
    assert done.returncode == 0, done.stderr
    assert "feed.xml" in done.stderr and "重新开始" in done.stderr
    report = json.loads(out.with_name(out.name + ".report.json").read_text(encoding="utf-8"))
    assert report["published"] and report["records"]["warnings"] >= 1
    entries = feed.read((out / "feed.xml").read_bytes())  # whole again, with tonight's change
    assert [(e.change.permit_no, e.change.kind) for e in entries] == [(permit_of(file), "status")]
