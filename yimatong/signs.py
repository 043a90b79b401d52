"""Print-ready signs (seed 000, Annex 1 and 2): the gate sign and the outlet signs, as PDF.

Each permit in force gets a gate sign (450 × 620 mm) and each of its outlets and solid-waste
facilities two outlet signs (sample 1, 105 × 148.5 mm; sample 2, 210 × 297 mm). Every sign is
published at trim size and as a print variant with 3 mm bleed and crop marks. For a print shop, each
county's print variants of each format are also merged into a volume, cut into pieces of about
PIECE_HOLDERS holders, each one PDF (the county page lists them, the city page counts them).

How a sign is made, and why:
- `SignContent` is exactly what a sign shows, built only from the public view. It is also the
  cache key (with the template, CSS, font and renderer versions): a sign is rendered again only
  when what it shows changes.
- `layout()` turns content into lines and type sizes (pure functions: long names wrap to two lines,
  then shrink) and the QR code into a vector path. Templates and CSS in `signs/` draw it.
- WeasyPrint renders many signs as pages of one document (fonts and layout set-up are paid once
  per batch); each page is then written as its own PDF, so a sign's bytes never depend on which
  batch it was rendered in. pypdf sets exact PDF boxes (the print variant's BleedBox; the trim
  variant is the same page with its MediaBox set to the TrimBox), metadata and a fixed /ID.
- Noto Sans CJK is a CFF font of 65,000 glyphs, and WeasyPrint's subsetter keeps glyph ids, which
  costs about 140 kB per PDF. The signs therefore use a prepared copy of the Black face (GB 2312,
  ASCII and punctuation, TrueType outlines), built once into the cache: about 15 kB per sign.
  Characters outside it fall back to the system's Noto Sans CJK SC Black: the same design.
- A night costs what changed. The plan cache keeps each record's signs and keys by the record's
  digest (valid until the date could change its status: `facts.stable_until`), so only changed records'
  views are read. Every published file has a key (a sign: its cache key; a volume's piece: its
  members' keys; a listing page: what it shows) and is a hard link of the live build's file when
  the key is the same (`manifest.Reuse`), else of the cached PDF: nothing is copied.
- A volume is cut where the permit numbers say (`cut_pieces`), not by position, the way the open
  data's segments are: a renamed, new or withdrawn holder merges again, per format, the one or two
  pieces it leaves and joins (~64 gate or ~140 outlet pages each at 100,000 permits; qpdf copies
  ~1.2 ms a page whatever is asked), not its county's whole volume (~1,450 pages a format), and every
  other piece keeps its name and bytes (and is not uploaded again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import inspect
import io
import itertools
import multiprocessing
import os
import pickle
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from . import facts, heap, pages, urls
from .context import Common, Stamp, root_of
from .errors import YimatongError
from .identifiers import city_code
from .load import Entry, Loaded, iter_views
from .manifest import Reuse, files_key, key_of
from .schema import City, Site

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "signs"
MM_PT = 72 / 25.4  # PDF points per millimetre

# Print set-up. The crop marks stand in a slug outside the bleed, so they are never printed on
# the sign, not even inside the bleed.
BLEED_MM = 3.0
MARK_OFFSET_MM = 3.0  # from the trim line: the marks start where the bleed ends
MARK_LENGTH_MM = 6.0
SLUG_MM = MARK_OFFSET_MM + MARK_LENGTH_MM + 1.0

# Colours of the annexes, as CMYK percentages (written into the PDF as DeviceCMYK).
GREEN = (80, 29, 100, 0)
WHITE = (0, 0, 0, 0)  # "knocked out" of the green: no ink
BLACK = (0, 0, 0, 100)  # QR modules
REGISTRATION = (100, 100, 100, 100)  # crop marks, on every plate

# Permits in force get signs. A revoked or cancelled permit, or a deregistered enterprise, must not
# get a new sign; an expired permit gets one again once it is renewed (with its new date).
SIGNED_STATUSES = frozenset({"valid", "expiring"})

# QR: level H (30 % of the symbol may be lost: dirt, scratches, fading, a bolt through it) for a
# sign that hangs outdoors for years; 4 modules of quiet zone inside the specified square.
QR_QUIET = 4

BATCH_SIZE = 40  # signs per WeasyPrint document at most; see bench/RESULTS.md
PARALLEL_FROM = 1000  # signs to render before worker processes pay for their start-up (bench)
MERGE_PARALLEL_FROM = 3000  # volume pages to merge before worker processes pay for theirs (~1.5 ms a page)

# A county's volume of one format is published in pieces: one ends after a holder whose permit number
# hashes to a multiple of PIECE_HOLDERS (`cut_pieces`), so a piece holds ~64 holders (at 100,000
# permits ~64 gate or ~140 outlet pages, ~4,700 pieces in all). Smaller pieces merge less on a
# rename but make the county page's list of downloads longer.
PIECE_HOLDERS = 64
# ... and at most PIECE_CAP × PIECE_HOLDERS holders. Uncapped, runs between boundaries follow the
# geometric law: 1 piece in 56 would hold over 256 holders, and a piece or two of ~4,700 over 512,
# with no bound at all (one download, and one merge whenever any of its holders changes). Below the
# cap (98 % of pieces) it changes nothing; in a capped run a change moves the forced cuts after it up
# to the run's next boundary, which are pages the uncapped piece would have merged again anyway.
PIECE_CAP = 4
LAST_PIECE = "last"  # the name of a county's final piece, after its last boundary


class SignError(YimatongError):
    """Signs cannot be made (e.g. the sign font is not installed)."""


# --- the specification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """One sign format of the annexes: sizes in mm, type sizes in pt, positions of the zones.

    The text zones stack their items vertically centred; `side_mm` keeps text clear of the edges
    (and of the holes or nails that fix the sign).
    """

    key: str
    title: str
    annex: str
    width_mm: float
    height_mm: float
    qr_mm: float
    qr_top_mm: float
    side_mm: float
    head: tuple[float, float]  # top and bottom of the zone above the QR code
    foot: tuple[float, float]  # ... and below it
    head_pt: tuple[float, float]  # name; program name (gate) or outlet name + code (outlet)
    foot_pt: float
    material: str
    mounting: str

    @property
    def text_width_mm(self) -> float:
        return self.width_mm - 2 * self.side_mm

    @property
    def qr_left_mm(self) -> float:
        return (self.width_mm - self.qr_mm) / 2

    @property
    def size_label(self) -> str:
        return f"{self.width_mm:g} × {self.height_mm:g} mm"

    @property
    def slug(self) -> str:
        """For file names: '450x620'."""
        return f"{self.width_mm:g}x{self.height_mm:g}"


_PRINTING = "图文 UV 工艺印刷，色泽一致，图案清晰，不得有明显缺损"
_OUTLET_MATERIAL = "亚克力、PET、PVC、有机玻璃等，轻质、耐磨损、耐高温、耐溶剂、防水、防油、防晒、防腐蚀"

GATE = Format(
    key="gate",
    title="一码通标识牌（厂区门口）",
    annex="附件1",
    width_mm=450,
    height_mm=620,
    qr_mm=230,
    qr_top_mm=195,  # "in the middle": centred, (620 - 230) / 2
    side_mm=20,
    head=(15, 185),
    foot=(435, 605),
    head_pt=(85, 85),
    foot_pt=75,
    material="不锈钢、塑钢等高强度、抗老化材料，表面静电喷塑；" + _PRINTING,
    mounting="设于厂区门口附近醒目处，距门口不超过 5 m，高度 1.2–1.8 m",
)
OUTLET_1 = Format(
    key="outlet-1",
    title="排放口标识牌（样例1）",
    annex="附件2 样例1",
    width_mm=105,
    height_mm=148.5,
    qr_mm=90,
    qr_top_mm=40,  # half of sample 2
    side_mm=4,
    head=(3, 38),
    foot=(131, 146.5),
    head_pt=(18, 18),  # 小二
    foot_pt=16,  # 三号
    material=_OUTLET_MATERIAL + "；" + _PRINTING,
    mounting="用通用超黏型胶粘贴于原有排放口标识牌上，高度 1.2–1.8 m",
)
OUTLET_2 = Format(
    key="outlet-2",
    title="排放口标识牌（样例2）",
    annex="附件2 样例2",
    width_mm=210,
    height_mm=297,
    qr_mm=180,
    qr_top_mm=80,  # the annex drawing's dimension lines: 80 mm, then the 180 mm code
    side_mm=8,
    head=(6, 76),
    foot=(262, 291),
    head_pt=(36, 36),  # 小初
    foot_pt=26,  # 一号
    material=_OUTLET_MATERIAL + "；" + _PRINTING,
    mounting="粘贴、打钉或铁丝穿孔固定于排污设施或附近建（构）筑物上，固定位置避开文字与二维码；高度 1.2–1.8 m",
)
FORMATS: dict[str, Format] = {f.key: f for f in (GATE, OUTLET_1, OUTLET_2)}
OUTLET_FORMATS = (OUTLET_1, OUTLET_2)

OUTLET_KINDS = {"air": "废气排放口", "water": "废水排放口", "solid_waste": "固体废物贮存/处置设施"}


# --- what a sign shows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignContent:
    """Exactly what one sign shows: the texts, in order, and the URL its QR code carries."""

    format: str
    permit_no: str
    outlet: str | None  # outlet code; None for the gate sign
    name: str  # the enterprise
    second: str  # the program name (gate) or the outlet name (outlet)
    second_tail: str  # the outlet code, right of the outlet name ('' on the gate sign)
    foot: tuple[str, ...]  # gate: authority, hotline, date; outlet: the bureau line
    foot_tail: str  # outlet: the date, right of the bureau line
    qr_url: str

    @property
    def fmt(self) -> Format:
        return FORMATS[self.format]

    def texts(self) -> list[str]:
        """Every text on the sign, top to bottom (for checks and search)."""
        second = f"{self.second}{self.second_tail}"
        foot = [*self.foot[:-1], self.foot[-1] + self.foot_tail]
        return [self.name, second, *foot]


def sign_date(issued: str | dt.date) -> str:
    """The permit's issue or registration date as the annexes write it: 2023年06月."""
    day = dt.date.fromisoformat(issued) if isinstance(issued, str) else issued
    return f"{day.year:04d}年{day.month:02d}月"


