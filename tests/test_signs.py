"""The signs, checked the way a print shop and a phone would.

A print shop opens the PDF (pypdf): page and trim boxes in mm, DeviceCMYK colours with the annex's
values, embedded subset fonts, the texts in order and inside the sign. A phone looks at it
(pypdfium2 rasterises at print scale, zxing-cpp decodes): the QR code must yield the permanent
address of a page that exists in the built site.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import datetime as dt
import hashlib
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import qrcode
import zxingcpp
from pypdf import PdfReader
from pypdf.generic import ContentStream

from yimatong import facts, signs, urls
from yimatong.identifiers import city_code
from yimatong.load import Loaded, iter_views
from yimatong.manifest import Manifest, Reuse, catalog
from yimatong.pipeline import BuildResult, build

from .conftest import SAMPLE

MM = signs.MM_PT
DPI = 150  # print scale for the QR check: a sign is read at arm's length, not under a loupe


# --- fixtures --------------------------------------------------------------------------------


@dataclasses.dataclass
class Rendered:
    loaded: Loaded
    staging: Path
    cache: Path
    site_out: Path  # the built sample site (pages), for "the QR's page exists"
    stats: signs.SignStats
    permits: list[signs.PermitSigns]

    @property
    def contents(self) -> list[signs.SignContent]:
        return [c for p in self.permits for c in p.contents]


def _pick(permits: list[signs.PermitSigns]) -> list[signs.PermitSigns]:
    """A few permits that between them have every sign kind: the gate sign, air and water outlets,
    a solid-waste facility; the longest name; and one permit not in force (no signs)."""
    chosen: list[signs.PermitSigns] = []
    kinds_needed = {"air", "water", "solid_waste"}
    for p in permits:
        kinds = {o.kind for o in p.outlets}
        if p.contents and kinds & kinds_needed:
            chosen.append(p)
            kinds_needed -= kinds
        if not kinds_needed:
            break
    assert not kinds_needed, f"the sample lacks outlet kinds {kinds_needed}"
    longest = max((p for p in permits if p.contents), key=lambda p: len(p.name))
    unsigned = next(p for p in permits if not p.contents)
    return [*chosen, *(p for p in (longest, unsigned) if p not in chosen)]


@pytest.fixture(scope="session")
def rendered(sample_build: tuple[BuildResult, Path], tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    result, site_out = sample_build
    loaded = result.loaded
    picked = _pick(signs.plan(loaded))
    wanted = {p.permit_no for p in picked}
    subset = dataclasses.replace(loaded, entries=[e for e in loaded.entries if e.permit_no in wanted])
    base = tmp_path_factory.mktemp("signs")
    staging, cache = base / "staging", base / "cache"
    stats = signs.render_signs(subset, staging, cache, workers=1)
    return Rendered(subset, staging, cache, site_out, stats, signs.plan(subset))


@pytest.fixture(scope="session")
def renderer(rendered: Rendered) -> signs.Renderer:
    return signs.Renderer(signs.prepare_font(rendered.cache))


def _signs(rendered: Rendered) -> Iterator[tuple[signs.SignContent, Path, Path]]:
    for content in rendered.contents:
        trim, printed = signs.sign_paths(content)
        yield content, rendered.staging / trim, rendered.staging / printed


# --- PDF inspection helpers ------------------------------------------------------------------


def _operations(reader: PdfReader, obj: Any) -> Iterator[tuple[list[Any], bytes]]:
    """Content-stream operations of a page, and of the form XObjects it draws."""
    yield from ContentStream(obj.get_contents() if hasattr(obj, "get_contents") else obj, reader).operations
    for xobject in obj.get("/Resources", {}).get("/XObject", {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            yield from _operations(reader, xobject)


def _colours(path: Path) -> dict[str, set[tuple[float, ...]]]:
    """Every colour set on the page, by kind ('fill' or 'stroke' in DeviceCMYK; 'other' for any
    other colour operator or space)."""
    reader = PdfReader(path)
    found: dict[str, set[tuple[float, ...]]] = {"fill": set(), "stroke": set(), "other": set()}
    space = {"fill": "/DeviceGray", "stroke": "/DeviceGray"}
    for operands, op in _operations(reader, reader.pages[0]):
        name = op.decode("latin-1")
        kind = "stroke" if name.isupper() or name in ("SC", "SCN") else "fill"
        if name in ("cs", "CS"):
            space[kind] = str(operands[0])
        elif name in ("sc", "scn", "SC", "SCN"):
            values = tuple(round(float(v), 4) for v in operands)
            found[kind if space[kind] == "/DeviceCMYK" and len(values) == 4 else "other"].add(values)
        elif name in ("k", "K"):
            found[kind].add(tuple(round(float(v), 4) for v in operands))
        elif name in ("g", "G", "rg", "RG"):
            found["other"].add(tuple(float(v) for v in operands))
    return found


def _fonts(path: Path) -> list[tuple[str, bool]]:
    """(BaseFont, embedded) of every font the page uses."""
    reader = PdfReader(path)
    out = []
    for font in reader.pages[0]["/Resources"]["/Font"].values():
        font = font.get_object()
        descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
        descriptor = descendant["/FontDescriptor"].get_object()
        embedded = any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        out.append((str(font["/BaseFont"]), embedded))
    return out


@dataclasses.dataclass
class Char:
    ch: str
    box: tuple[float, float, float, float]  # left, bottom, right, top in pt, origin at the page's lower left
    size: float  # font size in pt, as drawn (the text matrix and the page's transformation applied)


def _chars(path: Path) -> list[Char]:
    pdf = pdfium.PdfDocument(path)
    page = pdf[0]
    text = page.get_textpage()
    out = []
    for i in range(text.count_chars()):
        ch = text.get_text_range(i, 1)
        if ch.strip():
            matrix = pdfium_c.FS_MATRIX()
            pdfium_c.FPDFText_GetMatrix(text.raw, i, ctypes.byref(matrix))
            scale = abs(matrix.a * matrix.d - matrix.b * matrix.c) ** 0.5
            out.append(Char(ch, text.get_charbox(i), pdfium_c.FPDFText_GetFontSize(text.raw, i) * scale))
    text.close()
    page.close()
    pdf.close()
    return out


def _decode(path: Path, dpi: int = DPI) -> list[Any]:
    pdf = pdfium.PdfDocument(path)
    page = pdf[0]
    image = page.render(scale=dpi / 72, grayscale=True).to_pil()
    page.close()
    pdf.close()
    return list(zxingcpp.read_barcodes(image))


def _compact(s: str) -> str:
    return re.sub(r"\s+", "", s)


# --- boxes, colours, fonts -------------------------------------------------------------------


def test_every_sign_kind_was_rendered(rendered: Rendered) -> None:
    formats = {c.format for c in rendered.contents}
    assert formats == set(signs.FORMATS)
    kinds = {o.kind for p in rendered.permits if p.contents for o in p.outlets}
    assert kinds >= {"air", "water", "solid_waste"}
    outlet_codes = {(c.permit_no, c.outlet) for c in rendered.contents if c.outlet}
    wanted = {(p.permit_no, o.code) for p in rendered.permits if p.contents for o in p.outlets}
    assert outlet_codes == wanted, "every outlet and solid-waste facility gets its signs"
    assert rendered.stats.rendered == len(rendered.contents) and rendered.stats.reused == 0


@pytest.mark.parametrize("fmt", signs.FORMATS.values(), ids=list(signs.FORMATS))
def test_page_boxes_are_the_annex_sizes(rendered: Rendered, fmt: signs.Format) -> None:
    w, h, bleed = fmt.width_mm, fmt.height_mm, signs.BLEED_MM
    for content, trim, printed in _signs(rendered):
        if content.fmt is not fmt:
            continue
        page = PdfReader(trim).pages[0]
        for box in (page.mediabox, page.cropbox, page.trimbox, page.bleedbox):
            assert [round(float(v) / MM, 2) for v in box] == [0, 0, w, h]
        page = PdfReader(printed).pages[0]
        assert [round(float(v) / MM, 2) for v in page.trimbox] == [0, 0, w, h]
        assert [round(float(v) / MM, 2) for v in page.bleedbox] == [-bleed, -bleed, w + bleed, h + bleed]
        media = [round(float(v) / MM, 2) for v in page.mediabox]
        assert media[0] < -bleed and media[1] < -bleed and media[2] > w + bleed and media[3] > h + bleed, (
            "room for marks"
        )


def test_colours_are_device_cmyk_with_the_annex_values(rendered: Rendered) -> None:
    green, white, black = (0.8, 0.29, 1.0, 0.0), (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    for _, trim, printed in _signs(rendered):
        for path in (trim, printed):
            colours = _colours(path)
            assert not colours["other"], f"{path.name}: colours outside DeviceCMYK {colours['other']}"
            assert colours["fill"] == {green, white, black}, path.name
        # The print variant adds crop marks in registration colour (on every plate), nothing else.
        assert _colours(printed)["stroke"] == {(1.0, 1.0, 1.0, 1.0)}


def test_fonts_are_embedded_subsets_of_the_heavy_cjk_sans(rendered: Rendered) -> None:
    for _, trim, printed in _signs(rendered):
        for path in (trim, printed):
            fonts = _fonts(path)
            assert fonts, path.name
            for name, embedded in fonts:
                assert embedded, f"{path.name}: {name} not embedded"
                assert re.fullmatch(r"/[A-Z]{6}\+Noto-Sans-CJK-SC(-Sign)?-Heavy", name), name


def test_a_sign_pdf_is_small(rendered: Rendered) -> None:
    # The prepared face keeps a sign's font subset small (WeasyPrint keeps glyph ids; with the
    # system's 65,000-glyph CFF face every PDF would carry ~140 kB of empty glyph slots).
    for _, trim, printed in _signs(rendered):
        assert trim.stat().st_size < 40_000 and printed.stat().st_size < 40_000, trim.name


# --- texts -----------------------------------------------------------------------------------


def test_texts_in_order_at_the_specified_sizes_inside_the_sign(rendered: Rendered) -> None:
    for content, trim, _ in _signs(rendered):
        fmt = content.fmt
        sign = signs.layout(content, signs.measurer(signs.prepare_font(rendered.cache)))
        chars = _chars(trim)
        text = "".join(c.ch for c in chars)
        # In order, top to bottom: name, program / outlet name + code, the lines below the code.
        position = 0
        for expected in content.texts():
            found = text.find(_compact(expected), position)
            assert found >= 0, f"{trim.name}: {expected!r} missing or out of order in {text!r}"
            position = found + len(_compact(expected))
        qr_top = (fmt.height_mm - fmt.qr_top_mm) * MM  # PDF y grows upwards
        qr_bottom = qr_top - fmt.qr_mm * MM
        w, h = fmt.width_mm * MM, fmt.height_mm * MM
        for c in chars:
            left, bottom, right, top = c.box
            assert 0 < left < right < w and 0 < bottom < top < h, f"{trim.name}: {c.ch} outside the sign"
            assert bottom > qr_top or top < qr_bottom, f"{trim.name}: {c.ch} collides with the QR code"
        # Sizes: as specified, or (long texts only) smaller, never larger.
        placed = [*sign.head, *sign.foot]
        specs = [fmt.head_pt[0], fmt.head_pt[1], *[fmt.foot_pt] * len(sign.foot)]
        sizes = {round(c.size, 1) for c in chars}
        for item, spec in zip(placed, specs, strict=True):
            assert item.pt <= spec
            assert round(item.pt, 1) in sizes, f"{trim.name}: no text at {item.pt} pt ({sizes})"


def test_names_up_to_26_characters_keep_the_specified_size(rendered: Rendered) -> None:
    # Two lines of 13 full-width characters fit every format at its specified size (the gate's
    # 410 mm at 85 pt is the tightest): only longer names shrink.
    measure = signs.measurer(signs.prepare_font(rendered.cache))
    names = [c.name for c in rendered.contents] + ["广西壮族自治区崇左市蓝海化学实业集团股份有限"]
    for name in names:
        for fmt in signs.FORMATS.values():
            placed = signs.fit(name, "", fmt.head_pt[0], fmt.text_width_mm, 2, measure)
            assert placed.pt == fmt.head_pt[0] or len(name) > 26, (name, fmt.key, placed)
    for content in rendered.contents:
        sign = signs.layout(content, measure)
        assert all(p.pt == content.fmt.foot_pt for p in sign.foot), sign.foot


def test_sign_texts_come_from_the_public_view(rendered: Rendered) -> None:
    regions = {c.code: c for c in rendered.loaded.regions.cities}
    site = rendered.loaded.site
    views = {e.permit_no: v for e, v in iter_views(rendered.loaded)}
    for content in rendered.contents:
        view = views[content.permit_no]
        assert content.name == view["enterprise"]["name"]
        issued = view["permit"]["issued"]
        date = f"{issued[:4]}年{issued[5:7]}月"
        if content.outlet is None:
            assert content.second == site.program_name
            assert content.foot == (f"{site.authority}监制", f"举报投诉电话：{site.hotline}", date)
        else:
            bureau = regions[view["enterprise"]["region"][:4] + "00"].bureau
            outlet = next(o for o in view["permit"]["outlets"] if o["code"] == content.outlet)
            assert (content.second, content.second_tail) == (outlet["name"], outlet["code"])
            assert content.foot == (f"{bureau}监制",) and content.foot_tail == date


# --- the QR code -----------------------------------------------------------------------------


def _page_exists(site_out: Path, url: str, base_url: str) -> Path:
    assert url.startswith(base_url.upper())
    path = url[len(base_url) :]
    assert re.fullmatch(r"P/[0-9A-Z]{22}/([A-Z]{2}[0-9]{3}/)?", path), path
    return site_out / path / "index.html"


def test_qr_codes_decode_to_pages_that_exist(rendered: Rendered) -> None:
    base = rendered.loaded.site.base_url
    outlet_pages = any(rendered.site_out.glob("P/*/*/index.html"))
    for content, trim, printed in _signs(rendered):
        if content.outlet is None:
            expected = urls.qr_url(base, urls.enterprise_path(content.permit_no))
        else:
            expected = urls.qr_url(base, urls.outlet_path(content.permit_no, content.outlet))
        for path in (trim, printed):
            codes = _decode(path)
            assert [c.text for c in codes] == [expected], path.name
        code = codes[0]
        assert code.format == zxingcpp.BarcodeFormat.QRCode and code.ec_level == "H"
        page = _page_exists(rendered.site_out, code.text, base)
        assert (rendered.site_out / urls.enterprise_path(content.permit_no) / "index.html").exists()
        if content.outlet is None or outlet_pages:
            # TODO(outlet pages): once the outlet pages are always built, drop `outlet_pages` and
            # require the outlet's own page here too.
            assert page.exists(), f"{code.text} → {page} is not in the built site"


def test_qr_uses_alphanumeric_mode_and_the_smallest_version(rendered: Rendered) -> None:
    for content, trim, _ in _signs(rendered):
        qr = signs.qr_code(content.qr_url)
        decoded = _decode(trim)[0]
        assert int(decoded.extra["Version"]) == qr.version
        # The same URL as bytes would need a larger (finer) symbol: the encoder used alphanumeric.
        as_bytes = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_H)
        as_bytes.add_data(qrcode.util.QRData(content.qr_url.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
        as_bytes.make(fit=True)
        assert qr.version < as_bytes.version
        assert content.qr_url == content.qr_url.upper()


def test_qr_size_and_quiet_zone(rendered: Rendered) -> None:
    dpi = DPI
    for content, trim, _ in _signs(rendered):
        fmt = content.fmt
        qr = signs.qr_code(content.qr_url)
        corners = _decode(trim, dpi)[0].position
        xs = [p.x for p in (corners.top_left, corners.top_right, corners.bottom_right, corners.bottom_left)]
        ys = [p.y for p in (corners.top_left, corners.top_right, corners.bottom_right, corners.bottom_left)]
        module = fmt.qr_mm / qr.box  # the specified square holds the symbol and 4 modules each side
        symbol_mm = (max(xs) - min(xs)) / dpi * 25.4
        # zxing reports the centres of the outer modules' pixels: allow a module and a pixel.
        assert abs(symbol_mm - qr.modules * module) < module + 25.4 / dpi, (trim.name, symbol_mm)
        left_mm = min(xs) / dpi * 25.4
        assert abs(left_mm - (fmt.qr_left_mm + signs.QR_QUIET * module)) < module, trim.name
        top_mm = min(ys) / dpi * 25.4
        assert abs(top_mm - (fmt.qr_top_mm + signs.QR_QUIET * module)) < module, trim.name


def test_outline_path_covers_exactly_the_dark_modules() -> None:
    rng = random.Random(7)
    for _ in range(100):
        n = rng.randint(1, 9)
        matrix = [[rng.random() < 0.5 for _ in range(n)] for _ in range(n)]
        path = signs.outline_path(matrix, 3)
        for y in range(n):
            for x in range(n):
                assert (_winding(path, x + 3.5, y + 3.5) != 0) == matrix[y][x], (matrix, path)


def _winding(path: str, px: float, py: float) -> int:
    """Nonzero winding number of a point for an M/H/V/Z path (a ray to the right)."""
    total = 0
    for sub in re.findall(r"M[^M]*", path):
        points: list[tuple[int, int]] = []
        x = y = 0
        for cmd, a, b in re.findall(r"([MHVZ])(-?\d+)?(?: (-?\d+))?", sub):
            if cmd == "M":
                x, y = int(a), int(b)
            elif cmd == "H":
                x = int(a)
            elif cmd == "V":
                y = int(a)
            else:
                continue
            points.append((x, y))
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
            if x1 == x2 and x1 > px and (y1 <= py < y2 or y2 <= py < y1):
                total += 1 if y2 > y1 else -1
    return total


# --- fitting long texts ----------------------------------------------------------------------


def _fixed(width_em: float = 1.0) -> signs.Measure:
    return lambda text: sum(width_em if ord(ch) > 0x2000 else 0.5 for ch in text)


def test_fit_keeps_short_texts_on_one_line_at_the_specified_size() -> None:
    placed = signs.fit("大海粮油工业（防城港）有限公司", "", 36, 194, 2, _fixed())
    assert placed.lines == ("大海粮油工业（防城港）有限公司",) and placed.pt == 36


def test_fit_wraps_to_two_lines_before_shrinking_and_prefers_natural_breaks() -> None:
    placed = signs.fit("大海粮油工业（防城港）有限公司", "", 85, 410, 2, _fixed())
    assert placed.lines == ("大海粮油工业（防城港）", "有限公司") and placed.pt == 85


def test_fit_shrinks_only_when_two_lines_are_not_enough() -> None:
    name = "广西" + "很长的名字" * 10 + "有限公司"
    placed = signs.fit(name, "", 85, 410, 2, _fixed())
    assert len(placed.lines) == 2 and "".join(placed.lines) == name
    assert placed.pt < 85
    widest = max(len(line) for line in placed.lines)
    assert widest * placed.pt <= 410 * MM  # each line fits the text width


def test_fit_never_breaks_inside_codes_or_before_closing_marks() -> None:
    text = "1#锅炉废气（脱硫后）排放口ABC123号"
    for i in signs.break_points(text):
        assert text[i] not in "）" and text[i - 1] not in "（"
        assert not (text[i - 1].isalnum() and text[i].isalnum() and text[i - 1].isascii() and text[i].isascii())


def test_fit_keeps_the_tail_on_the_last_line() -> None:
    placed = signs.fit("一般工业固体废物贮存场（含危险废物暂存间）及其配套设施", "TS001", 18, 97, 2, _fixed())
    assert len(placed.lines) == 2 and placed.tail == "TS001"
    gap = signs.TAIL_GAP_EM
    assert (len(placed.lines[-1]) + gap + 2.5) * placed.pt <= 97 * MM


def test_one_line_items_shrink_to_fit() -> None:
    placed = signs.fit("某某某某某某某某某某某某某某某某某某生态环境局监制", "2026年06月", 16, 97, 1, _fixed())
    assert len(placed.lines) == 1 and placed.pt < 16


@pytest.mark.parametrize("fmt", signs.FORMATS.values(), ids=list(signs.FORMATS))
def test_names_of_any_length_fit_without_overflow_or_collision(
    rendered: Rendered, renderer: signs.Renderer, fmt: signs.Format, tmp_path: Path
) -> None:
    base = next(c for c in rendered.contents if c.fmt is fmt)
    cases = [
        "广" * 1,
        "广西壮族自治区崇左市蓝海化学实业集团股份有限公司",
        "广西" + "很长的名字" * 39 + "有限公司",  # the schema's limit: 200 characters
        "GUANGXI INTERNATIONAL" * 9,  # Latin words: never broken inside, shrunk instead
        "广西玥㙟化工有限公司",  # characters outside GB 2312 fall back to the system's face
    ]
    for i, name in enumerate(cases):
        second = "一般工业固体废物贮存场（含危险废物暂存间）及其配套设施" if base.outlet else base.second
        content = dataclasses.replace(base, name=name, second=second)
        trim, _ = renderer.render([content])[0]
        path = tmp_path / f"{i}.pdf"
        path.write_bytes(trim)
        chars = _chars(path)
        assert _compact(name) in "".join(c.ch for c in chars)
        qr_top = (fmt.height_mm - fmt.qr_top_mm) * MM
        for c in chars[: len(_compact(name))]:
            left, bottom, right, top = c.box
            assert left > 0 and right < fmt.width_mm * MM, f"{name[:20]}: overflows"
            assert bottom > qr_top and top < fmt.height_mm * MM, f"{name[:20]}: collides or clips"
        assert [c.text for c in _decode(path)] == [content.qr_url]


# --- determinism and the cache ---------------------------------------------------------------


def test_a_sign_does_not_depend_on_its_batch(rendered: Rendered, renderer: signs.Renderer) -> None:
    contents = rendered.contents[:6]
    together = renderer.render(contents)
    alone = [renderer.render([c])[0] for c in contents]
    assert together == alone
    fresh = signs.Renderer(renderer.font)  # a new font configuration: same bytes
    assert fresh.render(contents[:1]) == together[:1]


def test_pdfs_are_deterministic_and_reused_from_the_cache(rendered: Rendered, tmp_path: Path) -> None:
    again = signs.render_signs(rendered.loaded, tmp_path / "again", rendered.cache, workers=1)
    assert again.rendered == 0 and again.reused == len(rendered.contents)
    assert again.written == rendered.stats.written
    for path in sorted(rendered.staging.rglob("*.pdf")):
        twin = tmp_path / "again" / path.relative_to(rendered.staging)
        assert twin.read_bytes() == path.read_bytes(), path.name
    # The same signs rendered with an empty cache: byte-identical. (The prepared face is copied
    # over to save its 5 s; it is built with fixed timestamps, so it is deterministic too.)
    font = signs.prepare_font(rendered.cache)
    (tmp_path / "cache" / "signs").mkdir(parents=True)
    shutil.copy(font, tmp_path / "cache" / "signs" / font.name)
    cold = signs.render_signs(rendered.loaded, tmp_path / "cold", tmp_path / "cache", workers=1)
    assert cold.rendered == len(rendered.contents)
    for path in sorted(rendered.staging.rglob("*.pdf")):
        assert (tmp_path / "cold" / path.relative_to(rendered.staging)).read_bytes() == path.read_bytes(), path.name


def test_worker_processes_render_the_same_bytes(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signs, "PARALLEL_FROM", 0)  # the pool even for a handful of signs
    font = signs.prepare_font(rendered.cache)
    renderer_id = signs.renderer_version(font)
    todo = [(c, signs.sign_key(c, renderer_id)) for c in rendered.contents[:4]]
    done: list[int] = []
    signs.render_missing(todo, font, tmp_path, workers=2, progress=done.append)
    assert sum(done) == len(todo)
    theirs, ours = signs.SignCache(tmp_path), signs.SignCache(rendered.cache)
    for _, key in todo:
        for a, b in zip(theirs.paths(key), ours.paths(key), strict=True):
            assert a.read_bytes() == b.read_bytes()


def test_only_signs_whose_content_changed_are_rendered_again(rendered: Rendered, tmp_path: Path) -> None:
    site = rendered.loaded.site.model_copy(update={"hotline": "12369"})  # shown on gate signs only
    changed = dataclasses.replace(rendered.loaded, site=site)
    cache = tmp_path / "cache"
    shutil.copytree(rendered.cache, cache)  # a copy: the session's cache stays as it was
    stats = signs.render_signs(changed, tmp_path / "out", cache, workers=1)
    gates = sum(1 for c in rendered.contents if c.outlet is None)
    assert (stats.rendered, stats.reused) == (gates, len(rendered.contents) - gates)
    gate = next(c for c in signs.plan(changed) if c.contents).contents[0]
    assert "举报投诉电话：12369" in "".join(ch.ch for ch in _chars(tmp_path / "out" / signs.sign_paths(gate)[0]))


def test_the_cache_key_is_the_same_in_another_process(rendered: Rendered) -> None:
    # Keys must not depend on anything per-process (string hashing, set order, object ids).
    font = signs.prepare_font(rendered.cache)
    code = (
        "import sys; from pathlib import Path; from yimatong import signs;"
        "print(signs.renderer_version(Path(sys.argv[1])))"
    )
    other = subprocess.run([sys.executable, "-c", code, str(font)], check=True, capture_output=True, text=True)
    assert other.stdout.strip() == signs.renderer_version(font)


def test_the_renderer_knows_the_libraries_weasyprint_uses() -> None:
    # The versions are read without importing WeasyPrint; they must be the ones it reports, or a
    # new Pango or WeasyPrint would not render the signs again.
    import pypdf
    import weasyprint
    from weasyprint.text.ffi import pango

    versions = signs._library_versions()
    assert f"weasyprint {weasyprint.__version__};" in versions
    assert f"pypdf {pypdf.__version__};" in versions
    assert f"pango {pango.pango_version()};" in versions
    assert "harfbuzz ?" not in versions


def test_pdf_metadata_is_fixed(rendered: Rendered) -> None:
    for content, trim, printed in _signs(rendered):
        for path in (trim, printed):
            reader = PdfReader(path)
            info = reader.metadata
            assert info is not None and "/CreationDate" not in info and "/ModDate" not in info
            assert info["/Title"].startswith(content.name)
            ids = reader.trailer["/ID"]
            assert len(ids) == 2 and ids[0] == ids[1]
        assert PdfReader(trim).trailer["/ID"] != PdfReader(printed).trailer["/ID"]


# --- what the site publishes -----------------------------------------------------------------


def _listed_pieces(staging: Path) -> dict[tuple[str, str], list[tuple[str, str, int]]]:
    """The pieces each county page lists, by (region, format key): (site path, holders, signs) each,
    in the page's order."""
    out = {}
    for page in staging.glob("signs/*/*/index.html"):
        html = page.read_text(encoding="utf-8")
        for fmt, table in re.findall(r'<h3 id="print-([^"]+)">.*?<table>(.*?)</table>', html, re.S):
            rows = re.findall(r'<tr><th scope="row"[^>]*>([^<]+)</th><td>(\d+) 块</td><td><a href="([^"]+)"', table)
            site = staging.resolve()
            out[(page.parent.name, fmt)] = [
                ((page.parent / href).resolve().relative_to(site).as_posix(), span, int(n)) for span, n, href in rows
            ]
    return out


