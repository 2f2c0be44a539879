"""Look inside, in a real browser: pick a picture, see its maps drawn, look closer, open every tab.

Screenshots land in test-artifacts/inside-*.png (look at them).
"""
from __future__ import annotations

import re
from collections import Counter

import test_browser
from test_browser import click_picture, no_exceptions, open_page, poll, screenshot, settle

# test_browser.py's fixtures (the app on the tiny data set, Chromium, a 1400 x 1000 page) serve these tests too.
server, browser, page = test_browser.server, test_browser.browser, test_browser.page
pytestmark = test_browser.pytestmark

# How many <img> of the page have loaded with pixels, and how many of those hold more than one colour.
DRAWN = """() => {
  const images = [...document.querySelectorAll('[data-testid=stImage] img')].filter(i => i.complete && i.naturalWidth > 0);
  const canvas = document.createElement('canvas');
  const context = canvas.getContext('2d', {willReadFrequently: true});
  let varied = 0;
  for (const image of images) {
    canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < pixels.length && colours.size < 2; i += 4) colours.add(pixels[i] << 16 | pixels[i + 1] << 8 | pixels[i + 2]);
    varied += colours.size > 1;
  }
  return [images.length, varied];
}"""


def wait_for_pictures(page, at_least: int, timeout_ms: int = 30_000) -> tuple[int, int]:
    page.wait_for_function(
        f"[...document.querySelectorAll('[data-testid=stImage] img')].filter(i => i.complete && i.naturalWidth > 0)"
        f".length >= {at_least}", timeout=timeout_ms)
    return tuple(page.evaluate(DRAWN))


def test_look_inside_pick_a_picture_see_its_maps_and_every_tab(page, server):
    open_page(page, server, "inside")
    page.get_by_role("heading", name="Look inside the network").wait_for()
    page.get_by_text("Click a picture to look inside").wait_for(timeout=120_000)    # a fresh server loads TensorFlow
    page.locator("[data-testid=stVegaLiteChart]").first.wait_for()
    page.wait_for_timeout(500)   # vega draws after the element appears
    no_exceptions(page)
    screenshot(page, "inside-choose")

    click_picture(page, 1)
    page.get_by_text("A closer look at one map").wait_for(timeout=60_000)
    page.get_by_text("The parts of test pictures that excite it most").wait_for(timeout=60_000)
    settle(page)
    # The picture, 4 blocks x 16 maps, one map large and its nine patches: 67 pictures, none of them blank.
    loaded, varied = wait_for_pictures(page, 67)
    assert loaded >= 67 and varied >= 60, (loaded, varied)
    no_exceptions(page)
    screenshot(page, "inside-maps")
    page.get_by_text("Block 3:").scroll_into_view_if_needed()
    screenshot(page, "inside-maps-deeper")
    # Each block's 16 maps in even rows at any width: a row that wrapped left one or two alone under the
    # rest (15 and 1 at a 1920-pixel projector, 5 rows of 3 and 1 on a phone).
    for width, to_a_row in ((1920, 16), (390, 4), (1400, 8)):
        page.set_viewport_size({"width": width, "height": 1000})
        for block in ("Whitening", "Block 1", "Block 2", "Block 3"):
            maps = page.get_by_role("img", name=re.compile(f"^{block}, map "))
            rows = poll(lambda: Counter(round(b["y"]) for b in maps.evaluate_all(
                "ms => ms.map(m => m.getBoundingClientRect().toJSON())")), lambda r: set(r.values()) == {to_a_row})
            assert maps.count() == 16 and set(rows.values()) == {to_a_row}, (width, block, rows)
            right = maps.evaluate_all("ms => Math.max(...ms.map(m => m.getBoundingClientRect().right))")
            assert right <= width

    box = page.get_by_role("combobox", name="Map")
    box.evaluate("e => e.scrollIntoView({block: 'center'})")    # in sight first: a list opened while the page
    page.wait_for_timeout(300)                                  # still scrolls to it is closed by the scroll
    box.click()
    option = page.get_by_role("option").nth(3)
    number = option.inner_text().split()[1]                  # "map 41 (responds 1.57 on average)"
    option.click()
    page.get_by_text(f"Map {number} of Block 1:").wait_for()
    settle(page)
    no_exceptions(page)
    page.get_by_text("The parts of test pictures that excite it most").scroll_into_view_if_needed()
    screenshot(page, "inside-closer")

    page.get_by_role("tab", name="Its layers").click()
    page.locator("[data-testid=stTable]").first.wait_for(timeout=30_000)
    settle(page)
    assert "weights in all" in page.inner_text("body")
    no_exceptions(page)
    screenshot(page, "inside-layers")
    # A phone is shown the layers as a list: the table showed three of its seven columns there, each row as
    # tall as its last column's words wrapped out of sight.
    table, listed = page.locator(".st-key-layers_table"), page.locator(".st-key-layers_list")
    assert table.is_visible() and not listed.is_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    listed.wait_for()
    assert not table.is_visible() and listed.get_by_text("maps shown").count() >= 1
    screenshot(page, "inside-layers-phone")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.get_by_role("tab", name="Its first filters").click()
    page.get_by_text("The fixed first layer").wait_for(timeout=30_000)
    settle(page)
    loaded, varied = wait_for_pictures(page, 24 + 64)
    assert varied >= 24 + 64 - 4, (loaded, varied)       # min-max normalised: every filter spans dark to bright
    no_exceptions(page)
    screenshot(page, "inside-filters")

    page.get_by_role("tab", name="How your runs learned").click()
    page.get_by_text("Two training runs side by side").wait_for(timeout=30_000)
    settle(page)
    no_exceptions(page)
    screenshot(page, "inside-runs")