def signs_for(view: dict[str, Any], site: Site, bureau: str) -> list[SignContent]:
    """The signs of one permit, from its public view: the gate sign, then per outlet both samples."""
    permit_no = view["permit_no"]
    name = view["enterprise"]["name"]
    date = sign_date(view["permit"]["issued"])
    out = [
        SignContent(
            GATE.key,
            permit_no,
            None,
            name,
            site.program_name,
            "",
            (f"{site.authority}监制", f"举报投诉电话：{site.hotline}", date),
            "",
            urls.qr_url(site.base_url, urls.enterprise_path(permit_no)),
        )
    ]
    for outlet in view["permit"].get("outlets", []):
        # Code, name and kind are always public, even for a withheld outlet (schema.Outlet).
        if outlet["kind"] not in OUTLET_KINDS:
            continue
        url = urls.qr_url(site.base_url, urls.outlet_path(permit_no, outlet["code"]))
        for fmt in OUTLET_FORMATS:
            out.append(
                SignContent(
                    fmt.key,
                    permit_no,
                    outlet["code"],
                    name,
                    outlet["name"],
                    outlet["code"],
                    (f"{bureau}监制",),
                    date,
                    url,
                )
            )
    return out


# --- fitting the texts ---------------------------------------------------------------------------

Measure = Callable[[str], float]  # text → width in em

_OPENERS = frozenset("（(「『【《〈“‘[")
_CLOSERS = frozenset("）)」』】》〉”’]、。，．,.:：;；!！?？%％·")
_SUFFIXES = ("股份有限公司", "有限责任公司", "有限公司", "分公司", "集团")
_PREFERRED_BONUS = 1.12  # once shrinking is unavoidable, a natural break may cost up to ~11 % of size
TAIL_GAP_EM = 0.5  # between the outlet name and its code, the bureau line and the date
_FIT_SAFETY = 0.99  # measured widths vs. the shaper's: never let rounding touch the edge


@dataclass(frozen=True)
class Placed:
    """One text item as drawn: its lines, the tail on the last line, the type size in pt."""

    lines: tuple[str, ...]
    tail: str
    pt: float


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def break_points(text: str) -> list[int]:
    """Where a line may break: not inside a Latin word or number, never before a closing or after
    an opening mark (Chinese line-breaking rules)."""
    out = []
    for i in range(1, len(text)):
        a, b = text[i - 1], text[i]
        if (_alnum(a) and _alnum(b)) or b in _CLOSERS or a in _OPENERS:
            continue
        out.append(i)
    return out


def _preferred(text: str, i: int) -> bool:
    """A natural break: after a closing bracket, before a company-form suffix, after 公司."""
    return text[i - 1] in "）)" or text.startswith(_SUFFIXES, i) or text[:i].endswith("公司")


def fit(text: str, tail: str, spec_pt: float, width_mm: float, max_lines: int, measure: Measure) -> Placed:
    """Lines and type size for one item: the specified size on one line if it fits; else (when
    allowed) two lines at the specified size, broken at a natural point if one allows it, else as
    evenly as possible; and only when no break keeps the specified size, a smaller size."""
    avail_pt = width_mm * MM_PT * _FIT_SAFETY
    tail_em = measure(tail) + TAIL_GAP_EM if tail else 0.0

    def size(*line_ems: float) -> float:
        return min(spec_pt, avail_pt / max(line_ems)) if max(line_ems) > 0 else spec_pt

    one = measure(text) + tail_em
    if max_lines == 1 or size(one) >= spec_pt:
        return Placed((text,), tail, _floor(size(one)))
    best: tuple[tuple[float, ...], tuple[str, str], float] | None = None
    for i in break_points(text):
        a, b = text[:i].rstrip(), text[i:].lstrip()
        if not a or not b:
            continue
        wa, wb = measure(a), measure(b) + tail_em
        pt = size(wa, wb)
        natural = _preferred(text, i)
        if pt >= spec_pt:  # full size: a natural break first, then the most even lines
            score: tuple[float, ...] = (1, natural, 0, -abs(wa - wb))
        else:  # shrunk: the largest size, a natural break counting for a little more
            score = (0, 0, pt * (_PREFERRED_BONUS if natural else 1.0), -abs(wa - wb))
        if best is None or score > best[0]:
            best = (score, (a, b), pt)
    if best is None:  # nowhere to break (one long Latin word): shrink on one line
        return Placed((text,), tail, _floor(size(one)))
    return Placed(best[1], tail, _floor(best[2]))


def _floor(pt: float) -> float:
    return int(pt * 10) / 10


# --- the QR code ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QrCode:
    version: int
    modules: int  # symbol width in modules, without the quiet zone
    path: str  # SVG path of the dark modules, in module units, quiet zone included

    @property
    def box(self) -> int:
        return self.modules + 2 * QR_QUIET


def qr_code(url: str) -> QrCode:
    """The QR symbol for a sign's URL: alphanumeric mode, level H, smallest version that fits."""
    import qrcode
    from qrcode.util import MODE_ALPHA_NUM, QRData

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_H, border=0)
    # Explicit mode: an upper-case URL fits the 45-character alphanumeric set, which packs
    # 5.5 bits a character instead of 8 and so keeps the code one or two versions coarser.
    qr.add_data(QRData(url, mode=MODE_ALPHA_NUM))
    qr.make(fit=True)
    if any(d.mode != MODE_ALPHA_NUM for d in qr.data_list):
        raise SignError(f"QR 数据未使用字母数字模式：{url}")
    matrix = qr.get_matrix()
    return QrCode(qr.version, len(matrix), outline_path(matrix, QR_QUIET))


def outline_path(matrix: Sequence[Sequence[bool]], offset: int = 0) -> str:
    """The outline of the dark modules as one SVG path (filled with the nonzero rule).

    One outline instead of a square per module: exact edges with no seams between modules when
    a viewer anti-aliases, and about half the path commands of per-row runs, which matters
    because parsing the path is most of WeasyPrint's time for a sign.
    """
    n = len(matrix)

    def dark(x: int, y: int) -> bool:
        return 0 <= x < n and 0 <= y < n and bool(matrix[y][x])

    # Every border between a dark and a light module, directed clockwise around the dark one.
    edges: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for y in range(n):
        for x in range(n):
            if not matrix[y][x]:
                continue
            if not dark(x, y - 1):
                edges[(x, y)].append((x + 1, y))
            if not dark(x + 1, y):
                edges[(x + 1, y)].append((x + 1, y + 1))
            if not dark(x, y + 1):
                edges[(x + 1, y + 1)].append((x, y + 1))
            if not dark(x - 1, y):
                edges[(x, y + 1)].append((x, y))
    parts = []
    for start in sorted(edges):
        while edges[start]:
            # Walk one closed loop (in-degree equals out-degree at every corner).
            loop = [start]
            point = edges[start].pop(0)
            while point != start:
                loop.append(point)
                point = edges[point].pop(0)
            parts.append(_loop_path(loop, offset))
    return "".join(parts)


