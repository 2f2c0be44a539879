"""Learning, live, in a real browser: the panel and the filters appear while a run trains, then a slider replays them.

Screenshots land in test-artifacts/learning-*.png (look at them).
"""
from __future__ import annotations

import re
from collections import Counter

import test_browser
from test_browser import no_exceptions, open_page, poll, screenshot, settle

# test_browser.py's fixtures (the app on the tiny data set, Chromium, a 1400 x 1000 page) serve these tests too.
server, browser, page = test_browser.server, test_browser.browser, test_browser.page
pytestmark = test_browser.pytestmark

AFTER_EPOCH = re.compile(r"What it sees after epoch (\d+)")
# Enough epochs that the run is still some way from its last when the panel first shows: at 8, a fast hour
# trained all of them (about a second each on the tiny data) before the page first drew the panel.
EPOCHS = 20


def screenshot_panel(page, name: str) -> None:
    """The page scrolled so that the panel and the filters fill the 1400 x 1000 window (the app scrolls
    inside its main area, so a full-page screenshot would stop at the curves)."""
    page.get_by_text(AFTER_EPOCH).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.wheel(0, -160)     # a little of what is above: the slider, or the curves
    page.wait_for_timeout(600)
    screenshot(page, name)


def shown_epoch(page) -> int:
    return int(AFTER_EPOCH.search(page.inner_text("[data-testid=stMain]")).group(1))


def test_the_panel_appears_live_and_the_slider_replays_it(page, server):
    open_page(page, server, "train")
    page.get_by_role("spinbutton", name="Epochs").fill(str(EPOCHS))
    page.get_by_role("spinbutton", name="Batch size").fill("4")
    page.get_by_role("textbox", name="Run name").fill("learning run")
    page.get_by_role("button", name="Start training").click()

    # Live: after the first epoch the panel and the filters appear while the run is still going.
    page.get_by_text(AFTER_EPOCH).first.wait_for(timeout=120_000)
    assert page.get_by_role("button", name="Stop").count() == 1, "the run ended before the panel was seen live"
    first = shown_epoch(page)
    page.get_by_text(re.compile(r"(right|wrong, it is a \w+)$")).first.wait_for()
    page.get_by_role("img", name=re.compile("first-layer filters after epoch")).wait_for()
    page.get_by_role("img", name=re.compile("a test picture of")).nth(7).wait_for()
    assert page.get_by_role("img", name=re.compile("a test picture of")).count() == 8
    no_exceptions(page)
    screenshot_panel(page, "learning-live")
    page.wait_for_function(f"""() => {{
        const m = document.querySelector('[data-testid=stMain]').innerText.match(/What it sees after epoch (\\d+)/);
        return m && Number(m[1]) > {first};
    }}""", timeout=60_000)
    assert page.get_by_role("button", name="Stop").count() == 1 or "Finished" in page.inner_text("body")

    # After the end: a slider over the epochs replays them.
    page.get_by_text("Finished: test accuracy").wait_for(timeout=240_000)
    settle(page)
    slider = page.get_by_role("slider")
    slider.wait_for(timeout=30_000)
    assert shown_epoch(page) == EPOCHS
    no_exceptions(page)
    screenshot_panel(page, "learning-finished")
    # Two even rows of four, on a 1920-pixel projector too, where the row held seven and left one under them.
    pictures = page.get_by_role("img", name=re.compile("a test picture of"))
    for width in (1920, 1400):
        page.set_viewport_size({"width": width, "height": 1000})
        rows = poll(lambda: Counter(round(b["y"]) for b in pictures.evaluate_all(
            "ps => ps.map(p => p.getBoundingClientRect().toJSON())")), lambda r: sorted(r.values()) == [4, 4])
        assert sorted(rows.values()) == [4, 4], (width, rows)
    slider.focus()
    page.keyboard.press("Home")
    page.get_by_text("What it sees after epoch 1", exact=True).wait_for(timeout=30_000)
    page.get_by_role("img", name=re.compile(r"^\d+ first-layer filters after epoch 1$")).wait_for()
    settle(page)
    no_exceptions(page)
    screenshot_panel(page, "learning-replay-epoch-1")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.get_by_text("What it sees after epoch 4", exact=True).wait_for(timeout=30_000)
    no_exceptions(page)