def _published_pieces(staging: Path) -> set[str]:
    """The volume pieces in staging: the PDFs of the city folders, signs/<city>/."""
    found = (p.relative_to(staging).as_posix() for p in staging.glob("signs/*/*.pdf"))
    return {p for p in found if re.fullmatch(r"signs/\d{6}/[^/]+", p)}


def _as_listed(permits: list[signs.PermitSigns]) -> dict[tuple[str, str], list[signs.SignContent]]:
    """Each county's signs by format, in the order of its page: holders by name then permit number,
    a holder's signs by outlet."""
    out: dict[tuple[str, str], list[signs.SignContent]] = defaultdict(list)
    for p in sorted(permits, key=lambda p: (p.name, p.permit_no)):
        for c in sorted(p.contents, key=lambda c: c.outlet or ""):
            out[(p.region, c.format)].append(c)
    return out


def _piece_name(path: str) -> str:
    return path.rsplit("-print-", 1)[1].removesuffix(".pdf")


def _check_volumes(staging: Path, permits: list[signs.PermitSigns]) -> dict[tuple[str, str], list[str]]:
    """Every county page lists its pieces per format, and they hold, in the page's order, every print
    sign of the county and format once, in the listing's order, whole holders each; a piece is
    named by the permit number of its last holder (or is the county's final piece). Returns the
    pieces' paths."""
    listed, expected = _listed_pieces(staging), _as_listed(permits)
    assert listed.keys() == expected.keys(), "a volume per county and format it has signs of"
    assert all(listed.values()), "each in pieces, listed"
    assert {path for pieces in listed.values() for path, _, _ in pieces} == _published_pieces(staging)
    for (region, key), pieces in listed.items():
        members, fmt, at = expected[(region, key)], signs.FORMATS[key], 0
        for i, (path, span, count) in enumerate(pieces):
            assert re.fullmatch(rf"signs/\d{{6}}/{region}-(gate|outlet)-{fmt.slug}-print-[0-9A-Za-z]+\.pdf", path)
            mine = members[at : at + count]
            at += count
            reader = PdfReader(staging / path)
            assert len(reader.pages) == count and count > 0
            assert [item.title for item in reader.outline] == [signs._bookmark(c) for c in mine], path
            first, last = mine[0], mine[-1]
            assert span == (first.name if first.permit_no == last.permit_no else f"{first.name} 至 {last.name}")
            assert reader.metadata is not None and reader.metadata["/Title"].endswith(f"印刷版（出血 3 mm）：{span}")
            assert _piece_name(path) == last.permit_no or (i == len(pieces) - 1 and _piece_name(path) == "last")
            if i + 1 < len(pieces):
                assert members[at].permit_no != last.permit_no, "a holder's signs are in one piece"
            for page in reader.pages:
                assert [round(float(v) / MM, 2) for v in page.trimbox] == [0, 0, fmt.width_mm, fmt.height_mm]
                assert round(float(page.bleedbox[0]) / MM, 2) == -signs.BLEED_MM
            assert reader.trailer["/ID"][0]
        assert at == len(members), "the pieces' pages add up to the county's signs of the format"
    return {k: [path for path, _, _ in pieces] for k, pieces in listed.items()}


