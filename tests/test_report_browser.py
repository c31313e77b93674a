"""The report as a reader sees it: opened in a real headless Chromium, every image loads, no console errors.

Needs Debian's chromium (`.ci/run` installs it where it may); skips with the reason elsewhere. A
screenshot of each page lands in test-artifacts/.
"""

import shutil
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
# Chromium's own network calls are refused on machines without internet; keep it from making them.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield instance
        instance.close()


@pytest.mark.parametrize("page_path", [
        "reports/index.html",
        "reports/tiny_ehr/index.html",
        "reports/tiny_signal/index.html",
        "reports/tiny_digits_mlp/index.html",
        "reports/tiny_contrastive/index.html",
        "reports/tiny_scaling/index.html",
        "reports/tiny_scaling-n80-w1/index.html",
    ])
def test_report_page_renders_whole(browser, local_run: Path, page_path: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"failed to load {req.url}"))
    page.goto((local_run / page_path).as_uri(), wait_until="load")
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / (page_path.replace("/", "_").replace(".html", ".png"))), full_page=True)
    page.close()
    assert images, "the page shows no figure"
    assert [i["src"] for i in images if not i["ok"]] == [], "images that did not load"
    assert problems == []
    if page_path == "reports/index.html":
        assert len(images) >= 4
