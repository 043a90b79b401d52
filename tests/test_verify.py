"""Verification before publishing, checked the way an operator meets it: the clean sample passes,
and each way a built tree can go wrong is caught, named by file, before anything goes live.

Every test works on its own copy of the built sample (hard links: a tampered file is always
written anew, never in place, so the session's build is never touched).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import zxingcpp

from yimatong import opendata, signs, urls, verify
from yimatong.errors import Problem
from yimatong.load import iter_views, read_model
from yimatong.manifest import Manifest, Output, Reuse
from yimatong.opendata import Piece, Same, ZipLayout, write_open_data
from yimatong.pipeline import BuildResult
from yimatong.public import public_view
from yimatong.schema import EnterpriseFile

from .conftest import SAMPLE

ID_NUMBER = "11010519491231002X"  # GB 11643's own example: a valid check digit
MOBILE = "13912345678"
SECRET = "年产3000吨特种材料机密扩建项目"  # a value the sample withholds (a confidential EIA item)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(sample_build: tuple[BuildResult, Path]) -> tuple[BuildResult, Path]:
    return sample_build


@pytest.fixture(scope="module")
def base_url(built: tuple[BuildResult, Path]) -> str:
    return built[0].loaded.site.base_url


@pytest.fixture(scope="module")
def qr_urls(built: tuple[BuildResult, Path]) -> list[str]:
    """What every sign's QR code carries, from the signs the build plans."""
    return [c.qr_url for p in signs.plan(built[0].loaded) for c in p.contents]


@pytest.fixture(scope="module")
def manifest(built: tuple[BuildResult, Path]) -> dict[str, str]:
    """The live build's file list, as the previous night's manifest gives it."""
    root = built[1]
    return {p: hashlib.sha256((root / p).read_bytes()).hexdigest() for p in verify.tree(root)}


@pytest.fixture(scope="module")
def confidential(built: tuple[BuildResult, Path]) -> dict[str, set[str]]:
    """Each sample record's withheld strings, read from the exported YAML, less every string the
    build publishes anyway (another record's public waste name, the site's authority): what the
    build passes as `secrets`."""
    loaded = built[0].loaded
    published = verify.public_strings(loaded.site.model_dump(mode="json"))
    for _, view in iter_views(loaded):
        published |= verify.public_strings(view)
    out = {}
    for path in sorted((SAMPLE / "enterprises").glob("*.yaml")):
        record, _ = read_model(path.read_bytes(), EnterpriseFile)
        assert record is not None
        values = verify.confidential_values(record, public_view(record)) - published
        if values:
            out[record.permit_no] = values
    return out


@pytest.fixture(scope="module")
def all_secrets(confidential: dict[str, set[str]]) -> set[str]:
    return set().union(*confidential.values())


@pytest.fixture
def site(built: tuple[BuildResult, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[1], tmp_path / "site", copy_function=os.link))


def _rewrite(path: Path, data: bytes) -> None:
    path.unlink()  # a hard link to the session's build: never write through it
    path.write_bytes(data)


def _check(
    site: Path,
    base_url: str,
    *,
    changed: set[str] | None,
    previous: dict[str, str] | None = None,
    qr_urls: Iterable[str] = (),
    secrets: Callable[[str], Iterable[str]] | None = None,
    all_secrets: Iterable[str] = (),
    allow_shrink: bool = False,
) -> list[Problem]:
    return verify.verify(
        site,
        base_url,
        changed=changed,
        previous=previous,
        qr_urls=qr_urls,
        secrets=secrets,
        all_secrets=all_secrets,
        allow_shrink=allow_shrink,
        workers=1,
    )


def _enterprise_page(site: Path) -> str:
    return sorted(p for p in verify.tree(site) if p.count("/") == 2 and p.endswith("/index.html"))[0]


# --- the clean build -----------------------------------------------------------------------------


def test_the_clean_sample_verifies_with_every_check_on(
    built: tuple[BuildResult, Path],
    base_url: str,
    qr_urls: list[str],
    manifest: dict[str, str],
    confidential: dict[str, set[str]],
    all_secrets: set[str],
) -> None:
    assert qr_urls and len(confidential) >= 2, "the sample must have signs and withheld values to check"
    assert SECRET in all_secrets
    problems = verify.verify(
        built[1],
        base_url,
        changed=None,
        previous=manifest,
        qr_urls=qr_urls,
        secrets=lambda permit: confidential.get(permit, ()),
        all_secrets=all_secrets,
        workers=2,
    )
    assert problems == []


def test_a_qr_code_read_from_a_sign_leads_to_a_page_and_a_deleted_outlet_page_is_caught(
    built: tuple[BuildResult, Path], site: Path, base_url: str
) -> None:
    result, root = built
    outlet_sign = next(c for p in signs.plan(result.loaded) for c in p.contents if c.format == signs.OUTLET_1.key)
    pdf = pdfium.PdfDocument(root / signs.sign_paths(outlet_sign)[0])
    image = pdf[0].render(scale=150 / 72, grayscale=True).to_pil()
    pdf.close()
    decoded = [code.text for code in zxingcpp.read_barcodes(image)]
    assert decoded == [urls.qr_url(base_url, urls.outlet_path(outlet_sign.permit_no, outlet_sign.outlet))]

    assert _check(site, base_url, changed=set(), qr_urls=decoded) == []
    page = f"{urls.outlet_path(outlet_sign.permit_no, outlet_sign.outlet)}index.html"
    (site / page).unlink()
    problems = _check(site, base_url, changed=set(), qr_urls=decoded)
    assert [(p.file, p.severity) for p in problems] == [(page, "error")]
    assert decoded[0] in problems[0].message


