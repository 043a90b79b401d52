"""The nightly run as an operator meets it: run it twice, change a file, break a file, pull the plug.

Every build here runs the real `build.py nightly` (or `pipeline.build`) on a copy of the sample.
"""

from __future__ import annotations

import gzip
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


def test_a_night_killed_in_the_sign_stage_leaves_the_live_site_intact(
    sample_build: tuple[BuildResult, Path], tmp_path: Path
) -> None:
    # With signs (the other crash tests leave them out): killed while it renders a renamed holder's
    # signs, the night publishes nothing, and the next one makes them.
    _, built = sample_build
    data, out, cache = copy_sample(tmp_path / "data"), tmp_path / "public", tmp_path / "cache"
    shutil.copytree(built, out, symlinks=True)
    shutil.copytree(built.parent / "cache", cache)
    file = next(f for f in sorted((data / "enterprises").glob("*.yaml")) if (out / "signs" / permit_of(f)).is_dir())
    permit = permit_of(file)
    rename(file, "标识牌阶段中断的公司")
    before = tree(out)
    died = nightly(data, out, cache, env={KILL_AT: "signs"})
    assert died.returncode == -9, died.stderr
    assert tree(out) == before
    done = nightly(data, out, cache)  # the next run recovers by itself
    assert done.returncode == 0, done.stderr
    assert "标识牌阶段中断的公司" in (out / f"P/{permit}/index.html").read_text(encoding="utf-8")
    after = tree(out)
    signs_of = [p for p in before if p.startswith(f"signs/{permit}/")]
    assert signs_of and all(after[p] != before[p] for p in signs_of)  # its signs show the new name


