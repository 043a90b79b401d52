"""The public pages' quality bar, checked on the built sample in headless Chromium:
valid HTML (the Nu HTML checker), no WCAG 2.1 A/AA violations (axe-core), readable at 360 px wide
(no sideways scrolling, no text under 14 px), and no JavaScript needed on the permit pages.

The pages are found by walking the built tree, and the sample enterprises to look at are chosen by
reading their records (longest name, each permit status, a withheld block…), so the checks follow
the site as pages are added. Helpers and fixtures: tests/browser.py and tests/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from yimatong import facts, urls
from yimatong.load import iter_views
from yimatong.pipeline import BuildResult

from .browser import axe_result, axe_start, format_axe, format_vnu, new_context, url_for, vnu

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PHONE_WIDTH = 360
DESKTOP_WIDTH = 1280
MIN_TEXT_PX = 14


# --- what to look at ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enterprise:
    permit_no: str
    name: str
    status_label: str
    page: str  # site-relative file, 'P/<permit>/index.html'


@dataclass(frozen=True)
class Sample:
    public: Path
    html: list[str]  # every HTML file, site-relative POSIX paths, sorted
    enterprises: dict[str, Enterprise]  # by page
    picks: dict[str, list[str]]  # the representative pages → why each was picked

    def label(self, page: str) -> str:
        return f"/{page} ({'; '.join(self.picks.get(page, []))})"


def page_type(page: str) -> str:
    """The page's address shape: each path part holding a digit (permit, outlet, region, page
    number…) becomes '#': 'P/#/index.html' is an enterprise page, 'P/#/#/index.html' an outlet's."""
    return "/".join("#" if any(c.isdigit() for c in part) else part for part in page.split("/"))


def _withheld(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value.get("withheld") or value.get("withheld_fields")) or any(map(_withheld, value.values()))
    if isinstance(value, list):
        return any(map(_withheld, value))
    return False


def _blocks(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in view.values() if isinstance(b, dict)]


def _count(view: dict[str, Any], block: str, key: str) -> int:
    value = (view.get(block) or {}).get(key)
    return len(value) if isinstance(value, list) else 0


@pytest.fixture(scope="module")
def sample(sample_build: tuple[BuildResult, Path]) -> Sample:
    result, public = sample_build
    html = sorted(p.relative_to(public).as_posix() for p in public.rglob("*") if p.suffix in (".html", ".htm"))
    as_of = result.loaded.site.as_of
    records: list[tuple[Enterprise, dict[str, Any], str]] = []
    for entry, view in iter_views(result.loaded):
        status = facts.permit_status(view, as_of)
        page = urls.enterprise_path(entry.permit_no) + "index.html"
        if (public / page).is_file():
            e = Enterprise(entry.permit_no, view["enterprise"]["name"], facts.STATUS_LABELS[status], page)
            records.append((e, view, status))
    assert records, "the sample built no enterprise page"

    picks: dict[str, list[str]] = {}

    def pick(page: str, why: str) -> None:
        picks.setdefault(page, []).append(why)

    def pick_max(why: str, key: Callable[[dict[str, Any]], int]) -> None:
        e, view, _ = max(records, key=lambda r: key(r[1]))
        if key(view):
            pick(e.page, why)

    def pick_first(why: str, test: Callable[[dict[str, Any]], bool]) -> None:
        for e, view, _ in records:
            if test(view):
                pick(e.page, why)
                return

    pick("index.html", "home page")
    # The edge cases of the sample's enterprises, from their records.
    e, _, _ = max(records, key=lambda r: len(r[0].name))
    pick(e.page, "longest name")
    for status in sorted({s for _, _, s in records}):
        e = next(e for e, _, s in records if s == status)
        pick(e.page, f"permit status {status}")
    for state in sorted({str(v["enterprise"].get("status")) for _, v, _ in records}):
        pick_first(f"enterprise {state}", lambda v, s=state: str(v["enterprise"].get("status")) == s)
    for kind in sorted({str((v.get("permit") or {}).get("kind")) for _, v, _ in records}):
        pick_first(f"permit kind {kind}", lambda v, k=kind: str((v.get("permit") or {}).get("kind")) == k)
    pick_first("a whole block withheld", lambda v: any(b.get("withheld") for b in _blocks(v)))
    pick_first("withheld items or fields", lambda v: any(_withheld(b) and not b.get("withheld") for b in _blocks(v)))
    pick_max("most outlets", lambda v: _count(v, "permit", "outlets"))
    pick_first("no outlets", lambda v: not _withheld(v.get("permit")) and not _count(v, "permit", "outlets"))
    pick_max("most online monitoring", lambda v: _count(v, "online_monitoring", "series"))
    pick_max("most self-monitoring", lambda v: _count(v, "self_monitoring", "series"))
    pick_max("most penalties", lambda v: _count(v, "penalties", "items"))
    pick_max("most rectifications", lambda v: _count(v, "rectifications", "items"))
    # One page of every address shape (the outlet pages, lists, 404, content pages…): the largest.
    by_type: dict[str, list[str]] = {}
    for page in html:
        by_type.setdefault(page_type(page), []).append(page)
    for shape, pages in sorted(by_type.items()):
        pick(max(pages, key=lambda p: (public / p).stat().st_size), f"largest page of type {shape}")
    enterprises = {e.page: e for e, _, _ in records}
    return Sample(public, html, enterprises, picks)


