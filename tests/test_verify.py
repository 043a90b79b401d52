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
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp

from yimatong import signs, urls, verify
from yimatong.errors import Problem
from yimatong.load import iter_views, read_model
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


def test_credit_codes_permit_numbers_hashes_and_the_hotline_are_not_personal_data() -> None:
    text = (
        "91451322156251412N001P 110105194912310021001P 12345 0771-5551234 "
        "sha256 e3bd2e963dba3c4376caa0e04a2cab24c6474513912345678a 13912345678.5 x8613912345678"
    )
    assert verify.id_numbers(text) == [] and verify.mobile_numbers(text) == []
    assert verify.id_numbers(f"（{ID_NUMBER}）") == [ID_NUMBER]
    assert verify.id_numbers("110105194912310021") == []  # a wrong check digit: not an ID number
    assert verify.mobile_numbers("电话:+86 139-1234-5678。") != []
