"""The report as a reader sees it: opened in a real headless Chromium, every image loads, no console errors,
the scorecard reads one folded line per claim, and the steps-to-target figure shows the target on the curves.

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


SCORECARDS = {
    "reports/index.html": None,  # every study's claims
    "reports/tiny_ehr/index.html": "reports/tiny_ehr/scorecard.csv",
    "reports/tiny_scaling/index.html": "reports/tiny_scaling/scorecard.csv",
}


@pytest.mark.parametrize("page_path", list(SCORECARDS))
def test_scorecard_is_one_folded_line_per_claim(browser, local_run: Path, page_path: str):
    """Each claim reads on one line (claim, study, verdict, estimate); its statistic opens on a click."""
    import pandas as pd

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto((local_run / page_path).as_uri(), wait_until="load")
    rows = page.eval_on_selector_all(
        ".scorecard details.claim",
        """ds => ds.map(d => ({open: d.open, height: d.querySelector('summary').getBoundingClientRect().height,
                line: parseFloat(getComputedStyle(d.querySelector('summary')).lineHeight),
                text: d.querySelector('summary').innerText}))""",
    )
    csv = SCORECARDS[page_path]
    expected = len(pd.read_csv(local_run / csv)) if csv else sum(
        len(pd.read_csv(p)) for p in (local_run / "reports").glob("*/scorecard.csv") if p.stat().st_size > 1
    )
    assert len(rows) == expected > 0
    assert not any(r["open"] for r in rows), "claims start folded"
    for r in rows:  # one line of text plus the row's padding, never a column stretched to many lines
        assert r["height"] < 2 * r["line"] + 12, r
        assert any(v in r["text"] for v in ("replicated", "inconclusive"))
        assert "[" in r["text"] or any(v in r["text"] for v in ("no estimate", "no interval")), (
            "an estimate with its interval, or why there is none"
        )
    first = page.locator(".scorecard details.claim").first
    assert not first.locator("dl").is_visible()
    first.locator("summary").click()
    assert first.evaluate("d => d.open") and first.locator("dl").is_visible()
    assert "verdict rule" in first.locator("dl").inner_text()
    page.close()


@pytest.mark.parametrize("study", ["tiny_ehr", "tiny_signal", "tiny_digits_mlp", "tiny_scaling-n80-w1"])
def test_steps_to_target_figure_shows_the_target_on_the_curves(browser, local_run: Path, study: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto((local_run / f"reports/{study}/index.html").as_uri(), wait_until="load")
    figure = page.locator("figure#steps_to_target")
    size = figure.locator("img").evaluate("i => ({ok: i.complete, w: i.naturalWidth, h: i.naturalHeight})")
    assert size["ok"] and size["w"] > 2 * size["h"] > 0, "two panels side by side: loss curves and steps to target"
    caption = figure.locator("figcaption").inner_text()
    assert "target" in caption and "baseline" in caption
    section = " ".join(page.locator("h2:text('Critical batch size') ~ p").all_inner_texts())
    assert "Target:" in section
    if study == "tiny_signal":  # its critical batch size comes from runs trained to a target known before training
        assert "Trained to the target." in section and "known before training" in section
    page.close()
