"""The generator: byte-for-byte deterministic, valid against the schema, and holding every edge case
that the pages and the other tests rely on; the committed sample in data/ is its output."""

from __future__ import annotations

import datetime as dt
import typing
from collections import Counter
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from yimatong import generate as gen
from yimatong.identifiers import city_code, uscc_check_ok
from yimatong.schema import EnterpriseFile, Regions, Site

ROOT = Path(__file__).resolve().parent.parent
AS_OF = gen.DEFAULT_AS_OF


def read(path: Path) -> dict[str, typing.Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.yaml"))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "data"
    gen.generate(gen.SAMPLE_N, gen.SAMPLE_SEED, out)
    return out


@pytest.fixture(scope="module")
def records(sample: Path) -> list[EnterpriseFile]:
    return [EnterpriseFile.model_validate(read(p)) for p in sorted((sample / "enterprises").glob("*.yaml"))]


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_serial_or_parallel(tmp_path: Path) -> None:
    gen.generate(80, 7, tmp_path / "a", workers=1)
    gen.generate(80, 7, tmp_path / "b", workers=2)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert len(a) == 82
    assert a == b


def test_enterprise_i_does_not_depend_on_n(tmp_path: Path, sample: Path) -> None:
    gen.generate(80, gen.SAMPLE_SEED, tmp_path)
    small, large = tree(sample), tree(tmp_path)
    assert small.items() <= large.items()


def test_a_rerun_into_the_same_directory_leaves_no_stale_files(tmp_path: Path) -> None:
    gen.generate(30, 1, tmp_path)
    gen.generate(20, 2, tmp_path)
    assert len(list((tmp_path / "enterprises").iterdir())) == 20


def test_progress_is_reported_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    gen.generate(300, 3, tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (300, 300)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_committed_sample_is_the_generators_output(sample: Path) -> None:
    assert tree(ROOT / "data") == tree(sample), "data/ drifted: run `python scripts/make_sample.py`"


# --- validity and file form ----------------------------------------------------------------------


def test_site_and_regions_validate(sample: Path) -> None:
    site = Site.model_validate(read(sample / "site.yaml"))
    regions = Regions.model_validate(read(sample / "regions.yaml"))
    assert site.as_of == AS_OF
    assert [lv.level for lv in site.credit_scale] == ["守信", "普通", "一般失信", "严重失信"]
    assert [c.code for c in regions.cities] == [f"45{k:02d}00" for k in range(1, 15)]
    for city in regions.cities:
        assert city.bureau == f"{city.name}生态环境局"
        assert len(city.counties) >= 3
        assert all(city_code(c.code) == city.code for c in city.counties)


def test_every_enterprise_validates_and_is_consistent(sample: Path, records: list[EnterpriseFile]) -> None:
    regions = Regions.model_validate(read(sample / "regions.yaml"))
    codes = {c.code for c in regions.cities} | {k.code for c in regions.cities for k in c.counties}
    levels = {lv.level for lv in Site.model_validate(read(sample / "site.yaml")).credit_scale}
    names = sorted(p.name for p in (sample / "enterprises").glob("*.yaml"))
    assert names == sorted(f"{r.permit_no}.yaml" for r in records)
    assert len(records) == gen.SAMPLE_N
    for r in records:
        assert r.enterprise.region in codes
        assert r.enterprise.uscc[2:6] == r.enterprise.region[:4], "USCC registration region is in the same city"
        assert r.permit_no[-1] == ("W" if r.permit.kind == "registration" else "P")
        assert r.credit is None or r.credit.level in levels
        for block in (r.enterprise, r.permit, r.eia, r.online_monitoring, r.inspections, r.penalties):
            assert AS_OF - dt.timedelta(days=7) <= block.source.extracted <= AS_OF


def test_files_are_utf8_lf_and_in_schema_key_order(sample: Path) -> None:
    for path in sorted(sample.rglob("*.yaml")):
        raw = path.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and raw.endswith(b"\n"), path.name
    for path in sorted((sample / "enterprises").glob("*.yaml")):
        assert_schema_order(EnterpriseFile, read(path), path.name)
    assert_schema_order(Site, read(sample / "site.yaml"), "site.yaml")
    assert_schema_order(Regions, read(sample / "regions.yaml"), "regions.yaml")


def assert_schema_order(model: type[BaseModel], data: dict[str, typing.Any], where: str) -> None:
    fields = list(model.model_fields)
    assert list(data) == [f for f in fields if f in data], where
    for name, value in data.items():
        sub = _model_in(model.model_fields[name].annotation)
        for k, item in enumerate(value if isinstance(value, list) else [value]):
            if sub is not None and item is not None:
                assert_schema_order(sub, item, f"{where}: {name}[{k}]")


def _model_in(annotation: object) -> type[BaseModel] | None:
    for t in (annotation, *typing.get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def test_numeric_looking_codes_are_quoted_and_series_are_flow_lists(sample: Path) -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((sample / "enterprises").glob("*.yaml")))
    assert '  region: "45' in text and "  region: 45" not in text
    assert '"12345"' in (sample / "site.yaml").read_text(encoding="utf-8")
    assert "      values: [" in text and "      flags: N" in text


@pytest.mark.parametrize(
    "value",
    ["450602", "12345", "yes", "No", "null", "~", "", "2026-03-15", "1e3", "0x1F", "a: b", "x #y", "#x", "- x",
     "[a]", "a, b", "trailing ", "中文：全角冒号", "国能·北海电厂有限公司", "1#锅炉废气排放口", 'say "hi"', "tab\there",
     "https://ymt.example.gov.cn/", "=", "<<"],
)  # fmt: skip
def test_emitter_round_trips_awkward_strings(value: str) -> None:
    doc = {"text": value, "items": [{"code": value, "values": [1.5, None, 0.0, 12345.6]}]}
    assert yaml.load(gen.dump(doc), Loader=yaml.CSafeLoader) == doc


def test_emitter_round_trips_whole_records() -> None:
    for i in range(0, 400, 7):
        doc = gen.enterprise_doc(11, i)
        assert yaml.load(gen.dump(doc), Loader=yaml.CSafeLoader) == doc


# --- edge cases in the 60-enterprise sample ---------------------------------------------------------


def test_permit_states(records: list[EnterpriseFile]) -> None:
    assert any(r.permit.valid_until < AS_OF and r.permit.status == "valid" for r in records), "an expired permit"
    assert any(AS_OF <= r.permit.valid_until <= AS_OF + dt.timedelta(days=90) for r in records), "one expiring soon"
    assert any(r.permit.status == "revoked" and r.permit.status_date and r.permit.status_reason for r in records)
    assert any(
        r.enterprise.status == "deregistered" and r.enterprise.deregistered and r.permit.status == "cancelled"
        for r in records
    )
    assert {r.permit.category for r in records} == {"重点管理", "简化管理", "登记管理"}
    assert any(r.permit.kind == "registration" for r in records)


def test_one_company_with_two_sites(records: list[EnterpriseFile]) -> None:
    by_uscc: dict[str, list[EnterpriseFile]] = {}
    for r in records:
        by_uscc.setdefault(r.enterprise.uscc, []).append(r)
    pairs = [sorted(rs, key=lambda r: r.permit_no) for rs in by_uscc.values() if len(rs) == 2]
    assert any(
        a.permit_no.endswith("001P")
        and b.permit_no.endswith("002P")
        and a.enterprise.address != b.enterprise.address
        and a.enterprise.region != b.enterprise.region
        and city_code(a.enterprise.region) == city_code(b.enterprise.region)
        for a, b in pairs
    )


def test_monitoring_edge_cases(records: list[EnterpriseFile]) -> None:
    assert any(
        r.permit.category == "重点管理" and not r.online_monitoring.installed and not r.online_monitoring.series
        for r in records
    ), "a 重点管理 enterprise without online monitoring"
    recent = [r for r in records if recent_exceedances(r)]
    assert recent, "N-flagged values above the limit in the last 30 days"
    for r in recent:
        warned = {(w.outlet, w.pollutant, w.date) for w in r.online_monitoring.warnings}
        assert recent_exceedances(r) <= warned
    flags = "".join(s.flags for r in records for s in r.online_monitoring.series)
    assert {"N", "F", "M", "D", "C", "B"} <= set(flags)
    assert any(None in s.values for r in records for s in r.online_monitoring.series)
    assert any(r.self_monitoring.series for r in records)


def recent_exceedances(r: EnterpriseFile) -> set[tuple[str, str, dt.date]]:
    limits = {(o.code, p.code): p.limit for o in r.permit.outlets for p in o.pollutants}
    found = set()
    for s in r.online_monitoring.series:
        limit = s.limit or limits.get((s.outlet, s.pollutant))
        for k, (value, flag) in enumerate(zip(s.values, s.flags, strict=True)):
            day = s.start + dt.timedelta(days=k)
            if limit and flag == "N" and value is not None and value > limit and (AS_OF - day).days <= 30:
                found.add((s.outlet, s.pollutant, day))
    return found


def test_enforcement_edge_cases(records: list[EnterpriseFile]) -> None:
    three_years_ago = AS_OF - dt.timedelta(days=3 * 365)
    assert any(p.date >= three_years_ago and p.fine_yuan for r in records for p in r.penalties.items)
    assert any(
        p.decision_no.startswith(tuple("邕柳梧北防钦贵玉百贺河来崇")) for r in records for p in r.penalties.items
    )
    assert any(i.result == "problems_found" and i.findings for r in records for i in r.inspections.items)
    statuses = {x.status for r in records for x in r.rectifications.items}
    assert {"open", "closed"} <= statuses
    assert all(x.closed >= x.found for r in records for x in r.rectifications.items if x.closed)
    assert any(r.credit and r.credit.level in ("一般失信", "严重失信") for r in records)
    assert any(r.total_emissions and r.total_emissions.items for r in records)
    assert any(r.hazardous_waste.items for r in records)
    assert any(r.eia.items and r.eia.items[0].acceptance for r in records)
    assert any(r.licenses.items for r in records)


def test_withheld_parts_are_marked_and_planted(records: list[EnterpriseFile]) -> None:
    blocks = [r.hazardous_waste for r in records if r.hazardous_waste.confidential]
    assert blocks and any(gen.SECRET_MARK in (w.receiver or "") for b in blocks for w in b.items)
    assert any(item.confidential and gen.SECRET_MARK in item.project for r in records for item in r.eia.items)
    fines = [p for r in records for p in r.penalties.items if "fine_yuan" in p.confidential_fields]
    assert fines and fines[0].fine_yuan == gen.PLANTED_FINE


def test_personal_data_planted_in_free_text(records: list[EnterpriseFile]) -> None:
    texts = [i.findings or "" for r in records for i in r.inspections.items]
    texts += [x.problem for r in records for x in r.rectifications.items]
    assert any(gen.PLANTED_MOBILE in t for t in texts)
    assert any(gen.PLANTED_ID in t for t in texts)
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    checksum = sum(int(c) * w for c, w in zip(gen.PLANTED_ID[:17], weights, strict=True)) % 11
    assert len(gen.PLANTED_ID) == 18 and gen.PLANTED_ID[17] == "10X98765432"[checksum]


def test_names_and_places(records: list[EnterpriseFile]) -> None:
    names = [r.enterprise.name for r in records]
    assert any(len(n) >= 24 for n in names)
    assert any("（" in n and "）" in n for n in names)
    assert any("·" in n for n in names)
    assert any(not uscc_check_ok(r.enterprise.uscc) for r in records)
    assert sum(not uscc_check_ok(r.enterprise.uscc) for r in records) <= 3, "a wrong check char stays rare"
    assert {city_code(r.enterprise.region) for r in records} == {f"45{k:02d}00" for k in range(1, 15)}
    assert Counter(r.enterprise.industry.code for r in records).most_common(1)[0][1] < len(records) / 4


def test_sizes_are_realistic(sample: Path) -> None:
    sizes = [p.stat().st_size for p in (sample / "enterprises").glob("*.yaml")]
    assert 6_000 < sum(sizes) / len(sizes) < 18_000
    assert max(sizes) < 100_000