def test_qr_codes_outside_the_site_or_with_a_path_prefix_in_another_case_are_caught(site: Path) -> None:
    # A site served under https://h/ymt/ whose signs read HTTPS://H/YMT/…: web servers compare paths
    # with case, so that sign would lead nowhere (urls.qr_url keeps the prefix's case for this reason).
    base = "https://ymt.example.gov.cn/ymt/"
    directory = _enterprise_page(site).removesuffix("index.html")
    good = base + directory
    made = urls.qr_url(base, directory)
    assert made == "HTTPS://YMT.EXAMPLE.GOV.CN/ymt/" + directory
    upper = (base + directory).upper()
    elsewhere = "HTTPS://ELSEWHERE.EXAMPLE.COM/P/X/"
    problems = _check(site, base, changed=set(), qr_urls=[good, made, upper, elsewhere])
    assert len(problems) == 2
    assert upper in problems[1].message and "大小写" in problems[1].message
    assert elsewhere in problems[0].message


# --- links and pages -----------------------------------------------------------------------------


def test_a_broken_relative_link_on_an_enterprise_page_is_named_with_its_page(site: Path, base_url: str) -> None:
    page = _enterprise_page(site)
    html = (site / page).read_text(encoding="utf-8")
    assert 'href="../../signs/"' in html  # the page's real links are relative
    _rewrite(site / page, html.replace("</main>", '<a href="../../P/NO-SUCH-PERMIT/">x</a></main>').encode())
    problems = _check(site, base_url, changed={page})
    assert [(p.file, p.field, p.severity) for p in problems] == [(page, "href", "error")]
    assert "../../P/NO-SUCH-PERMIT/" in problems[0].message and problems[0].line


def test_links_that_leave_the_site_root_or_miss_a_fragment_are_caught(site: Path, base_url: str) -> None:
    page = _enterprise_page(site)
    html = (site / page).read_text(encoding="utf-8")
    extra = '<a href="../../../../etc/">a</a><a href="#nowhere">b</a><a href="/search/">c</a>'
    extra += '<a href="mailto:x@example.com">d</a><a href="https://other.example.com/x">e</a>'
    _rewrite(site / page, html.replace("</main>", extra + "</main>").encode())
    problems = _check(site, base_url, changed={page})
    hrefs = sorted(p.message.split()[1] for p in problems)
    assert hrefs == ["#nowhere", "../../../../etc/"]  # "/search/": under base path "/"