def test_predict_hands_its_picture_to_look_inside(page, server):
    open_page(page, server, "predict")
    page.get_by_role("radio", name="Test picture").click()
    page.get_by_text("the right answer is").wait_for(timeout=60_000)
    page.get_by_role("button", name="Look inside the network").click()
    page.get_by_role("heading", name="Look inside the network").wait_for(timeout=60_000)
    page.get_by_text("Block 3").first.wait_for(timeout=60_000)
    settle(page)
    loaded, varied = wait_for_pictures(page, 65)
    assert varied >= 60, (loaded, varied)
    no_exceptions(page)
    screenshot(page, "inside-from-predict")


def test_explore_s_closer_look_hands_its_picture_to_look_inside(page, server):
    """The closer look is a dialog, whose button reruns the dialog alone: it still opens Look inside with
    the picture, and the dialog is not there again when the visitor comes back to Explore."""
    open_page(page, server, "explore")
    click_picture(page, 3)
    closer = page.get_by_role("dialog")
    closer.get_by_text("The model's top guesses", exact=True).wait_for(timeout=60_000)
    closer.get_by_role("button", name="Look inside the network").click()
    page.get_by_role("heading", name="Look inside the network").wait_for(timeout=60_000)
    page.get_by_text("Block 3").first.wait_for(timeout=60_000)
    assert page.get_by_role("dialog").count() == 0
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Explore").click()
    page.get_by_role("heading", name="Explore the data").wait_for()
    page.get_by_text("200 pictures, page 1 of 4").wait_for()
    settle(page)
    assert page.get_by_role("dialog").count() == 0
    no_exceptions(page)


def test_look_inside_a_tutorial_cnn_trained_in_the_app(page, server):
    """The tutorial CNN has no whitening and no BatchNorm: train one on the Train page, then look inside it."""
    open_page(page, server, "train")
    page.get_by_role("radio", name="TensorFlow tutorial").click()
    settle(page)
    page.get_by_role("spinbutton", name="Epochs").fill("1")
    page.get_by_role("textbox", name="Run name").fill("tutorial inside")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Finished: test accuracy").wait_for(timeout=180_000)
    settle(page)

    open_page(page, server, "inside")
    page.get_by_role("combobox", name="Model used on every page").click()
    page.get_by_role("option", name="Run tutorial inside", exact=False).first.click()
    settle(page)
    page.locator("[data-testid=stVegaLiteChart]").first.wait_for()
    click_picture(page, 2)
    page.get_by_text("A closer look at one map").wait_for(timeout=60_000)
    settle(page)
    # Three blocks of up to 16 maps, the picture, the large map: all drawn, none blank.
    loaded, varied = wait_for_pictures(page, 30)
    assert loaded >= 30 and varied >= 25, (loaded, varied)
    assert "Whitening" not in page.inner_text("body")
    no_exceptions(page)
    screenshot(page, "inside-tutorial")