def _loop_path(loop: list[tuple[int, int]], offset: int) -> str:
    """A closed loop of unit steps as M/H/V commands, one per corner."""
    corners = [
        p
        for i, p in enumerate(loop)
        # a corner: the steps into and out of this point change direction
        if (p[0] - loop[i - 1][0], p[1] - loop[i - 1][1])
        != (loop[(i + 1) % len(loop)][0] - p[0], loop[(i + 1) % len(loop)][1] - p[1])
    ]
    x0, y0 = corners[0]
    out = [f"M{x0 + offset} {y0 + offset}"]
    for (px, _py), (x, y) in itertools.pairwise(corners):
        out.append(f"V{y + offset}" if x == px else f"H{x + offset}")
    return "".join(out) + "Z"


# --- layout: content → what the template draws ----------------------------------------------------


@dataclass(frozen=True)
class SignLayout:
    content: SignContent
    fmt: Format
    head: tuple[Placed, ...]
    foot: tuple[Placed, ...]
    qr: QrCode
    title: str  # for the PDF's metadata


def layout(content: SignContent, measure: Measure) -> SignLayout:
    fmt = content.fmt
    width = fmt.text_width_mm
    head = (
        fit(content.name, "", fmt.head_pt[0], width, 2, measure),
        # The gate's program name stays one line; an outlet name may wrap like the enterprise's.
        fit(content.second, content.second_tail, fmt.head_pt[1], width, 1 if fmt is GATE else 2, measure),
    )
    last = len(content.foot) - 1
    foot = tuple(
        fit(text, content.foot_tail if i == last else "", fmt.foot_pt, width, 1, measure)
        for i, text in enumerate(content.foot)
    )
    what = fmt.title if content.outlet is None else f"{fmt.title} {content.outlet} {content.second}"
    return SignLayout(content, fmt, head, foot, qr_code(content.qr_url), f"{content.name} · {what}")


# --- the sign font -------------------------------------------------------------------------------

FONT_FAMILY = "Noto Sans CJK SC Sign"  # the prepared face; the PDF names it ...-Sign-Heavy
SYSTEM_FAMILY = "Noto Sans CJK SC"


@lru_cache(maxsize=1)
def system_font() -> tuple[Path, int]:
    """The installed Noto Sans CJK SC Black (file, face index), found as Pango will find it."""
    query = f"{SYSTEM_FAMILY}:weight=210"  # fontconfig's black = CSS 900
    try:
        found = subprocess.run(
            ["fc-match", "--format=%{file}\n%{index}\n%{family}\n%{weight}", query],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError) as err:
        raise SignError(f"无法查询字体（fc-match）：{err}；请运行 bash scripts/setup") from err
    file, index, family, weight = [*found, "", "", "", ""][:4]
    if SYSTEM_FAMILY not in family.split(",") or weight != "210":
        raise SignError(
            f"标识牌字体 {SYSTEM_FAMILY} Black 未安装（找到的是 {family or '无'}）；"
            "请运行 bash scripts/setup（Debian 软件包 fonts-noto-cjk-extra）"
        )
    return Path(file), int(index or 0)


def _repertoire() -> set[int]:
    """Code points of the prepared face: GB 2312 (all 6,763 hanzi and its symbols), ASCII,
    Latin-1, general punctuation, CJK symbols and full-width forms."""
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(range(0x2000, 0x2070))
    chars |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    for row in range(0xA1, 0xF8):
        for col in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # unassigned cells of the table
                chars.add(ord(bytes((row, col)).decode("gb2312")))
    return chars


def prepare_font(cache_dir: Path) -> Path:
    """The sign face in the cache (built on first use, about 5 s): see the module's docstring."""
    source, index = system_font()
    # Named by what decides its bytes: the source face, the code that makes it, fontTools.
    h = hashlib.blake2b(source.read_bytes(), digest_size=8)
    h.update((inspect.getsource(_make_font) + inspect.getsource(_repertoire) + metadata.version("fonttools")).encode())
    target = cache_dir / "signs" / f"sign-font-{h.hexdigest()}.ttf"
    if not target.exists():  # fontTools is imported only then
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_make_font(source, index))
        tmp.replace(target)
    return target


def _make_font(source: Path, index: int) -> bytes:
    from fontTools import subset
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont, newTable

    # recalcTimestamp=False: the face's bytes (and so every PDF) must not depend on the day.
    font = TTFont(source, fontNumber=index, recalcTimestamp=False)
    options = subset.Options(
        retain_gids=False,
        layout_features=[],  # no shaping features are needed for horizontal Chinese and digits
        name_IDs=["*"],
        notdef_outline=True,
        hinting=False,
        desubroutinize=True,
        drop_tables=["VORG", "vhea", "vmtx", "BASE", "DSIG", "GSUB", "GPOS", "GDEF"],
    )
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_repertoire())
    subsetter.subset(font)
    # CFF → TrueType outlines: glyph ids that the PDF subsetter keeps cost next to nothing in glyf.
    # Error at most 1/1000 em (0.03 mm on the gate sign's 85 pt name).
    order = font.getGlyphOrder()
    glyphs = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyphs)
        glyphs[name].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyf[name] = pen.glyph()
    del font["CFF "]
    font["glyf"] = glyf
    font["loca"] = newTable("loca")
    hmtx = font["hmtx"]
    for name in order:  # TrueType positions outlines by the left side bearing: make it exact
        glyph = glyf[name]
        glyph.recalcBounds(glyf)
        hmtx[name] = (hmtx[name][0], getattr(glyph, "xMin", 0))
    maxp = font["maxp"]
    maxp.tableVersion = 0x00010000
    for attr in (
        "maxTwilightPoints",
        "maxStorage",
        "maxFunctionDefs",
        "maxInstructionDefs",
        "maxStackElements",
        "maxSizeOfInstructions",
        "maxComponentElements",
        "maxComponentDepth",
    ):
        setattr(maxp, attr, 0)
    maxp.maxZones = 1
    font["head"].glyphDataFormat = 0
    font["post"].formatType = 3.0
    font.sfntVersion = "\x00\x01\x00\x00"
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


@lru_cache(maxsize=4)
def _advances(path: str, index: int) -> tuple[dict[int, float], float]:
    """Advance widths in em by code point, and the .notdef width."""
    from fontTools.ttLib import TTFont

    font = TTFont(path, fontNumber=index, lazy=True)
    upem = font["head"].unitsPerEm
    hmtx = font["hmtx"]
    widths = {cp: hmtx[g][0] / upem for cp, g in font.getBestCmap().items()}
    return widths, hmtx[".notdef"][0] / upem


def measurer(font: Path) -> Measure:
    """Text width in em as the sign face sets it (no kerning: the prepared face has none);
    characters outside it are measured in the system face they fall back to."""
    prepared, _ = _advances(str(font), 0)

    def measure(text: str) -> float:
        total = 0.0
        for ch in text:
            width = prepared.get(ord(ch))
            if width is None:
                source, index = system_font()
                fallback, notdef = _advances(str(source), index)
                width = fallback.get(ord(ch), max(notdef, 1.0))
            total += width
        return total

    return measure


# --- rendering -----------------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cmyk"] = lambda c: "device-cmyk({}% {}% {}% {}%)".format(*c)
    env.filters["mm"] = lambda v: f"{v:.3f}".rstrip("0").rstrip(".") + "mm"
    return env


def _library_versions() -> str:
    """Versions of everything that shapes, subsets and writes a sign's bytes. Read from the package
    metadata and the C libraries themselves, not by importing WeasyPrint (half a second of font
    libraries found through gcc and ldconfig): a night with no sign to render needs no more."""
    import ctypes

    def c_version(library: str, symbol: str, kind: Any) -> Any:
        try:
            function = getattr(ctypes.CDLL(library), symbol)
        except (OSError, AttributeError):
            return None
        function.restype = kind
        return function()

    pango = c_version("libpango-1.0.so.0", "pango_version", ctypes.c_int)
    if pango is None:  # not where Debian keeps it: ask WeasyPrint, which knows where to look
        from weasyprint.text.ffi import pango as library

        pango = library.pango_version()
    harfbuzz = c_version("libharfbuzz.so.0", "hb_version_string", ctypes.c_char_p)
    return (
        f"weasyprint {metadata.version('weasyprint')}; pypdf {metadata.version('pypdf')};"
        f" qrcode {metadata.version('qrcode')}; pango {pango}; harfbuzz {harfbuzz.decode() if harfbuzz else '?'}"
    )