def test_a_page_truncated_in_half_is_caught(site: Path, base_url: str) -> None:
    page = _enterprise_page(site)
    raw = (site / page).read_bytes()
    _rewrite(site / page, raw[: len(raw) // 2])
    problems = _check(site, base_url, changed={page})
    assert problems and {p.file for p in problems} == {page}
    assert any("</html>" in p.message for p in problems)


def test_a_page_that_is_not_utf8_is_caught(site: Path, base_url: str) -> None:
    page = _enterprise_page(site)
    html = (site / page).read_text(encoding="utf-8")
    _rewrite(site / page, html.encode("gb18030"))
    problems = _check(site, base_url, changed={page})
    assert [p.file for p in problems] == [page] and "UTF-8" in problems[0].message


def test_only_changed_files_are_read(site: Path, base_url: str) -> None:
    """The unchanged files were verified on the night they were built, and their bytes are the
    same, so a broken link in a file outside `changed` is not looked for again."""
    pages = sorted(p for p in verify.tree(site) if p.startswith("P/") and p.endswith("/index.html"))[:2]
    broken, other = pages
    html = (site / broken).read_text(encoding="utf-8")
    _rewrite(site / broken, html.replace("</main>", '<a href="missing/">x</a></main>').encode())
    assert _check(site, base_url, changed={other}) == []
    assert [p.file for p in _check(site, base_url, changed=None)] == [broken]


# --- nothing published disappears ----------------------------------------------------------------


def test_a_published_permit_that_disappears_is_caught_unless_allowed(
    site: Path, base_url: str, manifest: dict[str, str], qr_urls: list[str]
) -> None:
    # The permit with the most signs: its page, outlet pages and sign PDFs are more than are listed.
    signed = Counter(p.split("/")[1] for p in manifest if p.startswith("signs/9"))
    permit = max(sorted(signed), key=signed.__getitem__)
    shutil.rmtree(site / "P" / permit)
    shutil.rmtree(site / "signs" / permit)
    kept = [u for u in qr_urls if permit not in u]  # tonight's signs: the permit has none left
    problems = _check(site, base_url, changed=set(), previous=manifest, qr_urls=kept)
    gone = sorted(p for p in manifest if p.startswith((f"P/{permit}/", f"signs/{permit}/")))
    assert len(gone) > verify.MAX_LISTED  # the page, its outlet pages and its sign PDFs
    assert [p.file for p in problems] == gone[: verify.MAX_LISTED + 1]
    assert f"共 {len(gone)} 个" in problems[-1].message
    assert all(p.severity == "error" for p in problems)

    allowed = _check(site, base_url, changed=set(), previous=manifest, qr_urls=kept, allow_shrink=True)
    assert allowed and all(p.severity == "warning" for p in allowed)
    assert verify.errors(allowed) == []


@pytest.mark.parametrize(("share", "caught"), [(0.06, True), (0.04, False)])
def test_the_site_may_shrink_by_at_most_five_percent(
    site: Path, base_url: str, manifest: dict[str, str], share: float, caught: bool
) -> None:
    pages = [p for p in manifest if p.endswith(".html")]
    # List pages, not permit pages: only the page count is at stake here.
    removable = sorted(p for p in pages if p.startswith(("industry/", "city/")))
    count = round(len(pages) * share)
    assert count <= len(removable)
    for page in removable[:count]:
        (site / page).unlink()
    problems = _check(site, base_url, changed=set(), previous=manifest)
    if caught:
        assert [(p.file, p.severity) for p in problems] == [("index.html", "error")]
        assert f"由 {len(pages)} 降至 {len(pages) - count}" in problems[0].message
        allowed = _check(site, base_url, changed=set(), previous=manifest, allow_shrink=True)
        assert [p.severity for p in allowed] == ["warning"]
    else:
        assert problems == []


# --- leaks ---------------------------------------------------------------------------------------


def _plant_in_zip(path: Path, member_suffix: str, row: str) -> str:
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            if info.filename.endswith(member_suffix):
                data += row.encode()
                name = info.filename
            archive.writestr(info, data)
    _rewrite(path, buffer.getvalue())
    return name


def test_an_id_number_a_mobile_and_a_withheld_value_are_caught_in_a_page_a_json_file_and_a_zipped_csv(
    site: Path, base_url: str, confidential: dict[str, set[str]], all_secrets: set[str]
) -> None:
    permit = next(p for p, values in confidential.items() if SECRET in values)
    page = f"P/{permit}/index.html"
    # In the page, the withheld value is glued into a sentence: the permit's own values are searched
    # as substrings.
    html = (site / page).read_text(encoding="utf-8")
    planted = f"<p>联系人身份证 {ID_NUMBER}，手机 {MOBILE}，另有{SECRET}待批。</p>"
    _rewrite(site / page, html.replace("</main>", planted + "</main>").encode())
    # In an aggregate JSON file and a zipped CSV, each is a whole field, as a leak through the data
    # would be: found through `all_secrets`.
    index = "data/index.json"
    text = (site / index).read_text(encoding="utf-8")
    _rewrite(
        site / index, text.replace('"as_of"', f'"x": ["{ID_NUMBER}", "{MOBILE}", "{SECRET}"],\n "as_of"', 1).encode()
    )
    archive = next(p for p in sorted(verify.tree(site)) if p.startswith("data/") and p.endswith("enterprises.csv.zip"))
    member = _plant_in_zip(site / archive, ".csv", f"{permit},{ID_NUMBER},{MOBILE},{SECRET}\r\n")

    problems = _check(
        site,
        base_url,
        changed={page, index, archive},
        secrets=lambda p: confidential.get(p, ()),
        all_secrets=all_secrets,
    )
    found: dict[tuple[str, str], set[str]] = {}
    for p in problems:
        assert p.severity == "error"
        assert ID_NUMBER not in p.message and MOBILE not in p.message and SECRET not in p.message  # not in logs
        kind = "id" if "身份证" in p.message else "mobile" if "手机" in p.message else "secret"
        found.setdefault((p.file, p.field), set()).add(kind)
    every = {"id", "mobile", "secret"}
    assert found == {(page, ""): every, (index, ""): every, (archive, member): every}
    assert all(p.line for p in problems)


def test_a_withheld_value_in_its_own_permits_row_of_a_zipped_table_is_caught_and_elsewhere_is_not(
    site: Path, base_url: str, confidential: dict[str, set[str]]
) -> None:
    """How the build calls it (no all_secrets): a row naming the permit that withholds a value must
    not hold that value; the same value in another holder's row may be that holder's public data."""
    permit = next(p for p, values in confidential.items() if SECRET in values)
    other = next(p for p in sorted(confidential) if p != permit and SECRET not in confidential[p])
    archive = next(p for p in sorted(verify.tree(site)) if p.startswith("data/") and p.endswith("enterprises.csv.zip"))
    member = _plant_in_zip(site / archive, ".csv", f"{permit},x,{SECRET}\r\n{other},x,{SECRET}\r\n")
    problems = _check(site, base_url, changed={archive}, secrets=lambda p: confidential.get(p, ()))
    assert [(p.file, p.field, "不予公开" in p.message) for p in problems] == [(archive, member, True)]
    line = (problems[0].line or 0) - 1
    with zipfile.ZipFile(site / archive) as z:
        assert z.read(member).decode("utf-8-sig").splitlines()[line].startswith(permit)


def test_a_withheld_value_counts_only_on_a_row_of_its_own_permit_wherever_its_rows_stand() -> None:
    """Rows of a permit need not stand together (a list sorted by another column): each of its rows
    counts, and the rows between them, of other permits or of none, do not."""
    a, b = "91110000MA00000001001V", "91110000MA00000002001V"
    withheld = {a: ["机密项目甲", " 机密项目乙 ", "机密", "机密项目丙", "机密项目丁"], b: ["机密项目戊"]}
    text = "\n".join(
        [
            f"{a},机密项目乙",  # a's row: found (stripped value)
            f"{b},机密项目甲,机密项目戊",  # b's row: a's value is b's public data; b's own is found
            "说明,机密项目丙",  # no permit: not a row of a
            f"x,{a},y",
            f"{a},机密项目丁",  # a's rows again, after b's: found
            "机密项目甲",  # after a's last row
        ]
    )
    found = verify.row_secrets(text, lambda p: withheld.get(p, []))
    assert found == {"机密项目乙", "机密项目戊", "机密项目丁"}
    assert verify.row_secrets(text.replace(f"{a},机密项目丁", "z"), lambda p: withheld.get(p, [])) == {
        "机密项目乙",
        "机密项目戊",
    }


def test_credit_codes_permit_numbers_hashes_and_the_hotline_are_not_personal_data() -> None:
    text = (
        "91451322156251412N001P 110105194912310021001P 12345 0771-5551234 "
        "sha256 e3bd2e963dba3c4376caa0e04a2cab24c6474513912345678a 13912345678.5 x8613912345678"
    )
    assert verify.id_numbers(text) == [] and verify.mobile_numbers(text) == []
    assert verify.id_numbers(f"（{ID_NUMBER}）") == [ID_NUMBER]
    assert verify.id_numbers("110105194912310021") == []  # a wrong check digit: not an ID number
    assert verify.mobile_numbers("电话:+86 139-1234-5678。") != []


# --- a changed open-data zip on an incremental night -----------------------------------------------
# opendata rebuilds a changed zip from last night's compressed segments and the few it compresses
# anew; the verifier reads only those, and trusts nothing it has not compared or read.

SEGMENT = 2048  # bytes per segment: the 60-record sample cut as finely as 100,000 records are at 64 kB


@dataclass(frozen=True)
class Night:
    """Two nights of open data, the second with one record changed: the live tree (last night's
    output), the staging tree (tonight's), how tonight's zips were made, and the site's files."""

    live: Path
    staging: Path
    zips: dict[str, ZipLayout]
    paths: set[str]

    @property
    def changed(self) -> set[str]:
        """The zips whose bytes differ from the live ones (what the catalog would call changed)."""
        return {p for p in self.zips if (self.staging / p).read_bytes() != (self.live / p).read_bytes()}


class _Store:
    """Tonight's records: the sample's, with one replaced."""

    def __init__(self, store: Any, changed: dict[str, dict[str, Any]]) -> None:
        self.store, self.changed = store, changed

    def get(self, digest: str) -> dict[str, Any]:
        return self.changed[digest] if digest in self.changed else self.store.get(digest)


def _two_nights(built: tuple[BuildResult, Path], base: Path, permit: str, **enterprise: str) -> Night:
    """The open data written for the sample ("live"), then again with the record of `permit`
    changed as `enterprise` says ("staging"), through the cache, as the nightly runs it."""
    loaded = built[0].loaded
    entry = next(e for e in loaded.entries if e.permit_no == permit)
    view = loaded.store.get(entry.digest)
    view["enterprise"].update(enterprise)
    tonight = replace(
        loaded,
        entries=[replace(e, digest="f" * 32) if e is entry else e for e in loaded.entries],
        store=_Store(loaded.store, {"f" * 32: view}),
    )
    live, staging, cache = base / "live", base / "staging", base / "cache"
    live.mkdir()
    staging.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(opendata, "SEGMENT_BYTES", SEGMENT)
        first = Reuse(None, None, live)
        write_open_data(loaded, live, None, cache_dir=cache, reuse=first)
        keys = Manifest({path: Output("", key) for path, key in first.keys.items()})
        stats = write_open_data(tonight, staging, live, cache_dir=cache, reuse=Reuse(live, keys, staging))
    # Links in the tables lead to the site's pages: the sample's build holds them.
    return Night(live, staging, stats.zips, verify.tree(built[1]) | verify.tree(staging))


@pytest.fixture(scope="module")
def leaky_night(
    built: tuple[BuildResult, Path], confidential: dict[str, set[str]], tmp_path_factory: pytest.TempPathFactory
) -> Night:
    """Tonight's export of one record carries its withheld value as its name, and an ID number and
    a mobile number in its address: in every table, in the segments compressed tonight."""
    permit = next(p for p, values in confidential.items() if SECRET in values)
    address = f"某路 1 号 联系人身份证 {ID_NUMBER} 手机 {MOBILE}"
    return _two_nights(built, tmp_path_factory.mktemp("leaky"), permit, name=SECRET, address=address)


@pytest.fixture(scope="module")
def clean_night(built: tuple[BuildResult, Path], tmp_path_factory: pytest.TempPathFactory) -> Night:
    permit = built[0].loaded.entries[len(built[0].loaded.entries) // 2].permit_no
    return _two_nights(built, tmp_path_factory.mktemp("clean"), permit, name="更名后的某某有限公司")


def _check_night(
    night: Night,
    base_url: str,
    confidential: dict[str, set[str]],
    zips: dict[str, ZipLayout] | None,
    reading: verify.Reading | None = None,
    staging: Path | None = None,
) -> list[Problem]:
    return verify.verify(
        staging or night.staging,
        base_url,
        changed=night.changed,
        previous=None,
        qr_urls=(),
        secrets=lambda p: confidential.get(p, ()),
        workers=1,
        paths=night.paths,
        live=night.live,
        zips=zips,
        reading=reading,
    )


def _leaks(problems: list[Problem]) -> dict[str, set[str]]:
    """Per zip, the kinds of leak found."""
    found: dict[str, set[str]] = {}
    for p in problems:
        assert p.severity == "error" and p.line, p
        assert ID_NUMBER not in p.message and MOBILE not in p.message and SECRET not in p.message
        kind = "id" if "身份证" in p.message else "mobile" if "手机" in p.message else "secret"
        found.setdefault(p.file, set()).add(kind)
    return found


def test_a_leak_in_a_segment_compressed_tonight_is_found_reading_only_the_new_segments(
    leaky_night: Night, base_url: str, confidential: dict[str, set[str]]
) -> None:
    night = leaky_night
    assert night.changed and any(p.source >= 0 for z in night.zips.values() for p in z.pieces)
    piecewise, whole = verify.Reading(), verify.Reading()
    problems = _check_night(night, base_url, confidential, night.zips, piecewise)
    # The same tree read whole, as without a layout: the same problems, at the same lines.
    assert problems == _check_night(night, base_url, confidential, None, whole)
    every = {"id", "mobile", "secret"}
    enterprises = [p for p in night.changed if "-enterprises." in p]
    assert enterprises and all(_leaks(problems)[p] == every for p in enterprises)
    assert piecewise.copied > 0 and piecewise.same > 0 and piecewise.text < whole.text / 3


def test_a_clean_night_reads_a_small_part_of_the_changed_zips(
    clean_night: Night, base_url: str, confidential: dict[str, set[str]]
) -> None:
    night = clean_night
    plain = 0
    for path in night.changed:
        with zipfile.ZipFile(night.staging / path) as z:
            plain += sum(i.file_size for i in z.infolist())
    reading = verify.Reading()
    assert _check_night(night, base_url, confidential, night.zips, reading) == []
    assert reading.files == len(night.changed) >= 2
    assert 0 < reading.text < plain / 5  # the zips hold 5 times what was read
    whole = verify.Reading()
    assert _check_night(night, base_url, confidential, None, whole) == []
    assert whole.text == plain and whole.copied == 0
    # Without the record-level claims every new piece is read whole: the claims leave a small share.
    pieces = {p: replace(z, pieces=tuple(replace(q, same=()) for q in z.pieces)) for p, z in night.zips.items()}
    piecewise = verify.Reading()
    assert _check_night(night, base_url, confidential, pieces, piecewise) == []
    assert piecewise.same == 0 and reading.same > 0
    # (How much they leave depends on how many records share the changed one's segment, that is on
    # the records' digests: the exact measure is below.)
    assert reading.text + reading.same == piecewise.text and reading.text < piecewise.text
    # Every changed row is read (never fewer: that would be a leak unchecked), and not much else.
    rows = 0
    for path in night.changed:
        lines = []
        for tree in (night.staging, night.live):
            with zipfile.ZipFile(tree / path) as z:
                lines.append(z.read(z.infolist()[0]).splitlines(keepends=True))
        rows += sum(len(new) for new, old in zip(*lines, strict=True) if new != old)
    # (Exactly the changed rows with the sample's digests before 2026-12-02; with today's, a third
    # more is read: an unchanged neighbour's claim is missed somewhere. Safe, but see the notes.)
    assert rows <= reading.text < 2 * rows


@pytest.mark.parametrize("lie", ["in place", "of a real segment"])
def test_a_leak_in_a_piece_falsely_claimed_as_a_copy_is_found(
    leaky_night: Night, base_url: str, confidential: dict[str, set[str]], lie: str
) -> None:
    """The producer's word is never taken: a piece claimed to be the live zip's bytes is compared.
    The lie: every piece compressed tonight claims to be the live zip's bytes at the same offset, or
    at a real segment of the live zip (which holds other bytes)."""
    night = leaky_night
    path = next(p for p in sorted(night.changed) if p.endswith("-enterprises.csv.zip"))
    layout = night.zips[path]
    real = next(p.source for p in layout.pieces if p.source >= 0)
    pieces = tuple(
        p if p.source >= 0 else replace(p, source=p.at if lie == "in place" else real) for p in layout.pieces
    )
    assert pieces != layout.pieces and all(p.source >= 0 for p in pieces)
    problems = _check_night(night, base_url, confidential, {**night.zips, path: replace(layout, pieces=pieces)})
    assert _leaks(problems)[path] == {"id", "mobile", "secret"}


def _tampered(path: Path, at: int, data: bytes) -> bytes:
    """The zip at `path` with `data` in place of as many bytes at `at` of its member's deflate data,
    its CRC-32 and size set right (as a careful forger would)."""
    with zipfile.ZipFile(path) as z:
        (info,) = z.infolist()
        comment = z.comment
    raw = path.read_bytes()
    start = info.header_offset + len(opendata._local_header(info.filename.encode(), 0, 0, 0, False))
    deflated = raw[start : start + info.compress_size]
    deflated = deflated[: at - start] + data + deflated[at - start + len(data) :]
    plain = zlib.decompressobj(-15).decompress(deflated)
    name, crc = info.filename.encode(), zlib.crc32(plain)
    head = opendata._local_header(name, crc, len(deflated), len(plain), False)
    assert len(head) == start - info.header_offset
    return head + deflated + opendata._central(name, crc, len(deflated), len(plain), False, comment)


def test_a_copied_piece_whose_bytes_were_changed_after_opendata_wrote_them_is_read(
    clean_night: Night, base_url: str, confidential: dict[str, set[str]], tmp_path: Path
) -> None:
    """Tonight's zip tampered with after opendata wrote it: a piece its layout calls a copy of the
    live zip now holds a row that leaks (a stored deflate block of the same length, the CRC made
    right), so the claim is wrong and the piece is read."""
    night = clean_night
    permit = next(p for p, values in confidential.items() if SECRET in values)
    path = next(p for p in sorted(night.changed) if p.endswith("-enterprises.csv.zip"))
    layout = night.zips[path]
    piece = next(p for p in layout.pieces[1:] if p.source >= 0 and p.size > 200)
    row = f"{permit},{ID_NUMBER},{MOBILE},{SECRET},"
    row += "x" * (piece.size - 5 - len(row.encode()) - 2) + "\r\n"
    stored = _stored(row.encode())
    assert len(stored) == piece.size
    staging = Path(shutil.copytree(night.staging, tmp_path / "staging", copy_function=os.link))
    _rewrite(staging / path, _tampered(night.staging / path, piece.at, stored))
    with zipfile.ZipFile(staging / path) as z:
        assert z.testzip() is None  # a zip any reader takes, with the row in it
    reading = verify.Reading()
    problems = _check_night(night, base_url, confidential, night.zips, reading, staging)
    assert _leaks(problems) == {path: {"id", "mobile", "secret"}}
    assert reading.copied > 0  # the rest still taken from the live zip: the pieces were read, not the whole


def test_a_layout_that_does_not_describe_the_zip_means_reading_it_whole(
    leaky_night: Night, base_url: str, confidential: dict[str, set[str]]
) -> None:
    night = leaky_night
    path = next(p for p in sorted(night.changed) if p.endswith("-enterprises.csv.zip"))
    layout = night.zips[path]
    whole = _leaks(_check_night(night, base_url, confidential, None))
    k, new = next((k, p) for k, p in enumerate(layout.pieces) if p.source < 0 and p.size > 10)
    half = replace(new, size=new.size // 2), replace(new, at=new.at + new.size // 2, size=new.size - new.size // 2)
    for wrong in (
        replace(layout, start=layout.start + 1),  # the pieces do not tile the member's data
        replace(layout, pieces=layout.pieces[:1] + layout.pieces[2:]),
        replace(layout, pieces=(*layout.pieces[:k], *half, *layout.pieces[k + 1 :])),  # not deflate blocks
    ):
        reading = verify.Reading()
        problems = _check_night(night, base_url, confidential, {**night.zips, path: wrong}, reading)
        assert _leaks(problems) == whole


def _raw_zip(path: Path, body: bytes, crc: int, usize: int) -> int:
    """A one-member zip as opendata writes one, around the deflate data `body`; where `body` starts."""
    name = b"yimatong-x.csv"
    head = opendata._local_header(name, crc, len(body), usize, False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body + opendata._central(name, crc, len(body), usize, False, b""))
    return len(head)


def _segmented_zip(path: Path, plains: list[bytes]) -> ZipLayout:
    """A zip as opendata writes one: each of `plains` compressed on its own, one after the other."""
    data = [opendata.compress_segment(p) for p in plains]
    crc = 0
    for plain in plains:
        crc = opendata.crc_combine(crc, zlib.crc32(plain), len(plain))
    start = _raw_zip(path, b"".join(data) + b"\x03\x00", crc, sum(map(len, plains)))
    pieces, at = [], start
    for plain, deflated in zip(plains, data, strict=True):
        pieces.append(Piece(at, len(deflated), -1, len(plain), zlib.crc32(plain), plain.count(b"\n")))
        at += len(deflated)
    return ZipLayout(path.name, start, at + 2, tuple(pieces))


def _verify_zip(root: Path, rel: str, layout: ZipLayout, reading: verify.Reading | None = None) -> list[Problem]:
    """Verify `rel` of root/staging, changed tonight, against root/live."""
    return verify.verify(
        root / "staging",
        "https://example.org/",
        changed={rel},
        previous=None,
        qr_urls=(),
        workers=1,
        paths={rel},
        live=root / "live",
        zips={rel: replace(layout, path=rel)},
        reading=reading,
    )


@pytest.mark.parametrize("cut", ["before the new piece", "after the new piece"])
def test_an_id_number_cut_between_a_copied_piece_and_a_new_one_is_found(tmp_path: Path, cut: str) -> None:
    """Pieces are read on their own; a value may not stand half in a piece that is not read. Here
    the producer cut a line across two pieces: the copied half is read too."""
    head, tail = ID_NUMBER[:10], ID_NUMBER[10:]
    header = b"\xef\xbb\xbfa,b\n"
    if cut == "before the new piece":  # last night: [header, "…,<head>", "0000,…"]; tonight the second half changed
        last = [header, b"1,x\n2," + head.encode(), b"0000,y\n"]
        tonight = [header, b"1,x\n2," + head.encode(), tail.encode() + b",y\n"]
        copied = (0, 1)
    else:  # last night: [header, "1,x\n", "<tail>,…"]; tonight the first piece ends in the head
        last = [header, b"1,x\n", tail.encode() + b",y\n"]
        tonight = [header, b"1,x\n2," + head.encode(), tail.encode() + b",y\n"]
        copied = (0, 2)
    rel = "data/yimatong-x.csv.zip"
    old = _segmented_zip(tmp_path / "live" / rel, last)
    new = _segmented_zip(tmp_path / "staging" / rel, tonight)
    pieces = tuple(replace(p, source=old.pieces[i].at) if i in copied else p for i, p in enumerate(new.pieces))
    live_bytes, new_bytes = (tmp_path / "live" / rel).read_bytes(), (tmp_path / "staging" / rel).read_bytes()
    for p in pieces:  # the claims are true: the copies are the live zip's bytes
        assert p.source < 0 or new_bytes[p.at : p.at + p.size] == live_bytes[p.source : p.source + p.size]
    reading = verify.Reading()
    problems = _verify_zip(tmp_path, rel, replace(new, pieces=pieces), reading)
    assert [(p.file, p.line, "身份证" in p.message) for p in problems] == [(rel, 3, True)]
    assert reading.copied == new.pieces[0].size  # the header, not read again


def test_a_new_piece_that_stops_inside_a_deflate_block_is_no_piece(tmp_path: Path) -> None:
    """A forged layout: tonight's deflate data is one stored block, split after its first line into a
    "new" piece and a "copy" whose bytes the live zip holds after a segment. Decompressed on its own
    the new piece is a clean line, and the sums agree; but a reader goes on inside the block into
    the bytes claimed as a copy. So the zip is read whole, and the ID number found."""
    rel = "data/yimatong-x.csv.zip"
    plain = f"1,x\n2,{ID_NUMBER},y\n".encode()
    body = _stored(plain) + b"\x00\x00\x00\xff\xff"  # an empty stored block: the sync marker segments end with
    cut = 5 + 4  # the block's header, and its first line
    start = _raw_zip(tmp_path / "staging" / rel, body + b"\x03\x00", zlib.crc32(plain), len(plain))
    first = opendata.compress_segment(b"a\n")
    live = _raw_zip(tmp_path / "live" / rel, first + body[cut:] + b"\x03\x00", 0, 0)
    rest = plain[4:]
    layout = ZipLayout(
        rel,
        start,
        start + len(body) + 2,
        (
            Piece(start, cut, -1, 4, zlib.crc32(plain[:4]), 1),
            Piece(start + cut, len(body) - cut, live + len(first), len(rest), zlib.crc32(rest), 1),
        ),
    )
    problems = _verify_zip(tmp_path, rel, layout)
    assert [(p.line, "身份证" in p.message) for p in problems] == [(2, True)]


def test_a_changed_zip_with_a_wrong_crc_is_caught_on_an_incremental_night(
    clean_night: Night, base_url: str, confidential: dict[str, set[str]], tmp_path: Path
) -> None:
    """The CRC-32 a reader checks is the whole's: the verifier combines it from the pieces'."""
    night = clean_night
    path = next(p for p in sorted(night.changed) if p.endswith("-enterprises.csv.zip"))
    raw = (night.staging / path).read_bytes()
    with zipfile.ZipFile(night.staging / path) as z:
        (info,) = z.infolist()
    wrong = (info.CRC ^ 1).to_bytes(4, "little")
    at = raw.rindex(info.CRC.to_bytes(4, "little"))  # the central directory's copy; then the local header's
    raw = raw[:14] + wrong + raw[18:at] + wrong + raw[at + 4 :]
    staging = Path(shutil.copytree(night.staging, tmp_path / "staging", copy_function=os.link))
    _rewrite(staging / path, raw)
    problems = _check_night(night, base_url, confidential, night.zips, staging=staging)
    assert [(p.file, "zip" in p.message) for p in problems] == [(path, True)]


def _stored(text: bytes) -> bytes:
    """A non-final stored deflate block: `text` as it is."""
    return b"\x00" + len(text).to_bytes(2, "little") + (len(text) ^ 0xFFFF).to_bytes(2, "little") + text


def _claims(live: ZipLayout, tonight: list[bytes], last: list[bytes]) -> list[tuple[Same, ...]]:
    """Per piece of tonight: each of its lines found in the same piece of last night, as a claim."""
    out: list[tuple[Same, ...]] = []
    for k, (new, old) in enumerate(zip(tonight, last, strict=True)):
        claims, at = [], 0
        for line in new.splitlines(keepends=True):
            if k and line in old.splitlines(keepends=True):
                p = live.pieces[k]
                claims.append(Same(at, len(line), p.at, p.size, old.index(line), live.pieces[k - 1].at))
            at += len(line)
        out.append(tuple(claims))
    return out


def _record_night(root: Path, last: list[bytes], tonight: list[bytes]) -> tuple[str, ZipLayout]:
    """Tonight's zip against last night's, piece by piece: the header copied, the rest compressed
    tonight with every line found in last night's piece claimed as a copy of it."""
    rel = "data/yimatong-x.csv.zip"
    live = _segmented_zip(root / "live" / rel, last)
    new = _segmented_zip(root / "staging" / rel, tonight)
    claims = _claims(live, tonight, last)
    pieces = (replace(new.pieces[0], source=live.pieces[0].at),)
    pieces += tuple(replace(p, same=c) for p, c in zip(new.pieces[1:], claims[1:], strict=True))
    return rel, replace(new, pieces=pieces)


_LAST = [b"a,b\n", b"1,x\n2,y\n3,z\n", b"4,u\n5,v\n6,w\n"]


def test_a_leak_in_a_changed_record_is_found_at_its_line_and_its_unchanged_neighbours_are_not_read(
    tmp_path: Path,
) -> None:
    tonight = [_LAST[0], f"1,x\n2,{ID_NUMBER}\n3,z\n".encode(), f"4,u\n5,{MOBILE}\n6,w\n".encode()]
    rel, layout = _record_night(tmp_path, _LAST, tonight)
    assert [len(p.same) for p in layout.pieces] == [0, 2, 2]

    reading = verify.Reading()
    problems = _verify_zip(tmp_path, rel, layout, reading)
    assert [(p.line, "身份证" in p.message, "手机" in p.message) for p in problems] == [
        (3, True, False),
        (6, False, True),
    ]
    # Read: the changed lines; the rest of each piece is found equal to last night's text.
    assert reading.text == len(tonight[1][4:-4]) + len(tonight[2][4:-4])
    assert reading.same == sum(map(len, tonight[1:])) - reading.text


def test_a_claimed_line_that_was_the_end_of_a_longer_live_line_is_read(tmp_path: Path) -> None:
    """Last night, a line ran from one segment into the next ("2,9"); tonight "9" stands alone at a
    piece's start. Equal bytes, but checked last night only as part of the longer line: read again."""
    last = [_LAST[0], b"1,x\n2,", b"9\n4,u\n"]
    tonight = [_LAST[0], b"1,x\n2,y\n", b"9\n4,u\n"]
    rel, layout = _record_night(tmp_path, last, tonight)
    assert [[c.start for c in p.same] for p in layout.pieces] == [[], [0], [0, 2]]
    reading = verify.Reading()
    assert _verify_zip(tmp_path, rel, layout, reading) == []
    assert (reading.same, reading.text) == (len(b"1,x\n4,u\n"), len(b"2,y\n9\n"))


@pytest.mark.parametrize("forgery", ["other bytes", "past the live text", "no live segment there"])
def test_a_record_claimed_unchanged_that_changed_is_read(tmp_path: Path, forgery: str) -> None:
    """A record claimed unchanged whose bytes differ from the live text (an ID number where last
    night's row had other characters, as many), or a claim naming no live text: the stretch is
    checked, at its line, never trusted."""
    last = [_LAST[0], _LAST[1], b"4,u\n5,v\n6," + b"w" * len(ID_NUMBER) + b"\n"]
    tonight = [_LAST[0], _LAST[1], f"4,u\n5,v\n6,{ID_NUMBER}\n".encode()]
    rel, layout = _record_night(tmp_path, last, tonight)
    true = layout.pieces[2].same
    assert [c.start for c in true] == [0, 4]  # the changed line is not claimed: the forger adds it
    lie = true[1]._replace(start=8, size=len(tonight[2]) - 8, offset=8)
    if forgery == "past the live text":
        lie = lie._replace(offset=9)
    elif forgery == "no live segment there":
        lie = lie._replace(source=lie.source + 1)
    layout = replace(layout, pieces=(*layout.pieces[:2], replace(layout.pieces[2], same=(*true, lie))))
    reading = verify.Reading()
    problems = _verify_zip(tmp_path, rel, layout, reading)
    assert [(p.line, "身份证" in p.message) for p in problems] == [(7, True)]
    assert reading.same == len(tonight[1]) + len(b"4,u\n5,v\n")  # the true claims still hold
    assert reading.text == len(tonight[2]) - len(b"4,u\n5,v\n")


def test_a_copy_claimed_from_inside_a_live_segment_is_read(tmp_path: Path) -> None:
    """Bytes the live zip holds as the text of a segment (here: a stored block's content) mean
    something else where a piece starts: they are a copy only where a segment of the live zip starts."""
    rel = "data/yimatong-x.csv.zip"
    sync = b"\x00\x00\x00\xff\xff"
    inner = _stored(f"1,{ID_NUMBER},y\n".encode()) + sync  # deflate data that reads as the leak
    live_body = _stored(inner) + sync + b"\x03\x00"  # the live zip's one segment: `inner` as text
    live = _raw_zip(tmp_path / "live" / rel, live_body, zlib.crc32(inner), len(inner))
    plain = f"1,{ID_NUMBER},y\n".encode()
    start = _raw_zip(tmp_path / "staging" / rel, inner + b"\x03\x00", zlib.crc32(plain), len(plain))
    claim = Piece(start, len(inner), live + 5, len(plain), zlib.crc32(plain), 1)
    layout = ZipLayout(rel, start, start + len(inner) + 2, (claim,))
    problems = _verify_zip(tmp_path, rel, layout)
    assert [(p.line, "身份证" in p.message) for p in problems] == [(1, True)]
