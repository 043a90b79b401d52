"""A PNG of a page, to look at it as a person would: headless Debian Chromium (scripts/setup --test).

    .venv/bin/python scripts/screenshot.py public/P/91450621MA5LDGE43A001P/ out.png
    .venv/bin/python scripts/screenshot.py public/index.html desk.png --width 1280 --viewport-only
    .venv/bin/python scripts/screenshot.py http://127.0.0.1:8000/ out.png

A local file or folder is served over HTTP from its site root (the outermost folder above it holding
an index.html, or --root), so root-relative links and styles load as they would on the web. Under
600 px wide the page is shown as a phone shows it (touch, the viewport meta honoured).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import browser_problem, launch, screenshot, serve  # noqa: E402


def site_root(path: Path) -> Path:
    """The outermost folder above `path` (itself included, if a folder) that holds an index.html."""
    found = path if path.is_dir() else path.parent
    for folder in [found, *found.parents]:
        if (folder / "index.html").is_file():
            found = folder
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", help="a URL, or an HTML file or folder (its index.html) of a built site")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=360, help="viewport width in CSS px (default 360)")
    parser.add_argument("--height", type=int, default=800, help="viewport height in CSS px (default 800)")
    parser.add_argument("--scale", type=float, default=1, help="device pixels per CSS px (default 1)")
    parser.add_argument("--viewport-only", action="store_true", help="only what fits the viewport, not the page")
    parser.add_argument("--root", type=Path, help="the site's root folder, for a local page (default: found)")
    args = parser.parse_args(argv)

    problem = browser_problem()
    if problem:
        print(f"screenshot: {problem}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        url = args.page
        if "://" not in url:
            local = Path(url).resolve()
            if not local.exists():
                print(f"screenshot: no such file or folder: {url}", file=sys.stderr)
                return 1
            root = args.root.resolve() if args.root else site_root(local)
            relative = local.relative_to(root).as_posix()
            if local.is_dir():
                relative = "" if relative == "." else relative + "/"
            url = stack.enter_context(serve(root)) + relative
        playwright = stack.enter_context(sync_playwright())
        browser = launch(playwright)
        stack.callback(browser.close)
        screenshot(browser, url, args.out, args.width, args.height, args.scale, full_page=not args.viewport_only)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
