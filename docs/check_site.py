"""Open the built documentation site in a real headless browser and check that it renders.

    python docs/check_site.py SITE_DIR [--chromium PATH] [--chromedriver PATH]

SITE_DIR is what ``mkdocs build -d SITE_DIR`` wrote. The site is served by Python's
``http.server`` on a free local port and opened in headless Chromium through selenium
(chromedriver), offline: no request leaves the machine. For every page of the ``nav`` of
``mkdocs.yml`` it checks

- the page loads, its ``<title>`` names the site and the page (its nav title), and it
  has a visible ``<h1>``;
- the navigation: the page's ``<nav>`` holds a link to every other page of the nav, and
  such links are visible (at a desktop window size);
- every image on the page loaded (``complete`` and ``naturalWidth > 0``), and the plots
  page has at least one;
- everything the page loaded (styles, scripts, images) came from the local server, and
  the browser's console logged no error;

and on the API reference that mkdocstrings rendered ``interlace.api.fit``. It prints each
check and exits with status 1 if one fails, 2 if the browser cannot be started.

Needs selenium (``pip install selenium``) and Chromium with its driver (Debian:
``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1400, 1000)
"""Wide enough for the theme's desktop layout, where the navigation is a visible sidebar."""
PAGE_TIMEOUT = 30
"""Seconds a page may take to load."""
IMAGE_PAGE = "plots.md"
"""The page that must show at least one loaded image (the plots gallery)."""
API_PAGE, API_ANCHOR = "api.md", "interlace.api.fit"
"""The API reference, and an object mkdocstrings must have rendered on it."""


class _Loader(yaml.SafeLoader):
    """A YAML loader that reads mkdocs.yml's ``!!python/name:`` and ``!ENV`` tags as None."""


_Loader.add_multi_constructor("", lambda loader, suffix, node: None)


def nav_pages(config_file: Path) -> tuple[str, list[tuple[str, str]], bool]:
    """The site's name, the (title, file) pairs of mkdocs.yml's nav in order, and
    whether the site uses directory URLs."""
    config = yaml.load(config_file.read_text(), Loader=_Loader)  # noqa: S506 (a safe loader)

    def walk(items) -> list[tuple[str, str]]:
        pages = []
        for item in items or []:
            if isinstance(item, str):
                pages.append((item, item))
            elif isinstance(item, dict):
                for title, value in item.items():
                    if isinstance(value, list):
                        pages.extend(walk(value))
                    elif isinstance(value, str) and not value.startswith(("http://", "https://")):
                        pages.append((title, value))
        return pages

    return config["site_name"], walk(config.get("nav")), bool(config.get("use_directory_urls", True))


def page_path(file: str, directory_urls: bool) -> str:
    """The URL path MkDocs gives a page's Markdown file."""
    stem = file[: -len(".md")]
    if not directory_urls:
        return f"/{stem}.html"
    if stem == "index":
        return "/"
    if stem.endswith("/index"):
        return f"/{stem[: -len('index')]}"
    return f"/{stem}/"


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on a free local port, in a daemon thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def browser(chromium: str | None, chromedriver: str | None):
    """Headless Chromium driven by selenium, with the console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-extensions", "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if chromium:
        options.binary_location = chromium
    service = Service(executable_path=chromedriver) if chromedriver else Service()
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    return driver


class Checks:
    """Checks that print as they run and remember failures."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def __call__(self, ok: bool, what: str, detail: str = "") -> bool:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else ""))
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
        return ok


IMAGES_JS = """return Array.from(document.images).map(i =>
    [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight]);"""
NAV_JS = """return Array.from(document.querySelectorAll('nav a[href]')).map(a =>
    [a.href, a.offsetParent !== null && a.getClientRects().length > 0]);"""
RESOURCES_JS = "return performance.getEntriesByType('resource').map(e => e.name);"


