"""The Train page in Chromium while a run trains and after it has ended, at 1400x1000 and 1280x720.

Screenshots land in test-artifacts/train/ (the window, and the whole page as
"-whole"): look at them. Each is checked for what a person would notice at
once (test_browser_screens.PROBLEMS_JS): an error box, a cut-off label or
value, a chart that draws nothing.
"""
from __future__ import annotations

import io
import re
import time
import zipfile

import test_browser
from cifar_core import charts, models
from cifar_core.config import PRESETS
from test_browser import ARTIFACTS, new_context, no_exceptions, open_page, settle
from test_browser_screens import PROBLEMS_JS, wait_for_charts

# test_browser.py's fixtures: the app on the tiny data set, and Chromium.
server, browser = test_browser.server, test_browser.browser
pytestmark = test_browser.pytestmark

SIZES = [(1400, 1000), (1280, 720)]
SHOTS = ARTIFACTS / "train"
AFTER_EPOCH = re.compile(r"What it sees after epoch (\d+)")
LEFT = re.compile(r"Epoch \d+ of 40 · .* so far · about .+ left")


def photograph(page, name: str) -> list[str]:
    """The page at each size, the window and the whole of it; what a person would see wrong, in words."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        settle(page)
        wait_for_charts(page)
        page.screenshot(path=SHOTS / f"{name}-{width}x{height}.png")
        problems += [f"{name} at {width}x{height}: {p}" for p in page.evaluate(PROBLEMS_JS)]
        # Within 2 pixels: a top label half above its plot takes them from it (charts.PANEL_CHROME).
        # The accuracy panel's key under it made its plot 24 pixels shorter than the loss one's beside it, and
        # their x axes stood at different heights.
        plots = [round(f["height"]) for f in test_browser.plot_frames(page) if f["title"].startswith(("Loss (", "Accuracy ("))]
        if len(plots) != 2 or any(abs(plot - charts.PANEL_HEIGHT) > 2 for plot in plots):
            problems.append(f"{name} at {width}x{height}: the loss and accuracy plots are {plots} pixels tall, "
                            f"not {charts.PANEL_HEIGHT} each")
        # Streamlit scrolls its main area itself: a window as tall as the content shows all of it.
        tall = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": width, "height": min(max(tall, height), 8000)})
        wait_for_charts(page, 5)
        page.screenshot(path=SHOTS / f"{name}-{width}x{height}-whole.png")
        problems += [f"{name} at {width}x{height}, whole page: {p}" for p in page.evaluate(PROBLEMS_JS)]
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
    return problems


def test_the_train_page_during_and_after_a_run(browser, server):
    context = new_context(browser, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_page(page, server, "train")
        # What the network is for shows in its box.
        network = page.locator("[data-testid=stSelectbox]").filter(has_text="Network").locator("input").first
        assert models.PURPOSES[PRESETS["quick"]["arch"]] in network.input_value()
        page.get_by_role("spinbutton", name="Epochs").fill("40")   # still training when Stop is pressed
        page.get_by_role("spinbutton", name="Batch size").fill("4")
        page.get_by_role("textbox", name="Run name").fill("Screens run")
        page.get_by_role("button", name="Start training").click()

        # During: after the first epoch, with the test dots on the curves and the time left.
        page.get_by_text(AFTER_EPOCH).first.wait_for(timeout=180_000)
        progress = page.locator("[data-testid=stProgress]")
        # The panel and the progress line refresh on their own ticks: the estimate follows within a few.
        deadline = time.monotonic() + 60
        while not LEFT.search(progress.inner_text()) and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert LEFT.search(progress.inner_text()), progress.inner_text()
        problems = photograph(page, "running")
        # The board is live too: its row moves on while the run trains, and never says "None".
        board = page.locator("[data-testid=stDataFrame]")
        first_row = board.text_content()
        page.wait_for_function("first => document.querySelector('[data-testid=stDataFrame]').textContent !== first",
                               arg=first_row, timeout=20_000)
        assert "None" not in board.text_content(), board.text_content()
        no_exceptions(page)

        # After: the run's one accuracy, its wall time, and the board with it.
        page.get_by_role("button", name="Stop").click()
        done = page.get_by_text(re.compile(r"Stopped: test accuracy \d+\.\d%\. It took .* from its start"))
        done.wait_for(timeout=120_000)
        page.wait_for_function("() => document.querySelector('[data-testid=stDataFrame]')"
                               "?.textContent.includes('stopped')", timeout=15_000)
        assert "None" not in board.text_content() and re.search(r"\d+\.\d%", board.text_content())
        # Pick the run on the board: its buttons, and no second copy of the curves and replay shown above.
        board.scroll_into_view_if_needed()
        box = board.bounding_box()
        page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)      # the first row's tick box, under the header
        page.get_by_text("This run's curves and what it learned are shown above").wait_for()
        assert page.get_by_text("Each run has a colour of its own").count() == 0
        assert page.locator("[data-testid=stVegaLiteChart]").count() == 2      # loss and accuracy, once
        # Its model and report, as the buttons' addresses send them (the model from disk, in pieces).
        def sent(button: str):
            href = page.get_by_role("link", name=re.compile(re.escape(button))).get_attribute("href")
            return context.request.get(href if "://" in href else f"{server}/{href}")
        model, report = sent("Model (.keras)"), sent("Report (.html)")
        assert model.ok and model.headers["content-disposition"] == 'attachment; filename="Screens-run.keras"'
        assert {"config.json", "model.weights.h5"} <= set(zipfile.ZipFile(io.BytesIO(model.body())).namelist())
        assert report.ok and report.headers["content-disposition"] == 'attachment; filename="Screens-run.html"'
        assert "<h1>Screens run</h1>" in report.text() and "<svg" in report.text()
        problems += photograph(page, "ended")
        no_exceptions(page)
        assert not problems, "\n".join(problems)
    finally:
        context.close()