def test_killed_right_after_the_swap_the_new_site_is_whole(night_one, tmp_path: Path) -> None:
    data, out, cache = fresh_copy(night_one, tmp_path)
    rename(a_file(data, 2), "换上线后中断的公司")
    died = nightly(data, out, cache, "--no-signs", env={KILL_AT: "swapped"})
    assert died.returncode == -9, died.stderr
    live = tree(out)
    listed = manifest.Manifest.read(out)
    assert listed is not None
    assert listed.files() == {
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
    assert set(listed.files()) == files
    assert all(p.startswith("signs/") for p in listed.bundles)  # a permit's sign PDFs: one entry
    assert sum(p.startswith("signs/") for p in files) > 100
    assert not any(gone.stem in p for p in files)
    # What a manifest without `prior` falls back on: its files, and its bundles' folders (whose files'
    # inodes it does not keep: a bundle is made again then).
    bundled = {p: i for p, i in walk(out).items() if manifest.folder_of(p) not in listed.bundles}
    assert manifest.tree_of(out) == bundled | dict.fromkeys(listed.bundles, manifest.FOLDER_INODE)
    assert not (out / f"P/{gone.stem}").exists()
    _, cold_out, _ = fresh_copy(night_one, tmp_path / "cold")
    build(data, cold_out, cache, options=Options(full=True, allow_shrink=True))  # signs from the cache
    a, b = published(tree(out)), published(tree(cold_out))
    assert a.keys() == b.keys()
    assert [p for p in a if a[p] != b[p]] == []


def _as_version_2(out: Path) -> int:
    """Rewrite the live manifest as the code before bundles wrote it: a row per sign PDF (with its
    inode; shared with the moved-aside tree when its folder was), no `bundles`. Returns the PDFs."""
    data = manifest._raw(out)
    columns, bundles = data["outputs"], data.pop("bundles")
    shared = dict(zip(columns["path"], data["prior"]["shared"], strict=True))
    rows = {p: r for p, *r in zip(*columns.values(), strict=True) if not manifest.is_bundle(p)}
    for folder, packed in bundles.items():
        for path, sha in manifest.bundle_files(folder, packed).items():
            rows[path] = [sha, "key-of-the-old-code", None, (out / path).stat().st_ino]
            shared[path] = shared[folder]
    paths = sorted(rows)
    data["outputs"] = {"path": paths, **{c: [rows[p][i] for p in paths] for i, c in enumerate(list(columns)[1:])}}
    data["prior"]["shared"] = [shared[p] for p in paths]
    data["prior"]["stale"] = sorted(
        {f + n for f in data["prior"]["stale"] if f in bundles for n in manifest.unpack(bundles[f])}
        | {p for p in data["prior"]["stale"] if not manifest.is_bundle(p)}
    )
    data["version"] = 2
    (out / manifest.MANIFEST).write_bytes(gzip.compress(json.dumps(data).encode()))
    return sum(len(manifest.unpack(b)) for b in bundles.values())


def test_the_first_night_after_the_upgrade_to_bundles_reads_the_old_manifest(night_one, tmp_path: Path) -> None:
    """A live build whose manifest lists every sign PDF (version 2): the next night reads it, makes
    each permit's folder of signs once more as one bundle, and gives the tree a cold build gives."""
    data, out, cache = fresh_copy(night_one, tmp_path / "incremental")
    assert build(data, out, cache).published
    rename(a_file(data, 1), "升级前一晚改名的测试有限公司")
    assert build(data, out, cache).published  # a moved-aside tree too, with signs
    pdfs = _as_version_2(out)
    old = manifest.Manifest.read(out)
    assert old is not None and len(old.bundles) > 10
    assert sum(len(manifest.unpack(b)) for b in old.bundles.values()) == pdfs
    rename(a_file(data, 3), "升级当晚改名的测试有限公司")
    night = build(data, out, cache)
    assert night.published
    listed = manifest.Manifest.read(out)
    assert listed is not None and listed.bundles.keys() == old.bundles.keys()
    assert set(listed.files()) == set(published(tree(out)))
    pdfs = [p for p in listed.outputs if not manifest.is_bundle(p) and manifest.folder_of(p) in listed.bundles]
    assert pdfs == []  # folded into their bundles
    _, cold_out, _ = fresh_copy(night_one, tmp_path / "cold")
    build(data, cold_out, cache, options=Options(full=True))
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


def test_a_bundle_is_one_manifest_entry_and_its_changed_files_are_named_one_by_one(tmp_path: Path) -> None:
    """A folder a stage makes whole under one key (a permit's sign PDFs) is one entry of the
    manifest; when its key changes, the catalog still names the very files that changed or went
    (what the deploy uploads and deletes), and with the same key it is linked without a look inside."""

    def write(root: Path, files: dict[str, str]) -> None:
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    live, staging = tmp_path / "live", tmp_path / "staging"
    reuse = manifest.Reuse(None, None, live)
    assert reuse.link_many({"signs/A/": "k1"}) == {"signs/A/"}
    reuse.keys["index.html"] = "page"
    write(live, {"signs/A/x.pdf": "x1", "signs/A/y.pdf": "y1", "index.html": "<p>"})
    first = manifest.catalog(live, None, None, reuse.keys, reuse.dates, reuse)
    assert set(first.outputs) == {"signs/A/", "index.html"}
    assert first.bundles == {"signs/A/": manifest.pack({"x.pdf": sha("x1"), "y.pdf": sha("y1")})}
    assert first.outputs["signs/A/"].sha256 == manifest.bundle_sha(first.bundles["signs/A/"])
    assert first.files() == {"signs/A/x.pdf": sha("x1"), "signs/A/y.pdf": sha("y1"), "index.html": sha("<p>")}
    before = manifest.Manifest(first.outputs, bundles=first.bundles)

    tonight = manifest.Reuse(live, before, staging)
    assert tonight.link_many({"signs/A/": "k2"}) == {"signs/A/"}  # a new key: the stage makes it again
    assert tonight.link("index.html", "page")
    write(staging, {"signs/A/x.pdf": "x2", "signs/A/z.pdf": "z"})
    second = manifest.catalog(staging, live, before, tonight.keys, tonight.dates, tonight)
    assert second.changed == {"signs/A/x.pdf", "signs/A/z.pdf"}
    assert second.removed == {"signs/A/y.pdf"}
    assert manifest.unpack(second.bundles["signs/A/"]) == {"x.pdf": sha("x2"), "z.pdf": sha("z")}

    again = staging.parent / "again"
    after = manifest.Manifest(second.outputs, bundles=second.bundles)
    third_reuse = manifest.Reuse(staging, after, again)
    assert third_reuse.link_many({"signs/A/": "k2"}) == set()  # the same key: its files linked
    assert (again / "signs/A/z.pdf").stat().st_ino == (staging / "signs/A/z.pdf").stat().st_ino
    assert not (again / "signs/A/y.pdf").exists()
    third = manifest.catalog(again, staging, after, third_reuse.keys, third_reuse.dates, third_reuse)
    assert third.changed == set() and third.removed == {"index.html"}
    assert third.bundles == second.bundles