def check_page(driver, check: Checks, base: str, site_name: str, title: str, file: str,
               paths: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    path = paths[file]
    url = base + path
    print(f"{title} ({file}) at {path}")
    driver.get(url)
    if not check(urlsplit(driver.current_url).path == path, "loads", driver.current_url):
        return
    page_title = driver.title
    check(site_name in page_title, "title names the site", repr(page_title))
    headings = [h.text.strip() for h in driver.find_elements(By.TAG_NAME, "h1") if h.is_displayed()]
    check(bool(headings and headings[0]), "has a visible h1", repr(headings[0] if headings else None))
    if file != "index.md":
        check(title in page_title, "title names the page as the nav does", repr(title))

    links = driver.execute_script(NAV_JS)
    linked = {urlsplit(href).path: shown for href, shown in links if urlsplit(href).netloc == urlsplit(base).netloc}
    others = [p for f, p in paths.items() if f != file]
    missing = [p for p in others if p not in linked]
    check(not missing, f"navigation links to the {len(others)} other pages",
          f"missing {missing}" if missing else f"{len(links)} nav links")
    visible = [p for p in others if linked.get(p)]
    check(bool(visible), "navigation links to other pages are visible",
          f"{len(visible)} of {len(others)}" if visible else "none visible")

    images = driver.execute_script(IMAGES_JS)
    broken = [src for src, complete, width, _ in images if not (complete and width > 0)]
    check(not broken, f"{len(images)} image(s) loaded", f"not loaded: {broken}" if broken else "")
    if file == IMAGE_PAGE:
        loaded = [f"{src} {w}x{h}" for src, complete, w, h in images if complete and w > 0 and "images/" in src]
        check(bool(loaded), "the gallery shows at least one loaded plot image (naturalWidth > 0)",
              ", ".join(loaded))
    if file == API_PAGE:
        rendered = driver.find_elements(By.ID, API_ANCHOR)
        objects = driver.find_elements(By.CSS_SELECTOR, ".doc-object")
        check(bool(rendered) and rendered[0].is_displayed(), f"mkdocstrings rendered {API_ANCHOR}",
              f"{len(objects)} documented objects")

    resources = driver.execute_script(RESOURCES_JS)
    foreign = sorted({r for r in resources if not r.startswith(base)})
    check(not foreign, f"all {len(resources)} resources are local", f"outside: {foreign}" if foreign else "")
    errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    check(not errors, "no console errors", "; ".join(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the directory mkdocs build wrote")
    parser.add_argument("--config", type=Path, default=ROOT / "mkdocs.yml", help="mkdocs.yml (for the nav)")
    parser.add_argument("--chromium", default=None, help="the browser (default: chromium on PATH)")
    parser.add_argument("--chromedriver", default=None, help="the driver (default: chromedriver on PATH)")
    args = parser.parse_args(argv)

    site = args.site.resolve()
    if not (site / "index.html").is_file():
        print(f"{site}: no index.html; build the site first (mkdocs build -d {args.site})")
        return 1
    site_name, pages, directory_urls = nav_pages(args.config)
    paths = {file: page_path(file, directory_urls) for _, file in pages}
    chromium = args.chromium or next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                                      "google-chrome"))), None)
    chromedriver = args.chromedriver or shutil.which("chromedriver")
    if chromium and chromedriver:
        os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver

    server, base = serve(site)
    print(f"serving {site} at {base}; {len(pages)} pages in the nav of {args.config.name}")
    try:
        driver = browser(chromium, chromedriver)
    except Exception as exc:  # selenium's errors, or a missing browser
        server.shutdown()
        print(f"cannot start headless Chromium ({chromium}, {chromedriver}): {exc}")
        return 2
    check = Checks()
    try:
        caps = driver.capabilities
        print(f"browser: {caps.get('browserName')} {caps.get('browserVersion')}, headless, "
              f"window {WINDOW[0]}x{WINDOW[1]}")
        for title, file in pages:
            check_page(driver, check, base, site_name, title, file, paths)
    finally:
        driver.quit()
        server.shutdown()
    print(f"{check.passed} checks passed, {len(check.failed)} failed" +
          (f": {check.failed}" if check.failed else ""))
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