def test_county_volumes_hold_every_print_variant(rendered: Rendered) -> None:
    _check_volumes(rendered.staging, rendered.permits)


class _Views:
    """A record store in memory: what the sign stage reads of one (a view by digest)."""

    def __init__(self, views: dict[str, dict[str, Any]]) -> None:
        self.views = views

    def get(self, digest: str) -> dict[str, Any]:
        return copy.deepcopy(self.views[digest])


def _renamed(loaded: Loaded, permit_no: str, name: str) -> Loaded:
    """Tonight's export: one record's enterprise renamed (a new file, so a new digest)."""
    views = {}
    entries = []
    for e in loaded.entries:
        view = loaded.store.get(e.digest)
        if e.permit_no == permit_no:
            view["enterprise"]["name"] = name
            e = dataclasses.replace(e, digest=hashlib.sha256(name.encode()).hexdigest(), name=name)
        views[e.digest] = view
        entries.append(e)
    return dataclasses.replace(loaded, entries=entries, store=_Views(views))


def test_a_night_with_one_renamed_enterprise_redoes_only_its_signs(rendered: Rendered, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(rendered.cache, cache)  # a copy: the session's cache stays as it was
    first, second = tmp_path / "first", tmp_path / "second"
    reuse = Reuse(None, None, first)
    signs.render_signs(rendered.loaded, first, cache, reuse=reuse, workers=1)
    made = catalog(first, None, None, reuse.keys, reuse.dates)
    live = Manifest(made.outputs, bundles=made.bundles)

    target = next(p for p in rendered.permits if p.contents)
    tonight = _renamed(rendered.loaded, target.permit_no, "改名后的测试环保科技有限公司")
    stats = signs.render_signs(tonight, second, cache, reuse=Reuse(first, live, second), workers=1)

    assert stats.planned == 1, "only the changed record's view is read"
    assert (stats.rendered, stats.reused) == (len(target.contents), len(rendered.contents) - len(target.contents))
    # The volume pieces that hold its signs: one per format it has, merged again under the same names.
    old = {signs._bookmark(c) for c in target.contents}
    pieces = _published_pieces(first)
    held = {p for p in pieces if old & {item.title for item in PdfReader(first / p).outline}}
    assert len(held) == len({c.format for c in target.contents}) and stats.volumes == len(held)

    def same(path: str) -> bool:
        return (first / path).stat().st_ino == (second / path).stat().st_ino

    for permit in rendered.permits:
        for content in permit.contents:
            for path in signs.sign_paths(content):
                assert same(path) == (permit is not target), path
    for path in pieces:
        assert same(path) == (path not in held), path
    gate = signs.sign_paths(target.contents[0])[0]
    assert "改名后的测试环保科技有限公司" in "".join(c.ch for c in _chars(second / gate))
    county_page = urls.signs_listing_path(target.region) + "index.html"
    assert not same(county_page)
    for page in first.glob("signs/*/**/index.html"):  # the other counties' and cities' pages stay
        path = page.relative_to(first).as_posix()
        if path not in (county_page, f"signs/{target.city.code}/index.html"):
            assert same(path), path
    assert {p.relative_to(first) for p in first.rglob("*")} == {p.relative_to(second) for p in second.rglob("*")}
    assert stats.qr_urls == sorted({c.qr_url for c in rendered.contents})


def _crowded(sample_build: tuple[BuildResult, Path], tmp_path: Path) -> tuple[Loaded, Path]:
    """The sample with each city's holders all in one of its counties (what their signs show stays:
    the bureau is the city's), and a copy of the sample build's sign PDFs (hard links: a cached file
    is replaced, never written into), without its plan, which knows the holders' old counties, and
    without its volumes."""
    result, site_out = sample_build
    loaded = result.loaded
    county: dict[str, str] = {}
    for e in loaded.entries:
        county[city_code(e.region)] = min(county.get(city_code(e.region), e.region), e.region)
    entries = [dataclasses.replace(e, region=county[city_code(e.region)]) for e in loaded.entries]
    cache = tmp_path / "cache"
    shutil.copytree(
        site_out.parent / "cache" / "signs",
        cache / "signs",
        ignore=shutil.ignore_patterns("plan-*", "batch"),
        copy_function=os.link,
    )
    return dataclasses.replace(loaded, entries=entries), cache


def test_a_county_volume_is_cut_into_pieces_by_permit_number(
    sample_build: tuple[BuildResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a piece every ~2 holders, the sample's crowded counties each have several pieces per
    format: together they hold the county's print signs of the format, in order, each once."""
    monkeypatch.setattr(signs, "PIECE_HOLDERS", 2)
    loaded, cache = _crowded(sample_build, tmp_path)
    stats = signs.render_signs(loaded, tmp_path / "staging", cache, workers=1)
    assert stats.rendered == 0
    pieces = _check_volumes(tmp_path / "staging", signs.plan(loaded))
    assert stats.volumes == sum(map(len, pieces.values()))
    assert max(len(p) for p in pieces.values()) >= 4
    assert sum(len(p) > 1 for p in pieces.values()) >= 10
    # The city page counts a county's signs and pieces per format and links its section of them.
    for (region, key), paths in pieces.items():
        city = city_code(region)
        html = (tmp_path / "staging" / "signs" / city / "index.html").read_text(encoding="utf-8")
        count = sum(c.format == key for p in signs.plan(loaded) if p.region == region for c in p.contents)
        link = f'<a href="../../signs/{city}/{region}/#print-{key}">{count} 块</a>'
        assert f'{link}<br><span class="muted">{len(paths)} 个文件</span>' in html
        county = (tmp_path / "staging" / urls.signs_listing_path(region) / "index.html").read_text(encoding="utf-8")
        assert f'<h3 id="print-{key}">' in county


@pytest.mark.parametrize("ends", [False, True], ids=["inside-a-piece", "ending-its-piece"])
def test_a_renamed_holder_merges_again_only_the_pieces_it_left_and_joined(
    sample_build: tuple[BuildResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ends: bool
) -> None:
    """A renamed holder moves in its county's listing: the pieces it leaves and joins are merged
    again (and, when it ends a piece, the next one, which the rest of its piece joins); every other
    piece is last night's file, and the city page, which counts pieces, stays too."""
    monkeypatch.setattr(signs, "PIECE_HOLDERS", 2)
    loaded, cache = _crowded(sample_build, tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    reuse = Reuse(None, None, first)
    signs.render_signs(loaded, first, cache, reuse=reuse, workers=1)
    made = catalog(first, None, None, reuse.keys, reuse.dates)
    live = Manifest(made.outputs, bundles=made.bundles)
    permits = signs.plan(loaded)
    listed = _listed_pieces(first)

    # A holder with outlets, ending its piece or not, in a gate piece of others too, not its county's
    # first; in a county of many pieces.
    gate_piece: dict[str, tuple[int, int]] = {}  # permit -> (its gate piece's place in the county, holders)
    for (region, key), pieces in listed.items():
        if key == "gate":  # a sign a holder
            holders = iter(_as_listed(permits)[(region, key)])
            for i, (_, _, count) in enumerate(pieces):
                gate_piece.update({c.permit_no: (i, count) for c in itertools.islice(holders, count)})
    candidates = [
        p
        for p in permits
        if len(p.contents) > 1 and signs._ends_piece(p.permit_no) == ends and gate_piece[p.permit_no][0] > 0
    ]
    target = max(candidates, key=lambda p: (gate_piece[p.permit_no][1] > 1, len(listed[(p.region, "gate")])))
    name = "一二三改名后的测试环保科技有限公司"  # first in its county now
    assert all(name < p.name for p in permits if p.region == target.region and p is not target)
    tonight = _renamed(loaded, target.permit_no, name)
    stats = signs.render_signs(tonight, second, cache, reuse=Reuse(first, live, second), workers=1)
    assert stats.planned == 1 and stats.rendered == len(target.contents)

    def marks(root: Path) -> dict[str, list[str]]:
        return {p: [i.title for i in PdfReader(root / p).outline] for p in _published_pieces(root)}

    before, after = marks(first), marks(second)
    old = {signs._bookmark(c) for c in target.contents}
    new = {signs._bookmark(dataclasses.replace(c, name=name)) for c in target.contents}
    held = {p for p, m in before.items() if old & set(m)}
    holds = {p for p, m in after.items() if new & set(m)}
    assert len(held) == len(holds) == len({c.format for c in target.contents})
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    tonight_listed = _listed_pieces(second)
    if ends:
        # Its piece keeps its name, and moves with it: the rest of it joins the next piece, and
        # where it lands it cuts the piece it joins in two.
        assert {_piece_name(p) for p in held} == {_piece_name(p) for p in holds} == {target.permit_no}
        following = {
            _after([path for path, _, _ in pieces], path)
            for night, mine in ((listed, held), (tonight_listed, holds))
            for pieces in night.values()
            for path in mine
        }
        assert held | holds <= changed <= held | holds | following
    else:  # it leaves its gate piece for the county's first
        assert changed == held | holds and held != holds
    assert stats.volumes == len(changed & after.keys())
    assert any(p not in changed for p in after if f"/{target.region}-" in p), "its county's other pieces stay"

    def same(path: str) -> bool:
        return (first / path).stat().st_ino == (second / path).stat().st_ino

    for path in after:
        assert same(path) == (path not in changed), path
    for permit in permits:
        for content in permit.contents:
            assert same(signs.sign_paths(content)[1]) == (permit is not target)
    # The city page counts each county's pieces; the index, signs: a rename changes neither, unless
    # the holder's move changes its county's number of pieces.
    counts = {k: len(v) for k, v in tonight_listed.items()} == {k: len(v) for k, v in listed.items()}
    assert same(f"signs/{target.city.code}/index.html") == counts and same("signs/index.html")
    assert not same(urls.signs_listing_path(target.region) + "index.html")
    _check_volumes(second, signs.plan(tonight))


def test_pieces_are_cut_where_the_permit_numbers_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """A holder that comes, goes or moves changes the pieces it leaves and joins, and the next one
    when it ends a piece; no other piece changes its holders or its name."""
    monkeypatch.setattr(signs, "PIECE_HOLDERS", 4)
    monkeypatch.setattr(signs, "PIECE_CAP", 1000)  # the cap apart: below
    rng = random.Random(11)
    permits = [f"91450{rng.randrange(10**13):013d}001P" for _ in range(300)]

    def pieces(ps: list[str]) -> dict[str, tuple[str, ...]]:
        return {name: tuple(ps[a:b]) for a, b, name in signs.cut_pieces(ps)}

    whole = pieces(permits)
    assert [p for members in whole.values() for p in members] == permits
    assert 40 < len(whole) < 120
    for name, members in whole.items():
        assert (name == members[-1] and signs._ends_piece(name)) or name == signs.LAST_PIECE
    for _ in range(300):
        holder = rng.choice(permits)
        rest = [p for p in permits if p != holder]
        for ps in (rest, [*rest[: (j := rng.randrange(len(rest)))], holder, *rest[j:]]):  # gone; moved
            after = pieces(ps)
            changed = {n for n in whole.keys() | after.keys() if whole.get(n) != after.get(n)}
            touched = {n for n, m in whole.items() if holder in m} | {n for n, m in after.items() if holder in m}
            # When it ends a piece: the piece after it, before (which the rest of its piece joins)
            # and after (which it was cut from).
            nxt = {_after(list(whole), holder), _after(list(after), holder)}
            assert changed <= touched | nxt, (holder, changed, touched)
            assert len(changed) <= 3


def _after(names: list[str], name: str) -> str | None:
    """The name of the piece after the one named `name`, if any."""
    i = names.index(name) + 1 if name in names else len(names)
    return names[i] if i < len(names) else None


def test_a_piece_holds_at_most_its_cap_of_holders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signs, "PIECE_HOLDERS", 2)
    permits = [f"P{i}" for i in range(20)]
    ends = [i == 18 for i in range(20)]  # one holder ends a piece, near the end
    cuts = signs.cut_pieces(permits, ends)
    assert cuts == [(0, 8, "P7"), (8, 16, "P15"), (16, 19, "P18"), (19, 20, signs.LAST_PIECE)]
    assert signs.cut_pieces([], []) == []


def test_a_revoked_holders_pieces_go_with_its_signs_and_the_night_publishes(
    sample_build: tuple[BuildResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A piece is named by the holder it ends with: when that holder's permit is revoked, its pieces
    go with its signs, and the night publishes without --allow-shrink (its page stays; a piece is no
    QR code's target, and the county page links tonight's pieces)."""
    monkeypatch.setattr(signs, "PIECE_HOLDERS", 2)
    _, site_out = sample_build
    data = Path(shutil.copytree(SAMPLE, tmp_path / "data"))
    cache = Path(shutil.copytree(site_out.parent / "cache", tmp_path / "cache"))
    out = tmp_path / "public"
    assert build(data, out, cache).published
    named = sorted({_piece_name(p) for p in _published_pieces(out)} - {signs.LAST_PIECE})
    permit = named[0]
    going = {p for p in _published_pieces(out) if _piece_name(p) == permit}
    assert going
    file = data / "enterprises" / f"{permit}.yaml"
    text = file.read_text(encoding="utf-8")
    assert text.count("\n  status: valid\n") == 1
    revoked = "\n  status: revoked\n  status_date: 2026-06-21\n  status_reason: 依法予以撤销\n"
    file.unlink()
    file.write_text(text.replace("\n  status: valid\n", revoked), encoding="utf-8")

    result = build(data, out, cache)
    assert result.published and not result.problems
    assert not any((out / p).exists() for p in going) and not (out / signs.bundle_of(permit)).exists()
    assert (out / urls.enterprise_path(permit) / "index.html").exists()
    _check_volumes(out, signs.plan(result.loaded))


def test_volumes_merged_on_worker_processes_are_the_volumes_merged_here(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night that changes many signs merges its volumes' pieces on the workers: the same bytes."""
    cache = tmp_path / "cache"
    shutil.copytree(rendered.cache, cache)
    shutil.rmtree(cache / "signs" / "batch")  # every piece to merge again; the signs stay cached
    monkeypatch.setattr(signs, "MERGE_PARALLEL_FROM", 0)
    stats = signs.render_signs(rendered.loaded, tmp_path / "staging", cache, workers=2)
    volumes = _published_pieces(rendered.staging)
    assert _published_pieces(tmp_path / "staging") == volumes
    assert stats.volumes == len(volumes) > 1 and stats.rendered == 0
    for path in volumes:
        assert (tmp_path / "staging" / path).read_bytes() == (rendered.staging / path).read_bytes(), path


def test_a_permit_that_expires_overnight_loses_its_signs_without_a_new_export(
    rendered: Rendered, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(rendered.cache, cache)
    loaded = rendered.loaded
    signs.render_signs(loaded, tmp_path / "0", cache, workers=1)
    # The next day: only records whose signs or listing entry the date could change are planned again.
    day = loaded.site.as_of + dt.timedelta(days=1)
    due = [e for e, v in iter_views(loaded) if (u := facts.stable_until(v, loaded.site.as_of)) and u <= day]
    next_day = dataclasses.replace(loaded, site=loaded.site.model_copy(update={"as_of": day}))
    assert signs.render_signs(next_day, tmp_path / "1", cache, workers=1).planned == len(due)
    target = next(p for p in rendered.permits if p.contents)
    view = loaded.store.get(next(e.digest for e in loaded.entries if e.permit_no == target.permit_no))
    expired = dt.date.fromisoformat(view["permit"]["valid_until"]) + dt.timedelta(days=1)
    later = dataclasses.replace(loaded, site=loaded.site.model_copy(update={"as_of": expired}))
    stats = signs.render_signs(later, tmp_path / "2", cache, workers=1)
    assert stats.planned >= 1 and stats.rendered == 0
    assert not (tmp_path / "2" / signs.sign_paths(target.contents[0])[0]).exists()
    assert target.contents[0].qr_url not in stats.qr_urls
    county_page = (tmp_path / "2" / urls.signs_listing_path(target.region) / "index.html").read_text(encoding="utf-8")
    section = county_page.split(f'<section id="{target.permit_no}">')[1].split("</section>")[0]
    assert "许可证状态：已过期，不提供标识牌" in section


def test_listing_pages_link_every_download(rendered: Rendered) -> None:
    index = rendered.staging / "signs" / "index.html"
    html = index.read_text(encoding="utf-8")
    for spec in ("450 × 620 mm", "105 × 148.5 mm", "210 × 297 mm", "230 × 230 mm", "CMYK 80,29,100,0", "不锈钢"):
        assert spec in html
    linked: set[Path] = set()
    for page in rendered.staging.glob("signs/**/index.html"):
        text = page.read_text(encoding="utf-8")
        for href in re.findall(r'href="([^"]+\.pdf)"', text):
            target = (page.parent / href).resolve()
            assert target.exists(), f"{page}: {href}"
            linked.add(target)
    published = {p.resolve() for p in rendered.staging.rglob("*.pdf")}
    assert linked == published
    unsigned = next(p for p in rendered.permits if not p.contents)
    county_page = rendered.staging / urls.signs_listing_path(unsigned.region) / "index.html"
    assert "不提供标识牌" in county_page.read_text(encoding="utf-8")


def test_every_holder_is_listed_once_on_its_countys_page_and_the_city_links_them(rendered: Rendered) -> None:
    """A city's page lists its counties, not its holders (at 100,000 permits it was 40 MB); each
    holder's section is on its county's page, where its enterprise page's sign link points."""
    staging = rendered.staging
    found: dict[str, list[str]] = defaultdict(list)
    for page in staging.glob("signs/*/*/index.html"):
        path = page.relative_to(staging).as_posix()
        for permit in re.findall(r'<section id="([^"]+)">', page.read_text(encoding="utf-8")):
            found[permit].append(path)
    assert {p: len(v) for p, v in found.items()} == {p.permit_no: 1 for p in rendered.permits}
    for permit in rendered.permits:
        county = urls.signs_listing_path(permit.region)
        assert found[permit.permit_no] == [county + "index.html"]
        city_page = (staging / "signs" / permit.city.code / "index.html").read_text(encoding="utf-8")
        assert f'href="../../{county}"' in city_page and "<section" not in city_page


def test_signs_for_covers_air_water_and_solid_waste() -> None:
    view: dict[str, Any] = {
        "permit_no": "91450600MA5K3XY21D001P",
        "enterprise": {"name": "测试有限公司"},
        "permit": {
            "issued": "2023-06-15",
            "outlets": [
                {"code": "DA001", "name": "锅炉废气排放口", "kind": "air"},
                {"code": "DW001", "name": "废水总排放口", "kind": "water"},
                {"code": "TS001", "name": "危险废物贮存库", "kind": "solid_waste", "withheld": True},
            ],
        },
    }
    from yimatong.schema import Site

    site = Site.model_validate(
        {
            "schema_version": 1,
            "base_url": "https://ymt.example.gov.cn/",
            "province": "广西壮族自治区",
            "program_name": "广西生态环保“一码通”",
            "authority": "广西壮族自治区生态环境厅",
            "hotline": "12345",
            "as_of": "2026-11-20",
            "credit_scale": [{"level": "守信", "tone": "good"}],
        }
    )
    out = signs.signs_for(view, site, "防城港市生态环境局")
    assert [(c.format, c.outlet) for c in out] == [
        ("gate", None),
        ("outlet-1", "DA001"),
        ("outlet-2", "DA001"),
        ("outlet-1", "DW001"),
        ("outlet-2", "DW001"),
        ("outlet-1", "TS001"),
        ("outlet-2", "TS001"),
    ]
    assert out[0].texts() == [
        "测试有限公司",
        "广西生态环保“一码通”",
        "广西壮族自治区生态环境厅监制",
        "举报投诉电话：12345",
        "2023年06月",
    ]
    assert out[1].texts() == ["测试有限公司", "锅炉废气排放口DA001", "防城港市生态环境局监制2023年06月"]
    assert out[1].qr_url == "HTTPS://YMT.EXAMPLE.GOV.CN/P/91450600MA5K3XY21D001P/DA001/"
    assert signs.sign_date("2023-12-01") == "2023年12月"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_night_writes_only_the_plan_rows_that_changed(sample_build: tuple[BuildResult, Path], tmp_path: Path) -> None:
    """The plan cache is a base and a delta: a night that changes a few records writes only the
    delta, a night that changes many the base again, and base plus delta plan as a whole would."""
    result, site_out = sample_build
    loaded = result.loaded
    cache = tmp_path / "cache"
    shutil.copytree(site_out.parent / "cache" / "signs", cache / "signs")
    first = signs.render_signs(loaded, tmp_path / "0", cache, workers=1)
    assert first.rendered == 0 and first.planned == 0  # the build's own plan, read back
    (base,) = (p for p in (cache / "signs").glob("plan-*.pickle") if ".delta" not in p.name)
    delta = base.with_name(base.name.replace(".pickle", ".delta.pickle"))
    before = base.read_bytes()

    gone = loaded.entries[0]
    fewer = dataclasses.replace(loaded, entries=loaded.entries[1:])
    assert signs.render_signs(fewer, tmp_path / "1", cache, workers=1).planned == 0
    assert delta.exists() and base.read_bytes() == before  # one digest gone: the delta only
    assert not (tmp_path / "1" / "signs" / gone.permit_no).exists()

    back = signs.render_signs(loaded, tmp_path / "2", cache, workers=1)
    assert back.planned == 1  # the delta said it was gone: planned again (its signs left the cache too)
    again = signs.render_signs(loaded, tmp_path / "3", cache, workers=1)
    assert again.planned == 0
    assert _tree(tmp_path / "3") == _tree(tmp_path / "0")

    half = dataclasses.replace(loaded, entries=loaded.entries[: len(loaded.entries) // 2])
    assert signs.render_signs(half, tmp_path / "4", cache, workers=1).planned == 0
    assert not delta.exists() and base.read_bytes() != before  # half gone: the base is written again
    assert signs.render_signs(half, tmp_path / "5", cache, workers=1).planned == 0