def renderer_version(font: Path) -> str:
    """A digest of everything besides the content that decides a sign's bytes: the templates and
    CSS, the code that lays out and writes a sign (not the listing pages': editing those must not
    re-render every sign), its constants, the prepared font, the libraries."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(TEMPLATES.iterdir()):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for code in _rendering_code():
        h.update(inspect.getsource(code).encode())
    h.update(repr(_rendering_constants()).encode())
    h.update(font.read_bytes())
    h.update(_library_versions().encode())
    return h.hexdigest()


def _rendering_code() -> list[Any]:
    return [
        *(fit, break_points, _preferred, _alnum, _floor, measurer, _advances),
        *(qr_code, outline_path, _loop_path, layout, SignLayout, Placed, QrCode),
        *(_environment, Renderer, finish, _grown, _producer),
    ]


def _rendering_constants() -> list[Any]:
    # Sets sorted: their repr follows string hashing, which differs from process to process.
    return [
        *(FORMATS, BLEED_MM, MARK_OFFSET_MM, MARK_LENGTH_MM, SLUG_MM, MM_PT),
        *(GREEN, WHITE, BLACK, REGISTRATION, QR_QUIET, FONT_FAMILY, SYSTEM_FAMILY),
        *(sorted(_OPENERS), sorted(_CLOSERS), _SUFFIXES, _PREFERRED_BONUS, TAIL_GAP_EM, _FIT_SAFETY),
    ]


def sign_key(content: SignContent, renderer: str) -> str:
    """The cache key: exactly what the sign shows, under the renderer's version."""
    data = repr(dataclasses.astuple(content)).encode()
    return hashlib.blake2b(data, digest_size=16, key=bytes.fromhex(renderer)).hexdigest()


class Renderer:
    """Renders signs in batches: many signs as pages of one WeasyPrint document, one font
    configuration for the whole run."""

    def __init__(self, font: Path) -> None:
        from weasyprint.text.fonts import FontConfiguration

        self.font = font
        self.measure = measurer(font)
        self.env = _environment()
        self.font_config = FontConfiguration()
        self.css = (TEMPLATES / "sign.css").read_text(encoding="utf-8")

    def html(self, signs: Sequence[SignLayout]) -> str:
        return self.env.get_template("sign.html").render(
            signs=signs,
            formats=FORMATS.values(),
            font_url=self.font.resolve().as_uri(),
            font_family=FONT_FAMILY,
            fallback_family=SYSTEM_FAMILY,
            css=self.css,
            bleed=BLEED_MM,
            slug=SLUG_MM,
            mark_offset=MARK_OFFSET_MM,
            mark_length=MARK_LENGTH_MM,
            tail_gap=TAIL_GAP_EM,
            colors={"green": GREEN, "white": WHITE, "black": BLACK, "registration": REGISTRATION},
        )

    def pages(self, layouts: Sequence[SignLayout]) -> list[bytes]:
        """One raw WeasyPrint PDF per sign (print geometry: bleed and slug around the trim box)."""
        from weasyprint import HTML

        document = HTML(string=self.html(layouts), base_url=str(TEMPLATES)).render(font_config=self.font_config)
        if len(document.pages) != len(layouts):
            raise SignError(f"{len(layouts)} 个标识牌排出了 {len(document.pages)} 页")
        # One page a PDF: its font subset holds only this sign's glyphs, and its bytes do not
        # depend on the other signs of the batch.
        return [document.copy([page]).write_pdf() for page in document.pages]

    def render(self, contents: Sequence[SignContent]) -> list[tuple[bytes, bytes]]:
        """(trim PDF, print PDF) for each sign, in order."""
        layouts = [layout(c, self.measure) for c in contents]
        return [finish(raw, sign) for raw, sign in zip(self.pages(layouts), layouts, strict=True)]


def finish(raw: bytes, sign: SignLayout) -> tuple[bytes, bytes]:
    """WeasyPrint's page → (trim PDF, print PDF): exact boxes, metadata, a fixed /ID.

    WeasyPrint puts the trim box at the origin with the CSS bleed (here bleed + slug) around it,
    but sets the BleedBox at most 10 pt out; the print variant gets the exact 3 mm. The trim
    variant is the same page with every box set to the trim size (cheaper than rendering twice;
    the bleed and the marks lie outside its MediaBox, so nothing shows them).
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject, NameObject, RectangleObject

    fmt = sign.fmt
    w, h = fmt.width_mm * MM_PT, fmt.height_mm * MM_PT
    trim = RectangleObject((0, 0, w, h))
    boxes = {
        "trim": (trim, trim),
        "print": (_grown(w, h, SLUG_MM * MM_PT), _grown(w, h, BLEED_MM * MM_PT)),
    }
    out = []
    for variant, (media, bleed) in boxes.items():
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(raw)))
        writer.pdf_header = "%PDF-1.4"  # what pypdf writes (no object streams); print RIPs take it
        page = writer.pages[0]
        page.mediabox = media
        page.cropbox = media
        page[NameObject("/BleedBox")] = bleed
        page.trimbox = trim
        subject = f"{fmt.annex} {fmt.size_label}"
        if variant == "print":
            subject += f"，出血 {BLEED_MM:g} mm，含裁切线"
        writer.add_metadata(
            {"/Title": sign.title, "/Subject": subject, "/Creator": "yimatong", "/Producer": _producer()}
        )
        # A fixed /ID from the page's bytes: equal input gives byte-identical files, and the two
        # variants differ. pypdf has no public setter (it only makes random ones).
        ident = ByteStringObject(hashlib.md5(raw + variant.encode(), usedforsecurity=False).digest())
        writer._ID = ArrayObject([ident, ident])
        buffer = io.BytesIO()
        writer.write(buffer)
        out.append(buffer.getvalue())
    return out[0], out[1]


def _grown(w: float, h: float, by: float) -> Any:
    from pypdf.generic import RectangleObject

    return RectangleObject((-by, -by, w + by, h + by))


@lru_cache(maxsize=1)
def _producer() -> str:
    import pypdf
    import weasyprint

    return f"yimatong (WeasyPrint {weasyprint.__version__}, pypdf {pypdf.__version__})"


def merge_pdfs(parts: Iterable[tuple[bytes, str]], title: str) -> bytes:
    """Concatenate one-page PDFs into one, with a bookmark per page and an /ID made from the content.
    qpdf (through pikepdf) copies the pages 3-6x faster than pypdf (0.7-1.5 against 4.6-5.1 ms a page of
    our print signs): a county's volume of ~1,450 pages is merged again whenever one of its signs changes."""
    import pikepdf

    # The sources stay open until the volume is written: their pages are copied from them then.
    with contextlib.ExitStack() as open_files:
        out = open_files.enter_context(pikepdf.new())
        with out.open_outline() as outline:
            for data, label in parts:
                source = open_files.enter_context(pikepdf.open(io.BytesIO(data)))
                outline.root.append(pikepdf.OutlineItem(label, len(out.pages)))
                out.pages.extend(source.pages)
        out.docinfo.update({"/Title": title, "/Creator": "yimatong", "/Producer": _merger()})
        buffer = io.BytesIO()
        # Like the signs: PDF 1.4 without object streams (what print RIPs take); the same bytes every time.
        out.save(
            buffer, deterministic_id=True, object_stream_mode=pikepdf.ObjectStreamMode.disable, force_version="1.4"
        )
        return buffer.getvalue()


def _merger() -> str:
    import pikepdf

    return f"yimatong (pikepdf {pikepdf.__version__}, qpdf {pikepdf.__libqpdf_version__})"


# --- the cache -----------------------------------------------------------------------------------


class SignCache:
    """Rendered PDFs under the build's cache dir, by sign key; the volumes' pieces by their members' keys."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "signs"

    def paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / "pdf" / key[:2]
        return folder / f"{key}.pdf", folder / f"{key}-print.pdf"

    def has(self, key: str) -> bool:
        return all(p.exists() for p in self.paths(key))

    def batch(self, key: str) -> Path:
        return self.root / "batch" / f"{key}.pdf"

    @staticmethod
    def put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def drop(self, keys: Iterable[str]) -> None:
        """Forget signs no longer published (a published copy is a hard link and stays)."""
        for key in keys:
            for path in self.paths(key):
                path.unlink(missing_ok=True)

    def prune(self, font: Path, signs: set[str] | None, batches: set[str]) -> None:
        """Drop what this build did not use, so the cache stays the size of one site. With `signs`
        None the sign PDFs were already pruned by key (`drop`): walking 660,000 files every night
        to find the few that went would cost more than the rest of a quiet night's stage."""
        subs = [("batch", batches)] if signs is None else [("pdf", signs), ("batch", batches)]
        for sub, used in subs:
            for path in (self.root / sub).rglob("*.pdf"):
                if path.stem.removesuffix("-print") not in used:
                    path.unlink(missing_ok=True)
        for path in self.root.glob("sign-font-*.ttf"):
            if path != font:
                path.unlink(missing_ok=True)


