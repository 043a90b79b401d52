"""The loader against a corpus of bad exports: one clear problem each, the good files still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yimatong.errors import Problem
from yimatong.load import ConfigInvalid, load

from .conftest import CORPUS, ROOT, load_fresh

# file → (line, field, words the message must contain); one problem per bad file.
EXPECTED: dict[str, tuple[int, str, str]] = {
    "bad_syntax.yaml": (30, "", "YAML 语法错误"),
    "bad_type.yaml": (25, "permit.outlets[0].pollutants[0].limit", "应为数字"),
    "bad_missing.yaml": (11, "permit.valid_until", "缺少必填字段"),
    "bad_unknown_field.yaml": (8, "enterprise.adress", "是否应为“address”"),
    "bad_duplicate_key.yaml": (11, "", "重复的键“name”"),
    "bad_permit_no.yaml": (2, "permit_no", "18 位统一社会信用代码 + 3 位数字 + 1 位字母"),
    "bad_outlet_code.yaml": (21, "permit.outlets[0].code", "“DA01”"),
    "bad_date.yaml": (15, "", "日期不存在：2023-02-30"),
    "bad_path_escape.yaml": (2, "permit_no", "含路径字符"),
    "bad_region.yaml": (7, "enterprise.region", "450699 不在 regions.yaml"),
    "bad_credit_level.yaml": (47, "credit.level", "信用等级“优秀”"),
    "bad_outlet_ref.yaml": (38, "online_monitoring.series[0].outlet", "DA009 不在 permit.outlets"),
    "bad_flags.yaml": (38, "online_monitoring.series[0]", "flags 有 3 个字符"),
    "bad_not_mapping.yaml": (1, "", "映射"),
    "bad_schema_version.yaml": (1, "schema_version", "不支持的格式版本 2"),
    "bad_alias_bomb.yaml": (2, "", "锚点与别名"),
    "bad_gbk.yaml": (4, "", "GBK/GB18030"),
    "dup_permit_a.yaml": (2, "permit_no", "dup_permit_b.yaml 重复"),
    "dup_permit_b.yaml": (2, "permit_no", "dup_permit_a.yaml 重复"),
}
WARNED = {
    "warn_bom.yaml": (1, "", "BOM"),
    "warn_uscc_check.yaml": (5, "enterprise.uscc", "校验位不符"),
}


def _by_file(problems: list[Problem]) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(Path(p.file).name, []).append(p)
    return out


def test_each_bad_file_gives_one_clear_problem_and_the_good_ones_load(corpus: Path, tmp_path: Path) -> None:
    loaded = load_fresh(corpus, tmp_path / "cache")
    found = _by_file(loaded.problems)
    assert set(found) == set(EXPECTED) | set(WARNED)
    for name, (line, field, words) in {**EXPECTED, **WARNED}.items():
        assert len(found[name]) == 1, (name, found[name])
        problem = found[name][0]
        assert (problem.line, problem.field) == (line, field), (name, problem)
        assert words in problem.message, (name, problem.message)
        assert problem.severity == ("warning" if name in WARNED else "error")
    assert sorted(Path(e.file).name for e in loaded.entries) == ["good_minimal.yaml", *sorted(WARNED)]
    assert Path(found["bad_syntax.yaml"][0].file) == Path("enterprises/bad_syntax.yaml")


def test_oversize_file_is_refused_without_reading_it(corpus: Path, tmp_path: Path) -> None:
    big = corpus / "enterprises" / "big.yaml"
    big.write_bytes(b"# padding\n" * 30_000)  # 300 kB; the corpus site.yaml allows 200 kB
    loaded = load_fresh(corpus, tmp_path / "cache")
    [problem] = _by_file(loaded.problems)["big.yaml"]
    assert "文件过大" in problem.message and "300,000" in problem.message


def test_non_yaml_files_are_named_not_silently_skipped(corpus: Path, tmp_path: Path) -> None:
    (corpus / "enterprises" / "export.yml").write_text("x: 1\n")
    loaded = load_fresh(corpus, tmp_path / "cache")
    [problem] = _by_file(loaded.problems)["export.yml"]
    assert problem.severity == "warning" and "不是 .yaml" in problem.message


def test_broken_site_yaml_stops_the_run_with_its_problems(corpus: Path, tmp_path: Path) -> None:
    site = corpus / "site.yaml"
    site.write_text(site.read_text(encoding="utf-8").replace('hotline: "12345"', 'hotlne: "12345"'), encoding="utf-8")
    with pytest.raises(ConfigInvalid) as err:
        load(corpus, tmp_path / "cache")
    fields = {p.field for p in err.value.problems}
    assert fields == {"hotlne"} and err.value.problems[0].file == "site.yaml"


def test_parallel_and_serial_loads_agree(corpus: Path, tmp_path: Path) -> None:
    serial = load(corpus, tmp_path / "a", workers=1)
    parallel = load(corpus, tmp_path / "b", workers=2)
    assert serial.problems == parallel.problems
    assert [e.permit_no for e in serial.entries] == [e.permit_no for e in parallel.entries]


def test_unchanged_files_are_not_parsed_again(corpus: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load(corpus, cache, workers=2)
    assert first.parsed == first.files
    second = load(corpus, cache, workers=2)
    assert second.parsed == 0
    assert second.problems == first.problems  # warnings and rejections are remembered too
    assert second.store.get(second.entries[0].digest) == first.store.get(first.entries[0].digest)
    cached = sorted((cache / "records").rglob("*.pickle"))
    good = corpus / "enterprises" / "good_minimal.yaml"
    good.write_text(good.read_text(encoding="utf-8").replace("88 号", "90 号"), encoding="utf-8")
    third = load(corpus, cache, workers=2)
    assert third.parsed == 1
    record = third.store.get(next(e.digest for e in third.entries if e.file.endswith("good_minimal.yaml")))
    assert record["enterprise"]["address"].endswith("90 号")
    # the replaced version's view is kept until the build has published (it may still be shown),
    # then pruned: the new one takes its place
    old = next(e.digest for e in second.entries if e.file.endswith("good_minimal.yaml"))
    new = next(e.digest for e in third.entries if e.file.endswith("good_minimal.yaml"))
    assert len(sorted((cache / "records").rglob("*.pickle"))) == len(cached) + 1
    assert third.store.has(old) and third.store.has(new)
    third.store.prune({e.digest for e in third.entries})
    assert not third.store.has(old) and third.store.has(new)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_check_prints_a_table_and_fails_when_records_are_rejected(tmp_path: Path) -> None:
    run = _cli("check", "--data", str(CORPUS), "--cache", str(tmp_path / "c"), "--quiet")
    assert run.returncode == 1
    header, _rule, *rows = run.stdout.splitlines()[:-1]
    assert header.split() == ["级别", "文件", "行", "字段", "问题"]
    assert any("enterprises/bad_type.yaml" in r and " 25 " in r and "应为数字" in r for r in rows)
    assert "19 个被拒绝" in run.stdout.splitlines()[-1]


def test_check_passes_clean_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "enterprises").mkdir(parents=True)
    for name in ("site.yaml", "regions.yaml", "enterprises/good_minimal.yaml"):
        (data / name).write_bytes((CORPUS / name).read_bytes())
    run = _cli("check", "--data", str(data), "--cache", str(tmp_path / "c"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 个通过，0 个被拒绝" in run.stdout


def test_build_of_bad_data_writes_only_inside_out(corpus: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    before = {p for p in tmp_path.rglob("*")}
    run = _cli("build", "--data", str(corpus), "--out", str(work / "public"), "--cache", str(work / "cache"), cwd=work)
    assert run.returncode == 0, run.stderr
    after = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in after if not p.is_relative_to(work / "public") and not p.is_relative_to(work / "cache")]
    assert outside == [work / ".public.lock"]  # one run per output at a time: the lock beside it
    assert not list(tmp_path.rglob("passwd"))
    pages = sorted(p.parent.name for p in (work / "public" / "P").glob("*/index.html"))
    assert len(pages) == 3  # the good file and the two accepted with warnings


def test_strict_reading_gives_what_pyyaml_gives_and_refuses_every_alias() -> None:
    """The strict loader constructs each distinct scalar once per process: invisible in the result,
    and no way around the refusal of aliases (named at the line of the first `*`) or of impossible
    dates, however often a text recurs."""
    import yaml

    from yimatong import yamlread

    files = sorted((ROOT / "data").rglob("*.yaml")) + sorted((CORPUS / "enterprises").glob("good*.yaml"))
    assert len(files) > 50
    for f in files * 2:  # the second pass reads every scalar from the memo
        text = f.read_text(encoding="utf-8-sig")
        assert yamlread.parse(text) == yaml.load(text, Loader=yaml.CSafeLoader), f

    aliased = [
        ("a: &x 1.5\nb: [1.5, *x]\n", 2),
        ("a: [&x 2026-01-02]\nb: *x\n", 2),
        ("a: &x 是\nb:\n  - 是\n  - *x\n", 4),
        ("&k a: 1\nb: {*k : 2}\n", 2),
    ]
    for text, line in aliased * 2:  # the second time, the anchored scalar comes from the memo
        with pytest.raises(yamlread.YamlProblem) as err:
            yamlread.parse(text)
        assert (err.value.line, err.value.message) == (line, yamlread.ALIAS_REFUSED), text
    for _ in range(2):
        with pytest.raises(yamlread.YamlProblem) as err:
            yamlread.parse("a: 2026-01-02\nb: [2026-01-02, 2023-02-30]\n")
        assert (err.value.line, err.value.message) == (2, "日期不存在：2023-02-30")
