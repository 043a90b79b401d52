"""Browser and HTML-checker helpers for the tests (no tests here).

- `serve(directory)`: the directory over HTTP on 127.0.0.1, on a free port, in a background thread.
- `launch(playwright)`: Debian's Chromium (never a downloaded browser) with the flags this closed
  network needs; `browser_problem()` says why it cannot start, for a skip (or a failure on CI).
- `axe(page)`: axe-core's WCAG 2.1 A/AA violations on the loaded page (or `axe_start` on several pages,
  then `axe_result`: in parallel); `format_axe({page: …})` prints them.
- `vnu(paths)`: the Nu HTML checker's errors for many files in one Java run; `format_vnu(...)`.
- `new_context(browser, width)`: a phone under 600 px wide (touch, viewport meta), else a desktop.
- `screenshot(...)`: a PNG of a page for a human to look at (also `scripts/screenshot.py`).

axe-core and vnu.jar are pinned in tools/package.json and installed by `scripts/setup --test`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tools" / "node_modules"
AXE_JS = NODE_MODULES / "axe-core" / "axe.min.js"
VNU_JAR = NODE_MODULES / "vnu-jar" / "build" / "dist" / "vnu.jar"
SETUP_HINT = "run `bash scripts/setup --test`"

# As root Chromium needs --no-sandbox; the rest keep it off this machine's closed network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def chromium_path() -> str | None:
    """Debian's Chromium; YIMATONG_CHROMIUM overrides (another Chromium build, say)."""
    override = os.environ.get("YIMATONG_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return f"Chromium is not installed (Debian package `chromium`): {SETUP_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"the Python package `playwright` is not installed: {SETUP_HINT}"
    if not AXE_JS.is_file():
        return f"axe-core is not installed ({AXE_JS.relative_to(ROOT)} is missing): {SETUP_HINT}"
    return None


def vnu_problem() -> str | None:
    """Why the Nu HTML checker cannot run here, or None when it can."""
    if shutil.which("java") is None:
        return f"Java is not installed (Debian package `default-jre-headless`): {SETUP_HINT}"
    if not VNU_JAR.is_file():
        return f"vnu.jar is not installed ({VNU_JAR.relative_to(ROOT)} is missing): {SETUP_HINT}"
    return None


# --- serving ----------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 at a free port; yields the base URL, ending in '/'."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"serve {directory}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def url_for(base_url: str, relative: str) -> str:
    """The served URL of a site-relative file path ('P/…/index.html' → '…/P/…/')."""
    if relative == "index.html" or relative.endswith("/index.html"):
        relative = relative[: -len("index.html")]
    return base_url + quote(relative)


# --- Chromium ---------------------------------------------------------------------------------


def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium through Playwright (`npx playwright install` cannot work here)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(f"Chromium is not installed: {SETUP_HINT}")
    return playwright.chromium.launch(executable_path=path, headless=True, args=list(CHROMIUM_ARGS))


def axe(page: Page, tags: Iterable[str] = WCAG_TAGS) -> list[dict[str, Any]]:
    """axe-core's violations on the page as loaded (rule id, impact, help, nodes with target/html)."""
    axe_start(page, tags)
    return axe_result(page)


def axe_start(page: Page, tags: Iterable[str] = WCAG_TAGS) -> None:
    """Start axe-core on the page and return at once: pages in different browser contexts (so in
    different renderer processes) are checked in parallel; `axe_result(page)` waits for the result."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE_JS)
    options = {"runOnly": {"type": "tag", "values": list(tags)}, "resultTypes": ["violations"]}
    page.evaluate("options => { window.__yimatongAxe = window.axe.run(document, options); }", options)


def axe_result(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("() => window.__yimatongAxe.then((results) => results.violations)"))


def format_axe(results: Mapping[str, list[dict[str, Any]]], max_pages: int = 4) -> str:
    """Violations on many pages ({page: axe(page)}) as readable lines: rule id, impact, what to fix,
    each offending element (selector, HTML, why) and the pages it is on; one failure shared by many
    pages (a layout's) is listed once."""
    failures: dict[tuple[str, str], dict[str, Any]] = {}
    for page_name, violations in results.items():
        for v in violations:
            for node in v["nodes"]:
                html = _snip(node.get("html", ""))
                failure = failures.setdefault((v["id"], html), {"rule": v, "node": node, "pages": []})
                failure["pages"].append(page_name)
    lines = []
    worst_first = sorted(failures.items(), key=lambda kv: (_IMPACT.get(kv[1]["rule"].get("impact"), 9), kv[0]))
    for (rule_id, html), f in worst_first:
        rule, node, pages = f["rule"], f["node"], f["pages"]
        lines.append(f"[{rule.get('impact')}] {rule_id}: {rule['help']} ({rule.get('helpUrl', '').split('?')[0]})")
        target = " ".join(" > ".join(t) if isinstance(t, list) else t for t in node.get("target", []))
        lines.append(f"    element {html}  at {target}")
        summary = [s.strip() for s in (node.get("failureSummary") or "").splitlines()[1:] if s.strip()]
        if summary:
            lines.append(f"    why: {'; '.join(summary[:3])}")
        more = f" … and {len(pages) - max_pages} more" if len(pages) > max_pages else ""
        lines.append(f"    on {len(pages)} page(s): {', '.join(pages[:max_pages])}{more}")
    return "\n".join(lines)


_IMPACT = {"critical": 0, "serious": 1, "moderate": 2, "minor": 3}


def new_context(
    browser: Browser, width: int = 360, height: int | None = None, scale: float = 2, **options: Any
) -> BrowserContext:
    """A browser context `width` CSS px wide. Under 600 px it is a phone: touch, overlay scroll bars
    and the page's viewport meta honoured (a page without one is laid out 980 px wide, as on a phone)."""
    phone = width < 600
    viewport = {"width": width, "height": height or (740 if phone else 900)}
    return browser.new_context(
        viewport=viewport, device_scale_factor=scale, is_mobile=phone, has_touch=phone, **options
    )


def screenshot(
    browser: Browser, url: str, out: Path, width: int = 360, height: int = 800, scale: float = 1, full_page: bool = True
) -> Path:
    """A PNG of the page at `url`, `width` CSS pixels wide (a phone's viewport when under 600)."""
    context = new_context(browser, width, height, scale)
    try:
        page = context.new_page()
        page.goto(url, wait_until="load")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=full_page)
    finally:
        context.close()
    return out


# --- the Nu HTML checker ----------------------------------------------------------------------


def vnu(paths: Iterable[Path], timeout: float = 600) -> list[dict[str, Any]]:
    """The Nu HTML checker's errors for all `paths`, checked in one Java run (start-up is slow).

    A directory stands for every *.html/*.htm file under it (vnu walks it: the command line stays
    short however many pages there are); other files are skipped. Each message is vnu's JSON (type,
    message, extract, lastLine, firstColumn…) with `path` added.
    """
    files = [str(p) for p in paths]
    if not files:
        return []
    missing = [f for f in files if not Path(f).exists()]
    if missing:  # vnu would pass over them in silence
        raise FileNotFoundError(f"nothing to check at {', '.join(missing)}")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(f"Java is not installed: {SETUP_HINT}")
    options = ["--format", "json", "--errors-only", "--skip-non-html", "--stdout"]
    # C1 only and the serial collector: half the CPU time and a quarter of the memory of the defaults.
    jvm = ["-Xss4m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
    command = [java, *jvm, "-jar", str(VNU_JAR), *options, *files]
    run = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False)
    try:
        messages = json.loads(run.stdout)["messages"]
    except (ValueError, KeyError) as err:
        raise RuntimeError(f"vnu.jar gave no JSON (exit {run.returncode}): {run.stderr or run.stdout}") from err
    errors = [m for m in messages if m.get("type") in ("error", "non-document-error")]
    for m in errors:
        m["path"] = _path_of(m.get("url", ""))
    return errors


def format_vnu(errors: list[dict[str, Any]], root: Path | None = None) -> str:
    lines = []
    for m in errors:
        path = m.get("path", "?")
        if root is not None:
            with suppress(ValueError):
                path = str(Path(path).relative_to(root))
        where = f"{path}:{m.get('lastLine', '?')}:{m.get('firstColumn', m.get('lastColumn', '?'))}"
        extract = f"  ← {_snip(m['extract'])}" if m.get("extract") else ""
        lines.append(f"{where}: {m.get('message', '')}{extract}")
    return "\n".join(lines)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return unquote(parts.path) if parts.scheme == "file" else url


def _snip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