_RENDERERS: dict[Path, Renderer] = {}  # one per font, per process (workers keep theirs)


def _renderer(font: Path) -> Renderer:
    if font not in _RENDERERS:
        _RENDERERS[font] = Renderer(font)
    return _RENDERERS[font]


def _render_chunk(font: Path, cache_dir: Path, chunk: list[tuple[SignContent, str]]) -> int:
    """Render signs into the cache (in this process or a worker's); returns how many."""
    cache = SignCache(cache_dir)
    rendered = _renderer(font).render([content for content, _ in chunk])
    for (_, key), (trim, printed) in zip(chunk, rendered, strict=True):
        trim_path, print_path = cache.paths(key)
        cache.put(trim_path, trim)
        cache.put(print_path, printed)
    return len(chunk)


def render_missing(
    todo: list[tuple[SignContent, str]],
    font: Path,
    cache_dir: Path,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Render (content, key) pairs into the cache in batches, on `workers` processes when there is
    enough work to pay for starting them (about 2 s of CPU each: imports, fonts)."""
    if not todo:
        return
    per_chunk = max(8, min(BATCH_SIZE, -(-len(todo) // (workers * 3))))
    chunks = [todo[i : i + per_chunk] for i in range(0, len(todo), per_chunk)]
    if workers <= 1 or len(todo) < PARALLEL_FROM:
        for chunk in chunks:
            done = _render_chunk(font, cache_dir, chunk)
            if progress:
                progress(done)
        return
    # spawn, not fork: the parent may already hold Pango and fontconfig state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        futures = [pool.submit(_render_chunk, font, cache_dir, chunk) for chunk in chunks]
        for future in as_completed(futures):
            done = future.result()
            if progress:
                progress(done)


# --- the plan: which signs each permit gets, cached per record -----------------------------------


@dataclass(frozen=True)
class PermitOutlet:
    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class PermitSigns:
    """One permit's signs, and what its listing entry needs (not the record: memory stays small
    however many permits there are)."""

    permit_no: str
    name: str
    city: City
    status: str
    outlets: tuple[PermitOutlet, ...]
    contents: tuple[SignContent, ...]
    region: str = ""  # the county (or city) code: the volume its signs go into
    keys: tuple[str, ...] = ()  # the contents' cache keys (sign_key), when planned for rendering


class Planned(NamedTuple):
    """What the plan cache keeps per record (plain tuples: 100,000 of them load in well under a
    second, where unpickling the records' views takes a minute)."""

    as_of: dt.date  # planned for this date ...
    until: dt.date | None  # ... and valid before this one (facts.stable_until: the status may change)
    permit_no: str
    name: str
    region: str
    status: str
    outlets: tuple[tuple[str, str, str], ...]
    contents: tuple[tuple[Any, ...], ...]  # SignContent fields
    keys: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...] | None  # the published PDFs' sizes, once known
    shown: str = ""  # a hash of what the county's listing page shows of this holder (`_shown`)
    bundle: str = ""  # the key of its folder of PDFs, signs/<permit>/ (`manifest.is_bundle`), if it has signs

    def valid_on(self, as_of: dt.date) -> bool:
        return self.as_of <= as_of and (self.until is None or as_of < self.until)


def plan_record(
    entry: Entry, view: dict[str, Any], site: Site, cities: dict[str, City], renderer: str | None
) -> Planned:
    """One permit's signs (none when not in force), from its public view only."""
    city = cities[city_code(entry.region)]
    status = facts.permit_status(view, site.as_of)
    contents = signs_for(view, site, city.bureau) if status in SIGNED_STATUSES else []
    outlets = tuple((o["code"], o["name"], o["kind"]) for o in view["permit"].get("outlets", []))
    rows = tuple(dataclasses.astuple(c) for c in contents)
    keys = tuple(sign_key(c, renderer) for c in contents) if renderer else ()
    name = view["enterprise"]["name"]
    shown = _shown(view["permit_no"], name, status, outlets, rows, keys)
    bundle = key_of("signs", *(p for c in rows for p in _paths(c)), *keys) if keys else ""
    return Planned(
        site.as_of,
        facts.stable_until(view, site.as_of),
        view["permit_no"],
        name,
        entry.region,
        status,
        outlets,
        rows,
        keys,
        None,
        shown,
        bundle,
    )


# Positions in a `Planned` row's contents (SignContent's fields as a tuple).
FORMAT, PERMIT, OUTLET, NAME, SECOND, QR_URL = 0, 1, 2, 3, 4, 8


def _shown(
    permit_no: str,
    name: str,
    status: str,
    outlets: tuple[tuple[str, str, str], ...],
    contents: tuple[tuple[Any, ...], ...],
    keys: tuple[str, ...],
) -> str:
    """What a county's listing page shows of a holder, as a key: its texts, and per sign the format,
    the outlet and the cache key (the key fixes the PDF's bytes, so its size). The page's key is
    made of these, so an unchanged holder costs the page nothing."""
    kinds = [(code, label, OUTLET_KINDS.get(kind)) for code, label, kind in outlets]
    signs = [(c[FORMAT], c[OUTLET]) for c in contents]
    return key_of(name, permit_no, status, facts.STATUS_LABELS[status], kinds, signs, list(keys))


def _permit(row: Planned, cities: dict[str, City]) -> PermitSigns:
    return PermitSigns(
        row.permit_no,
        row.name,
        cities[city_code(row.region)],
        row.status,
        tuple(PermitOutlet(*o) for o in row.outlets),
        tuple(SignContent(*c) for c in row.contents),
        row.region,
        row.keys,
    )


# What a plan is made of besides the record and the settings: this code, the facts, the addresses.
_PLAN_CODE = [Path(__file__).with_name(n) for n in ("signs.py", "facts.py", "urls.py", "identifiers.py")]


class PlanCache:
    """Every record's `Planned`, by entry digest, per settings (site.yaml but its as_of,
    regions.yaml, this code, the renderer): a night unpickles only the changed records' views, and
    those whose plan the date has run out on (`Planned.valid_on`). Kept as a base and a delta of
    the rows changed and the digests gone since: a night writes its delta (1 % of 100,000 rows: 1 MB,
    where the whole took 1.7 s to pickle), and the base again once the delta reaches a quarter of it.
    A row is a function of its digest, so even a delta left beside a newer base is still right."""

    def __init__(self, cache_dir: Path, site: Site, regions: Any, renderer: str) -> None:
        settings = key_of(
            site.model_dump(mode="json", exclude={"as_of"}),
            regions.model_dump(mode="json"),
            renderer,
            files_key(_PLAN_CODE),
        )
        self.root = cache_dir / "signs"
        self.path = self.root / f"plan-{settings}.pickle"
        self.delta = self.root / f"plan-{settings}.delta.pickle"
        self.rows: dict[str, Planned] | None = None  # None: no plan for these settings yet
        self._base: dict[str, Planned] = {}
        with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError):
            with heap.acyclic():  # 100,000 rows of tuples: twice as fast without collections
                base = pickle.loads(self.path.read_bytes())
                changed, gone = pickle.loads(self.delta.read_bytes()) if self.delta.exists() else ({}, [])
            if isinstance(base, dict):
                self._base = base
                rows = {**base, **changed}
                for d in gone:
                    rows.pop(d, None)
                self.rows = rows

    def save(self, rows: dict[str, Planned]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        base = self._base
        changed = {d: r for d, r in rows.items() if (b := base.get(d)) is not r and b != r}
        gone = sorted(base.keys() - rows.keys())
        if base and len(changed) + len(gone) <= len(rows) // 4:
            self._write(self.delta, (changed, gone))
            return
        self.delta.unlink(missing_ok=True)
        self._write(self.path, rows)
        self._base = rows
        for other in self.root.glob("plan-*.pickle"):
            if other not in (self.path, self.delta):
                other.unlink(missing_ok=True)

    def _write(self, path: Path, data: object) -> None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)


def plan(loaded: Loaded) -> list[PermitSigns]:
    """Every permit with the signs it gets (none when not in force), from the public view only."""
    cities = {c.code: c for c in loaded.regions.cities}
    return [_permit(plan_record(e, v, loaded.site, cities, None), cities) for e, v in iter_views(loaded)]