def test_the_representative_set_covers_the_sample(sample: Sample) -> None:
    """Guards the selection itself: if it silently shrank, the browser checks would prove little."""
    reasons = " ".join(r for rs in sample.picks.values() for r in rs)
    assert "home page" in reasons
    assert "permit status revoked" in reasons
    assert "a whole block withheld" in reasons
    assert "most outlets" in reasons
    assert "P/#/index.html" in reasons
    assert all((sample.public / page).is_file() for page in sample.picks)
    assert 5 <= len(sample.picks) <= 60, sample.picks


# --- (a) valid HTML -------------------------------------------------------------------------------


def test_every_page_is_valid_html(sample: Sample, vnu_ready: None) -> None:
    errors = vnu([sample.public])  # vnu walks the tree: every *.html file, in one Java run
    if errors:
        report = format_vnu(errors, sample.public)
        pytest.fail(f"{len(errors)} HTML errors (Nu HTML checker):\n{report}", pytrace=False)


# --- (b) accessibility ----------------------------------------------------------------------------


LANES = 2  # pages checked at once, each lane in its own browser contexts (renderer processes): 2 cores


def test_no_accessibility_violations(sample: Sample, sample_site: str, chromium: Browser) -> None:
    """axe-core, WCAG 2.1 A and AA: every representative page on a phone (where QR codes are scanned),
    and one page of each type on a desktop too (layout changes what can fail: scrolling regions…)."""
    jobs = []
    for page_path in sample.picks:
        jobs.append((PHONE_WIDTH, page_path))
        if page_path == "index.html" or any(why.startswith("largest page of type") for why in sample.picks[page_path]):
            jobs.append((DESKTOP_WIDTH, page_path))
    contexts = [{width: new_context(chromium, width) for width in (PHONE_WIDTH, DESKTOP_WIDTH)} for _ in range(LANES)]
    lanes = [{width: context.new_page() for width, context in lane.items()} for lane in contexts]
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for start in range(0, len(jobs), LANES):
            batch = [
                (lanes[i][width], width, page_path) for i, (width, page_path) in enumerate(jobs[start : start + LANES])
            ]
            for page, _, page_path in batch:
                page.goto(url_for(sample_site, page_path), wait_until="load")
                axe_start(page)
            for page, width, page_path in batch:
                violations = axe_result(page)
                if violations:
                    results[f"{sample.label(page_path)} at {width}px"] = violations
    finally:
        for lane in contexts:
            for context in lane.values():
                context.close()
    if results:
        report = format_axe(results)
        pytest.fail(
            f"accessibility violations on {len(results)} pages (axe-core, WCAG 2.1 A/AA):\n{report}", pytrace=False
        )


# --- (c) 360 px wide ------------------------------------------------------------------------------

# What sticks out past the right edge (the innermost such elements), and the text under 14 px.
_MEASURE = """(minPx) => {
  const tag = (el) => {  // 'td.num': the element's kind, for grouping
    const cls = typeof el.className === 'string' ? el.className.trim() : '';
    return el.tagName.toLowerCase() + (cls ? '.' + cls.split(/\\s+/).join('.') : '');
  };
  const kind = (el) => (el.parentElement ? tag(el.parentElement) + ' > ' : '') + tag(el);
  const describe = (el) => {
    const text = (el.textContent || '').replace(/\\s+/g, ' ').trim();
    const quote = text ? ` "${text.slice(0, 60)}${text.length > 60 ? '…' : ''}"` : '';
    return tag(el) + (el.id ? '#' + el.id : '') + quote;
  };
  const edge = document.documentElement.clientWidth;
  const wide = new Set([...document.body.querySelectorAll('*')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > edge + 0.5;
  }));
  const range = document.createRange();
  const small = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.data.trim() || !el) continue;
    range.selectNodeContents(walker.currentNode);  // text too long to wrap (a URL…) sticks out of its box
    if ([...range.getClientRects()].some((r) => r.right > edge + 0.5)) wide.add(el);
    if (seen.has(el)) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    if (!el.checkVisibility({visibilityProperty: true}) || (r.width <= 1 && r.height <= 1)) continue;  // hidden
    let px = parseFloat(getComputedStyle(el).fontSize);
    if (el instanceof SVGGraphicsElement && el.getScreenCTM()) {  // SVG text is scaled with its drawing
      const m = el.getScreenCTM();
      px = Math.round(px * Math.sqrt(Math.abs(m.a * m.d - m.b * m.c)) * 10) / 10;
    }
    if (px < minPx) small.push([px + 'px ' + kind(el), describe(el)]);
  }
  const kinds = new Map();
  for (const [kind, example] of small) {
    if (!kinds.has(kind)) kinds.set(kind, {count: 0, example});
    kinds.get(kind).count += 1;
  }
  const widest = (el) => Math.max(el.getBoundingClientRect().right, ...[...el.childNodes].map((n) => {
    if (n.nodeType !== Node.TEXT_NODE) return 0;
    range.selectNodeContents(n);
    return Math.max(0, ...[...range.getClientRects()].map((r) => r.right));
  }));
  const innermost = [...wide].filter((el) => ![...wide].some((o) => o !== el && el.contains(o)));
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    clientWidth: document.scrollingElement.clientWidth,
    wide: innermost.slice(0, 5).map((el) => Math.round(widest(el)) + 'px: ' + describe(el)),
    small: [...kinds].sort((a, b) => b[1].count - a[1].count).slice(0, 6)
      .map(([kind, k]) => `${kind} ×${k.count}, e.g. ${k.example}`),
    smallCount: small.length,
  };
}"""


