"""The smoke run's reports in a real browser (Debian's chromium, driven through chromedriver by
Selenium), served over HTTP: at 1280 px the claims table and every verdict lie inside the window,
at 400 px nothing scrolls the page sideways, no image is broken, nothing logs a console error,
every relative link resolves, and the index's table sorts and filters.

Needs Debian's packages chromium and chromium-driver (installed here by the test when it runs as
root with apt-get) and the test extra's selenium; skipped, with the reason, where they are missing."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.e2e
PAGES = ["index.html", "toy_superposition/index.html", "repeat_after_me/index.html"]
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def served(repo):
    """reports/smoke over HTTP on a free loopback port."""
    handler = functools.partial(_Quiet, directory=str(repo / "reports/smoke"))
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass            # a browser that drops a connection it no longer needs (a broken pipe) is no failure


def _install_chromium() -> str:
    """apt-get install chromium chromium-driver, where this runs as root on Debian; '' or why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root, or no apt-get"
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (cmd, None):
        if attempt is None:         # the package lists may be stale: refresh them once
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600, env=env)
            attempt = cmd
        proc = subprocess.run(attempt, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode == 0:
            return ""
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"apt-get exited {proc.returncode}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    why = ""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        why = _install_chromium()
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(f"Debian's chromium and chromium-driver are not installed and could not be ({why}): "
                    "apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)    # a driver path: Selenium downloads nothing
    yield d
    d.quit()


def load(browser, url: str, width: int):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    browser.get(url)
    browser.execute_script("return document.readyState")
    return browser


@pytest.mark.parametrize("page", PAGES)
def test_fits_1280_px_with_every_verdict_in_view(browser, served, page):
    b = load(browser, served + page, 1280)
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        b.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    overflow = b.execute_script("""
        return Array.from(document.querySelectorAll('table.claims')).filter(t => t.closest('.scroll') === null)
          .map(t => [t.scrollWidth, t.parentElement.clientWidth]).filter(([a, b]) => a > b);""")
    assert overflow == []
    if page != "index.html":
        rights = b.execute_script("""
            return Array.from(document.querySelectorAll('table.claims tbody tr td:nth-child(2)'))
              .map(td => td.getBoundingClientRect().right);""")
        inner = b.execute_script("return window.innerWidth")
        assert rights and max(rights) <= inner, (max(rights), inner)


@pytest.mark.parametrize("page", PAGES)
def test_no_sideways_scroll_at_400_px(browser, served, page):
    b = load(browser, served + page, 400)
    assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        b.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("page", PAGES)
def test_images_load_links_resolve_and_no_console_errors(browser, served, page):
    b = load(browser, served + page, 1280)
    b.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")   # lazy images too
    b.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    broken = b.execute_script("""
        return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);""")
    assert broken == []
    errors = [e for e in b.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    hrefs = b.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
    ids = set(b.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    here = served + page
    checked = 0
    for href in hrefs:
        if href.startswith(("http://", "https://", "mailto:")):
            continue
        if href.startswith("#"):
            assert href[1:] in ids, href
            continue
        url = urllib.parse.urljoin(here, href).split("#")[0]
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                assert r.status == 200, href
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{page}: {href} -> {e.code}") from None
        checked += 1
    assert checked > 0


def test_index_table_sorts_and_filters(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    b = load(browser, served + "index.html", 1280)
    visible = "return Array.from(document.querySelectorAll('#all-claims tbody tr')).filter(r => r.style.display !== 'none')"
    total = len(b.execute_script(visible + ".map(r => r.dataset.claim)"))
    assert total > 20
    b.find_element(By.ID, "q").send_keys("toy_superposition")
    papers = b.execute_script(visible + ".map(r => r.dataset.paper)")
    assert papers and set(papers) == {"toy_superposition"}
    b.find_element(By.ID, "q").clear()
    b.execute_script("document.getElementById('q').dispatchEvent(new Event('input'))")
    Select(b.find_element(By.ID, "fv")).select_by_value("inconclusive")
    verdicts = b.execute_script(visible + ".map(r => r.dataset.verdict)")
    assert verdicts and set(verdicts) == {"inconclusive"}
    Select(b.find_element(By.ID, "fv")).select_by_value("")
    assert len(b.execute_script(visible + ".map(r => r.dataset.claim)")) == total
    header = b.find_element(By.CSS_SELECTOR, '#all-claims th[data-key="claim"]')
    header.click()
    claims = b.execute_script(visible + ".map(r => r.dataset.claim)")
    assert claims == sorted(claims, key=lambda s: s.lower()) or claims == sorted(claims)
    header.click()
    desc = b.execute_script(visible + ".map(r => r.dataset.claim)")
    assert desc == claims[::-1]