def _plan_all(loaded: Loaded, previous: dict[str, Planned], renderer: str) -> tuple[dict[str, Planned], int]:
    """Tonight's rows, in entry order: last night's where still valid, the rest from the views;
    and how many were planned from the views."""
    as_of = loaded.site.as_of
    cities = {c.code: c for c in loaded.regions.cities}

    def current(entry: Entry) -> bool:
        row = previous.get(entry.digest)
        return row is not None and row.valid_on(as_of)

    stale = [e for e in loaded.entries if not current(e)]
    planned = {e.digest: plan_record(e, v, loaded.site, cities, renderer) for e, v in iter_views(loaded, stale)}
    rows = {e.digest: planned[e.digest] if e.digest in planned else previous[e.digest] for e in loaded.entries}
    return rows, len(stale)


# --- the stage -----------------------------------------------------------------------------------


@dataclass
class SignStats:
    rendered: int = 0  # signs rendered this run (each: a trim and a print PDF)
    reused: int = 0  # signs not rendered: from the cache or the live build
    written: int = 0  # files put into the site: sign PDFs, volume pieces, listing pages
    linked: int = 0  # ... of which hard links of the live build's file (Reuse: same key)
    planned: int = 0  # records whose view was read to plan their signs (the rest: the plan cache)
    volumes: int = 0  # pieces of the county volumes merged this run (the rest were unchanged)
    qr_urls: list[str] = dataclasses.field(default_factory=list)  # of every published sign, sorted