@pytest.fixture(scope="module")
def at_360(sample: Sample, sample_site: str, chromium: Browser) -> dict[str, dict[str, Any]]:
    """Each representative page measured on a 360 px wide phone."""
    context = new_context(chromium, PHONE_WIDTH)
    try:
        page = context.new_page()
        measured = {}
        for page_path in sample.picks:
            page.goto(url_for(sample_site, page_path), wait_until="load")
            measured[page_path] = page.evaluate(_MEASURE, MIN_TEXT_PX)
        return measured
    finally:
        context.close()


def test_no_page_scrolls_sideways_at_360px(sample: Sample, at_360: dict[str, dict[str, Any]]) -> None:
    report = []
    for page_path, m in at_360.items():
        if m["scrollWidth"] > PHONE_WIDTH or m["scrollWidth"] > m["clientWidth"]:
            layout = " (laid out wider than the phone: no <meta name=viewport content=width=device-width>?)"
            hint = layout if m["clientWidth"] > PHONE_WIDTH else "; sticking out:"
            report.append(f"{sample.label(page_path)}: {m['scrollWidth']}px wide{hint}")
            report.extend(f"    {w}" for w in m["wide"])
    if report:
        pytest.fail(f"pages wider than a {PHONE_WIDTH}px phone:\n" + "\n".join(report), pytrace=False)


def test_text_is_at_least_14px_at_360px(sample: Sample, at_360: dict[str, dict[str, Any]]) -> None:
    report = []
    for page_path, m in at_360.items():
        if m["smallCount"]:
            report.append(f"{sample.label(page_path)}: {m['smallCount']} elements with text under {MIN_TEXT_PX}px:")
            report.extend(f"    {s}" for s in m["small"])
    if report:
        pytest.fail("text too small to read on a phone:\n" + "\n".join(report), pytrace=False)


# --- (d) (e) no JavaScript needed -----------------------------------------------------------------


def test_enterprise_pages_show_name_and_permit_status_without_javascript(
    sample: Sample, sample_site: str, chromium: Browser
) -> None:
    context = new_context(chromium, PHONE_WIDTH, java_script_enabled=False)
    report = []
    try:
        page = context.new_page()
        for page_path in sample.picks:
            e = sample.enterprises.get(page_path)
            if e is None:
                continue
            page.goto(url_for(sample_site, page_path), wait_until="load")
            shown = page.locator("body").inner_text()  # rendered text only: nothing hidden counts
            missing = [f"name “{e.name}”"] if e.name not in shown else []
            if not _as_a_word(e.status_label).search(shown):
                missing.append(f"permit status “{e.status_label}”")
            if missing:
                report.append(f"{sample.label(page_path)}: does not show {' or '.join(missing)}")
    finally:
        context.close()
    if report:
        pytest.fail("with JavaScript off:\n" + "\n".join(report), pytrace=False)


def _as_a_word(label: str) -> re.Pattern[str]:
    """The label standing on its own: '有效' in '状态 有效' or '有效，至…', not in '有效期' or '有效 339 天'."""
    return re.compile(rf"(?<![\u4e00-\u9fff]){re.escape(label)}(?![\u4e00-\u9fff]|\s*[0-9])")


class _Scripts(HTMLParser):
    """Collects what would run JavaScript: <script> elements, on* handlers, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag == "script":
            self.found.append(f"line {line}: <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"line {line}: <{tag} {name}=…>")
            elif value and re.match(r"\s*javascript:", value, re.IGNORECASE):
                self.found.append(f"line {line}: <{tag} {name}=“{value[:40]}”>")


def test_no_script_on_any_permit_page(sample: Sample) -> None:
    """Enterprise pages (and everything under P/: outlet pages…) must work with no JavaScript."""
    pages = [p for p in sample.html if p.startswith("P/")]
    assert set(sample.enterprises) <= set(pages)
    report = []
    for page_path in pages:
        parser = _Scripts()
        parser.feed((sample.public / page_path).read_text(encoding="utf-8"))
        parser.close()
        report.extend(f"/{page_path} {found}" for found in parser.found)
    if report:
        pytest.fail("JavaScript on permit pages:\n" + "\n".join(report[:50]), pytrace=False)