def render_signs(
    loaded: Loaded,
    staging: Path,
    cache_dir: Path,
    reuse: Reuse | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> SignStats:
    """Write every sign of every permit in force into staging/signs/, with the pieces of the county
    volumes and the listing pages. Signs whose content is unchanged come from the cache; files the
    live build made from the same key are hard links of it (`reuse`)."""
    reuse = reuse or Reuse(None, None, staging)
    stats = SignStats()
    font = prepare_font(cache_dir)
    renderer_id = renderer_version(font)
    cache = SignCache(cache_dir)
    plans = PlanCache(cache_dir, loaded.site, loaded.regions, renderer_id)
    previous = plans.rows or {}
    rows, stats.planned = _plan_all(loaded, previous, renderer_id)
    # Only re-planned records can have signs the cache lacks; a cached file lost since is found
    # when it is published, and rendered then.
    todo = {
        k: SignContent(*c)
        for digest, row in rows.items()
        if previous.get(digest) is not row
        for c, k in zip(row.contents, row.keys, strict=True)
        if not cache.has(k)
    }
    total = sum(len(row.keys) for row in rows.values())

    def advance(done: int) -> None:
        stats.rendered += done
        if progress:
            progress(total - len(todo) + stats.rendered, total)

    render_missing([(c, k) for k, c in todo.items()], font, cache_dir, workers or os.cpu_count() or 1, advance)
    cores = workers or os.cpu_count() or 1
    publisher = _Publisher(
        cache, staging, reuse, stats, lambda chunk: advance(_render_chunk(font, cache_dir, chunk)), cores
    )
    sizes = publisher.signs(rows)
    stats.reused = total - stats.rendered
    city_signs = publisher.cities(loaded, rows, sizes)
    stats.written += _listing_pages(loaded.site, staging, city_signs, reuse, stats)
    stats.qr_urls = sorted({c[QR_URL] for row in rows.values() for c in row.contents})

    tonight = {d: row if row.sizes == sizes[d] else row._replace(sizes=sizes[d]) for d, row in rows.items()}
    if tonight != previous:
        plans.save(tonight)
    used = {k for row in rows.values() for k in row.keys}
    if plans.rows is None:  # no plan of these settings: the cache may hold anything
        cache.prune(font, used, publisher.batches)
    else:
        cache.drop({k for row in previous.values() for k in row.keys} - used)
        cache.prune(font, None, publisher.batches)
    return stats


# --- publishing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    label: str
    href: str  # site-relative
    kb: int


@dataclass(frozen=True)
class Piece:
    """One PDF of a county's volume: the print variants of one format of consecutive holders."""

    download: Download
    count: int  # signs: pages
    span: str  # its holders, first to last: '甲公司 至 乙公司', or one name


@dataclass(frozen=True)
class Batch:
    """A county's volume of one format: all its print variants of that format, in the listing's
    order, in pieces (`cut_pieces`)."""

    format: Format
    pieces: list[Piece]
    anchor: str  # the id of its section on the county page
    page: str  # the county page, site-relative

    @property
    def count(self) -> int:
        return sum(p.count for p in self.pieces)

    @property
    def href(self) -> str:
        """Its section on the county page, site-relative."""
        return f"{self.page}#{self.anchor}"


@dataclass(frozen=True)
class SignItem:
    """One sign on a listing page: its trim and print downloads."""

    format: Format
    trim: Download
    print: Download


@dataclass(frozen=True)
class OutletSigns:
    code: str
    name: str
    kind: str
    signs: list[SignItem]


@dataclass(frozen=True)
class EnterpriseSigns:
    name: str
    permit_no: str
    href: str  # the enterprise page, site-relative
    status: str
    status_label: str
    gate: SignItem | None
    outlets: list[OutletSigns]


@dataclass(frozen=True)
class CountySigns:
    """A county's permit holders and their signs: one listing page (a city's would reach 40 MB),
    with its volumes' pieces. The holders' entries are made only for a page rendered tonight
    (`enterprises`)."""

    region: str
    label: str
    href: str  # site-relative: urls.signs_listing_path
    holders: int
    sign_count: int
    members: tuple[tuple[Planned, tuple[tuple[int, int], ...]], ...]  # (row, its PDFs' sizes), as listed
    batches: dict[str, Batch]  # by format key, in FORMATS' order; only the formats it has signs of

    @cached_property
    def enterprises(self) -> list[EnterpriseSigns]:
        return [_enterprise_signs(row, size) for row, size in self.members]

    @property
    def shown(self) -> list[str]:
        """What its listing page shows of the holders, as their keys (`Planned.shown`)."""
        return [row.shown for row, _ in self.members]


@dataclass(frozen=True)
class CitySigns:
    code: str
    name: str
    bureau: str
    href: str  # the city's listing page, site-relative
    counties: list[CountySigns]

    @property
    def holders(self) -> int:
        return sum(c.holders for c in self.counties)

    @property
    def sign_count(self) -> int:
        return sum(c.sign_count for c in self.counties)

    @property
    def printed(self) -> list[CountySigns]:
        """Its counties with a volume (a sign of any format)."""
        return [c for c in self.counties if c.batches]

    def count(self, fmt: str) -> int:
        """Signs of one format in the city."""
        return sum(c.batches[fmt].count for c in self.counties if fmt in c.batches)


def bundle_of(permit_no: str) -> str:
    """The folder of a permit's sign PDFs: one bundle in the manifest and the bucket state."""
    return f"signs/{permit_no}/"


def sign_paths(content: SignContent) -> tuple[str, str]:
    """Site paths of a sign's trim and print PDFs, under signs/<permit>/; the file names say what
    they are, since a print shop saves many of them side by side."""
    return _paths(dataclasses.astuple(content))


def _paths(content: tuple[Any, ...]) -> tuple[str, str]:
    """`sign_paths` of a plan row's content tuple."""
    permit, outlet = content[PERMIT], content[OUTLET]
    base = f"{bundle_of(permit)}{permit}-{'gate' if outlet is None else outlet}-{FORMATS[content[FORMAT]].slug}"
    return f"{base}.pdf", f"{base}-print.pdf"


def volume_path(city: str, region: str, fmt: Format, piece: str) -> str:
    """A piece of a county's volume of one format, named by the permit number of the holder it ends
    with (or LAST_PIECE): `cut_pieces`. Per county, not per city: at 100,000 permits a city's volume
    would hold ~7,000 signs and change every night; and a piece's path stays put when pieces before
    it come and go. The name says what it is to a print shop that saves many side by side."""
    kind = "gate" if fmt is GATE else "outlet"
    return f"signs/{city}/{region}-{kind}-{fmt.slug}-print-{piece}.pdf"


def is_volume_piece(path: str) -> bool:
    """A piece of a county volume (`volume_path`: 'signs/<city>/<file>.pdf'), which may go on any
    night: named by the holder it ends with (`cut_pieces`), it goes with that holder's signs."""
    return path.endswith(".pdf") and _PIECE_PATH.fullmatch(path) is not None


_PIECE_PATH = re.compile(r"signs/[0-9]{6}/[^/]+")


def _publish(source: Path, target: Path) -> int:
    """A cached file into the staging tree: a hard link where possible (nothing ever writes into a
    published file, and 700,000 signs are not copied every night), else a copy. Returns its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:  # half of a pair the live build had: replace the entry, never its bytes
        target.unlink()
        os.link(source, target)
    except OSError:
        if not source.exists():
            raise FileNotFoundError(source) from None
        shutil.copyfile(source, target)  # another file system
    return source.stat().st_size


def _kb(size: int) -> int:
    return max(1, round(size / 1024))


@lru_cache(maxsize=1)
def _merge_version() -> str:
    """What a piece's bytes depend on besides its members: the merging code and the libraries."""
    code = "".join(inspect.getsource(f) for f in (merge_pdfs, _merger, _bookmark, _piece_title))
    return hashlib.blake2b((code + _merger()).encode(), digest_size=8).hexdigest()


class _Publisher:
    """Puts the signs and the pieces of the county volumes into staging: the live build's file when
    it was made from the same key (`Reuse.link`), else a hard link of the cached PDF."""

    def __init__(
        self,
        cache: SignCache,
        staging: Path,
        reuse: Reuse,
        stats: SignStats,
        render: Callable[[list[tuple[SignContent, str]]], None],
        workers: int = 1,
    ) -> None:
        self.cache, self.staging, self.reuse, self.stats, self.render = cache, staging, reuse, stats, render
        self.workers = workers
        self.batches: set[str] = set()  # the pieces' cache keys in use

    def signs(self, rows: dict[str, Planned]) -> dict[str, tuple[tuple[int, int], ...]]:
        """Every permit's sign PDFs into staging, a folder per permit (one bundle: `Reuse.link_many`
        compares 100,000 keys a night, not 1,070,000 files); their sizes by record digest (from the
        plan when the live build's are linked). A folder made again tonight is filled with hard
        links of the cached PDFs."""
        wanted = {bundle_of(row.permit_no): row.bundle for row in rows.values() if row.contents}
        missed = self.reuse.link_many(wanted)
        sizes = {}
        for d, row in rows.items():
            files = 2 * len(row.contents)
            self.stats.written += files
            if bundle_of(row.permit_no) not in missed:
                self.stats.linked += files
                sizes[d] = row.sizes or tuple(self._sizes(_paths(c)) for c in row.contents)
                continue
            out = []
            for content, key in zip(row.contents, row.keys, strict=True):
                try:
                    out.append(self._from_cache(_paths(content), key))
                except FileNotFoundError:  # deleted from the cache since it was planned
                    self.render([(SignContent(*content), key)])
                    out.append(self._from_cache(_paths(content), key))
            sizes[d] = tuple(out)
        return sizes

    def _sizes(self, pair: tuple[str, str]) -> tuple[int, int]:
        return (self.staging / pair[0]).stat().st_size, (self.staging / pair[1]).stat().st_size

    def _from_cache(self, paths: tuple[str, str], key: str) -> tuple[int, int]:
        trim, printed = (_publish(src, self.staging / p) for src, p in zip(self.cache.paths(key), paths, strict=True))
        return trim, printed

    def cities(
        self, loaded: Loaded, rows: dict[str, Planned], sizes: dict[str, tuple[tuple[int, int], ...]]
    ) -> list[CitySigns]:
        """Each city's counties (holders listed by name) and their volumes' pieces: first every
        piece's key (linked, cached, or to merge), then the merges, then the pieces published."""
        by_region: dict[str, list[tuple[Planned, tuple[tuple[int, int], ...]]]] = defaultdict(list)
        for d, row in rows.items():
            by_region[row.region].append((row, sizes[d]))
        cities: list[tuple[City, list[tuple[str, str]]]] = []  # regions with their labels
        members: dict[str, tuple[tuple[Planned, tuple[tuple[int, int], ...]], ...]] = {}  # as listed
        planned: dict[str, list[tuple[Format, list[_PlannedPiece]]]] = {}  # by region: the formats it has
        for city in loaded.regions.cities:
            labels = {city.code: city.name, **{k.code: f"{city.name}{k.name}" for k in city.counties}}
            here = sorted((r for r in by_region if city_code(r) == city.code), key=lambda r: (r != city.code, r))
            labelled = [(r, labels.get(r, f"{city.name} {r}")) for r in here]
            cities.append((city, labelled))
            for region, label in labelled:
                listed = tuple(sorted(by_region[region], key=lambda m: (m[0].name, m[0].permit_no)))
                members[region] = listed
                holders = _holders_by_format(listed)  # one pass over the signs, not one per format
                plan = self._plan_volume
                volumes = [(f, plan(city.code, region, label, f, holders.get(f.key, []))) for f in FORMATS.values()]
                planned[region] = [(fmt, pieces) for fmt, pieces in volumes if pieces]
        merges = [p.merge for volumes in planned.values() for _, pieces in volumes for p in pieces]
        self._merge([m for m in merges if m is not None])
        out = []
        for city, labelled in cities:
            counties = []
            for region, label in labelled:
                href = urls.signs_listing_path(region)
                batches = {
                    fmt.key: Batch(fmt, [self._publish_piece(p) for p in pieces], f"print-{fmt.key}", href)
                    for fmt, pieces in planned[region]
                }
                listed = members[region]
                signed = sum(len(row.contents) for row, _ in listed)
                counties.append(CountySigns(region, label, href, len(listed), signed, listed, batches))
            out.append(CitySigns(city.code, city.name, city.bureau, f"signs/{city.code}/", counties))
        return out

    def _plan_volume(
        self, city: str, region: str, label: str, fmt: Format, holders: list[_Holder]
    ) -> list[_PlannedPiece]:
        """One county's print variants of one format, in the order of the listing (name, permit,
        outlet), cut into pieces (`cut_pieces`; none: the county has no sign of the format)."""
        out = []
        for start, stop, name in cut_pieces([row.permit_no for row, _, _ in holders], [e for _, _, e in holders]):
            part = holders[start:stop]
            signs = [sign for _, mine, _ in part for sign in mine]
            span = part[0][0].name if len(part) == 1 else f"{part[0][0].name} 至 {part[-1][0].name}"
            path = volume_path(city, region, fmt, name)
            out.append(self._plan_piece(path, _piece_title(label, fmt, span), span, signs))
        return out

    def _plan_piece(self, path: str, title: str, span: str, signs: list[tuple[tuple[Any, ...], str]]) -> _PlannedPiece:
        """One piece, by its members' keys: linked from the live build, or from the cache, or to be
        merged (`merge`)."""
        key = hashlib.blake2b("\n".join([title, _merge_version(), *(k for _, k in signs)]).encode(), digest_size=16)
        key = key.hexdigest()
        self.batches.add(key)
        self.stats.written += 1
        if self.reuse.link(path, key):
            self.stats.linked += 1
            return _PlannedPiece(path, key, len(signs), span, True)
        merge = None
        if not (cached := self.cache.batch(key)).exists():
            # The published print PDFs: the same bytes as the cached ones, and there even when
            # they came from the live build (a cache emptied since).
            parts = [(str(self.staging / _paths(c)[1]), _bookmark(SignContent(*c))) for c, _ in signs]
            merge = _Merge(str(cached), parts, title)
        return _PlannedPiece(path, key, len(signs), span, False, merge)

    def _merge(self, merges: list[_Merge]) -> None:
        """The pieces the cache lacks, on `workers` processes when there are pages enough to pay for
        starting them (a first night, or new settings, merges all 535,000 pages at 100,000 permits)."""
        self.stats.volumes += len(merges)
        pages = sum(len(m.parts) for m in merges)
        if self.workers <= 1 or len(merges) <= 1 or pages < MERGE_PARALLEL_FROM:
            for m in merges:
                _merge_volume(m)
            return
        # Largest first, so that no big piece starts last while the other worker idles.
        merges = sorted(merges, key=lambda m: -len(m.parts))
        context = multiprocessing.get_context("spawn")  # as render_missing: no Pango state forked
        with ProcessPoolExecutor(min(self.workers, len(merges)), mp_context=context) as pool:
            for _ in pool.map(_merge_volume, merges):
                pass

    def _publish_piece(self, p: _PlannedPiece) -> Piece:
        size = (
            (self.staging / p.path).stat().st_size
            if p.linked
            else _publish(self.cache.batch(p.key), self.staging / p.path)
        )
        return Piece(Download("印刷版 PDF", p.path, _kb(size)), p.count, p.span)


class _Merge(NamedTuple):
    """A piece to merge: where the cache keeps it, its pages (print PDFs in staging) and title."""

    target: str
    parts: list[tuple[str, str]]  # (path, bookmark)
    title: str


class _PlannedPiece(NamedTuple):
    path: str  # site-relative
    key: str
    count: int
    span: str  # its holders, first to last (`Piece.span`)
    linked: bool  # the live build's file, from the same key
    merge: _Merge | None = None


def _merge_volume(m: _Merge) -> None:
    SignCache.put(Path(m.target), merge_pdfs([(Path(path).read_bytes(), label) for path, label in m.parts], m.title))


def _piece_title(label: str, fmt: Format, span: str) -> str:
    """A piece's PDF title: the county, the format and its holders, first to last. Nothing else that
    varies (not its number or the count of pieces: one piece more would change every piece's bytes)."""
    return f"{label} {fmt.title} {fmt.size_label} 印刷版（出血 {BLEED_MM:g} mm）：{span}"


def cut_pieces(permits: Sequence[str], ends: Sequence[bool] | None = None) -> list[tuple[int, int, str]]:
    """A county's holders of one format (their permit numbers, in listing order) cut into pieces,
    as (start, stop, name). A piece ends after a holder whose permit number says so (`_ends_piece`,
    or `ends` when known: about one holder in PIECE_HOLDERS) or after PIECE_CAP × PIECE_HOLDERS
    holders, and is named by that holder's permit number; what follows the last such holder is the
    final piece, LAST_PIECE. So a holder that comes, goes or moves (renamed) changes only the pieces
    it leaves and joins, and when it ended a piece the one after its old place (the rest of its piece
    joins that one); every other piece keeps its holders and its name."""
    ends = [_ends_piece(p) for p in permits] if ends is None else ends
    out, start, cap = [], 0, PIECE_CAP * PIECE_HOLDERS
    for i, (permit, end) in enumerate(zip(permits, ends, strict=True)):
        if end or i + 1 - start >= cap:
            out.append((start, i + 1, permit))
            start = i + 1
    if start < len(permits):
        out.append((start, len(permits), LAST_PIECE))
    return out


# A holder of a county's volume of one format: its row, its signs of the format as (content, key)
# in outlet order (the gate first), and whether it ends a piece.
_Holder = tuple[Planned, list[tuple[tuple[Any, ...], str]], bool]


def _holders_by_format(members: Sequence[tuple[Planned, Any]]) -> dict[str, list[_Holder]]:
    """A county's holders (in listing order) of each format, with their signs of it."""
    out: dict[str, list[_Holder]] = defaultdict(list)
    for row, _ in members:
        end = _ends_piece(row.permit_no)
        mine: dict[str, list[tuple[str, tuple[Any, ...], str]]] = defaultdict(list)
        for c, k in zip(row.contents, row.keys, strict=True):
            mine[c[FORMAT]].append((c[OUTLET] or "", c, k))
        for fmt, signs in mine.items():
            out[fmt].append((row, [(c, k) for _, c, k in sorted(signs)], end))
    return out


def _ends_piece(permit_no: str) -> bool:
    """Whether a holder ends its piece: by a hash of its permit number, which a rename leaves as it
    was (as the open data's segments are cut: `opendata._cut`)."""
    return int.from_bytes(hashlib.blake2b(permit_no.encode(), digest_size=4).digest(), "little") % PIECE_HOLDERS == 0


def _enterprise_signs(row: Planned, sizes: tuple[tuple[int, int], ...]) -> EnterpriseSigns:
    items = []
    for content, (trim, printed) in zip(row.contents, sizes, strict=True):
        paths = _paths(content)
        trim_pdf, print_pdf = Download("成品 PDF", paths[0], _kb(trim)), Download("印刷版 PDF", paths[1], _kb(printed))
        items.append((content[OUTLET], SignItem(FORMATS[content[FORMAT]], trim_pdf, print_pdf)))
    gate = next((item for outlet, item in items if outlet is None), None)
    outlets = []
    for code, name, kind in row.outlets:
        signs = [item for outlet, item in items if outlet == code]
        if signs:
            outlets.append(OutletSigns(code, name, OUTLET_KINDS[kind], signs))
    status = row.status
    href = urls.enterprise_path(row.permit_no)
    return EnterpriseSigns(row.name, row.permit_no, href, status, facts.STATUS_LABELS[status], gate, outlets)


def _bookmark(content: SignContent) -> str:
    return content.name if content.outlet is None else f"{content.name} {content.outlet} {content.second}"


# --- listing pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatSpec:
    """A format's specifications for print shops."""

    format: Format
    qr: str
    type_sizes: str


@dataclass(frozen=True)
class SignsPage:
    """layouts/signs.html (all cities) and layouts/signs_city.html (one city)."""

    common: Common
    formats: list[FormatSpec]
    colors: str
    font: str
    bleed: str  # mm
    cities: list[CitySigns]
    total: int
    piece_holders: int  # holders a volume's piece holds, on average (PIECE_HOLDERS)
    county: CountySigns | None = None  # layouts/signs_county.html: one county of cities[0]


def _format_specs() -> list[FormatSpec]:
    specs = []
    for fmt in FORMATS.values():
        if fmt is GATE:
            sizes = f"单位名称、程序名称 {fmt.head_pt[0]:g} pt；监制单位、举报电话、发证年月 {fmt.foot_pt:g} pt"
        else:
            sizes = f"单位名称、排放口名称与编号 {fmt.head_pt[0]:g} pt；监制单位与发证年月 {fmt.foot_pt:g} pt"
        qr = f"{fmt.qr_mm:g} × {fmt.qr_mm:g} mm，居中（含 {QR_QUIET} 模块空白区，纠错等级 H）"
        specs.append(FormatSpec(fmt, qr, sizes))
    return specs


def _listing_code() -> str:
    """The listing pages' templates (base.html and its macros included) and the code behind them."""
    layouts = sorted(pages.LAYOUTS.glob("*.html"))
    code = [Path(__file__).with_name(n) for n in ("signs.py", "pages.py", "context.py", "urls.py")]
    return files_key([*layouts, *code])


def _listing_pages(site: Site, staging: Path, cities: list[CitySigns], reuse: Reuse, stats: SignStats) -> int:
    """The index and one page per city; each is the live build's file when what it shows (its key:
    the site settings, the templates, its data) is unchanged. Like every page, each states the night
    it last changed, never the build's date."""
    env = pages.environment()
    green = "底色绿色 CMYK {},{},{},{}".format(*GREEN)
    colors = f"{green}；文字白色 CMYK 0,0,0,0（即不印墨，露出底材）；二维码黑色模块（K 100）、白色底"
    font = "思源黑体 / Noto Sans CJK SC Black（黑体，嵌入子集）"
    specs = _format_specs()
    base = (site.model_dump(mode="json", exclude={"as_of"}), _listing_code(), PIECE_HOLDERS)
    today = site.as_of.isoformat()

    def page(
        path: str, title: str, shown: list[CitySigns], stamp: Stamp, county: CountySigns | None = None
    ) -> SignsPage:
        total = county.sign_count if county else sum(c.sign_count for c in shown)
        common = Common(site, root_of(path), title, path, stamp=stamp)
        return SignsPage(common, specs, colors, font, f"{BLEED_MM:g}", shown, total, PIECE_HOLDERS, county)

    def write(path: str, data: object, template: str, make: Callable[[Stamp], SignsPage]) -> None:
        key = key_of(*base, path, repr(data))
        stamp = Stamp(None, reuse.changed_on(path, key, today))
        if reuse.link(path, key):
            stats.linked += 1
        else:
            pages.write(staging, path, env.get_template(template).render(page=make(stamp)))

    # The index shows each city's counts, not its counties or pieces.
    summary = [(c.code, c.name, c.holders, c.sign_count, [c.count(f) for f in FORMATS]) for c in cities]
    write("signs/index.html", summary, "signs.html", lambda stamp: page("signs/", "标识牌下载", cities, stamp))
    written = 1
    for city in cities:
        # The city page shows its counties' counts and, per format, their signs and pieces: not their
        # holders or the pieces themselves (a rename that keeps the counts leaves it as it was).
        counts = [
            (c.label, c.href, c.holders, c.sign_count, [(f, b.count, len(b.pieces)) for f, b in c.batches.items()])
            for c in city.counties
        ]
        shown = (city.code, city.name, city.bureau, counts)
        write(
            f"{city.href}index.html",
            shown,
            "signs_city.html",
            lambda stamp, city=city: page(city.href, f"{city.name}标识牌下载", [city], stamp),  # type: ignore[misc]
        )
        for county in city.counties:
            pieces = [(f, b.pieces) for f, b in county.batches.items()]  # their names, sizes and holders
            write(
                f"{county.href}index.html",
                (city.code, city.name, city.bureau, county.region, county.label, county.href, county.shown, pieces),
                "signs_county.html",
                lambda stamp, city=city, county=county: page(  # type: ignore[misc]
                    county.href, f"{county.label}标识牌下载", [city], stamp, county
                ),
            )
        written += 1 + len(city.counties)
    return written
