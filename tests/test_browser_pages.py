"""Home, Explore, Evaluate and Quiz in a real browser, at a projector's 1280 x 720 and at 1400 x 1000.

Screenshots land in test-artifacts/pages-<page>-<width>x<height>.png: look at them.
"""
from __future__ import annotations

import re

import pytest

import test_browser
from test_browser import (ARTIFACTS, browser, click_picture, no_exceptions, open_page, server,  # noqa: F401
                          new_context, poll, settle)

VIEWPORTS = [(1400, 1000), (1280, 720)]
PAGES = {"home": "", "explore": "explore", "evaluate": "evaluate", "quiz": "quiz"}

pytestmark = test_browser.pytestmark     # skipped, not failed, where Chromium is not installed


@pytest.fixture(params=VIEWPORTS, ids=lambda v: f"{v[0]}x{v[1]}")
def sized_page(request, browser):  # noqa: F811
    context = new_context(browser, viewport={"width": request.param[0], "height": request.param[1]})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.size = f"{request.param[0]}x{request.param[1]}"
    yield page
    context.close()


def clean(page, name: str) -> None:
    """No exception, no error box, every chart drawn with marks, and a screenshot to look at."""
    no_exceptions(page)
    errors = page.locator("[data-testid=stAlertContentError]")
    assert errors.count() == 0, errors.first.inner_text()
    for chart in page.locator("[data-testid=stVegaLiteChart]:visible").all():
        # A data mark (not an axis or a title): Vega draws each as a path, an image or a text.
        chart.locator(".role-mark path, .role-mark image, .role-mark text").first.wait_for(state="attached")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"pages-{name}-{page.size}.png")
    # Streamlit scrolls inside its main area, so a "full page" shot stops at the window: make the
    # window as tall as the page for a second shot of all of it, at the same width.
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(500)
        page.screenshot(path=ARTIFACTS / f"pages-{name}-{page.size}-whole.png")
        page.set_viewport_size(size)


LOADED = """([selector, count]) => {
  const shown = [...document.querySelectorAll(selector)].filter(i => i.getClientRects().length);
  return shown.length >= count && shown.every(i => i.complete && i.naturalWidth > 0);
}"""


def same_size(page, selector: str, count: int = 1) -> set:
    """The distinct rendered sizes of the pictures matching `selector`, once at least `count` are shown and
    all of them have loaded (one still loading measures nothing high)."""
    page.wait_for_function(LOADED, arg=[selector, count])
    return {(round(box["width"]), round(box["height"]))
            for box in (img.bounding_box() for img in page.locator(selector).all()) if box}


def test_home(sized_page, server):  # noqa: F811
    open_page(sized_page, server, PAGES["home"])
    pictures = sized_page.locator("[data-testid=stImage] img")
    pictures.nth(9).wait_for()
    assert pictures.count() == 10
    assert len(same_size(sized_page, "[data-testid=stImage] img", 10)) == 1, "captions changed the pictures' sizes"
    clean(sized_page, "home")


# Whether the first grid on the page draws this many pictures (Vega draws them a moment after a rerun).
GRID_OF = "count => document.querySelectorAll('[data-testid=stVegaLiteChart] svg')[0]?.querySelectorAll('image').length === count"


def framed(page, columns: int = 10, cell: int = 64) -> list[int]:
    """The grid cells with the chosen picture's red frame, read from the pixels the browser drew."""
    import io

    import numpy as np
    from PIL import Image
    page.mouse.move(1, 1)           # no tooltip over the grid
    page.wait_for_timeout(700)
    drawn = page.locator("[data-testid=stVegaLiteChart]").first.locator("canvas, svg").first
    pixels = np.asarray(Image.open(io.BytesIO(drawn.screenshot())).convert("RGB"), np.int32)
    # #ff4b4b at Vega's 0.7 opacity for square marks, on white: (255, 128, 128)
    red = (pixels[..., 0] > 235) & (abs(pixels[..., 1] - 128) < 40) & (abs(pixels[..., 1] - pixels[..., 2]) < 20)
    cells = []
    for position in range(columns * (pixels.shape[0] // cell)):
        row, column = divmod(position, columns)
        # The frame is a 62-pixel square about the cell's centre (the grid has a 5-pixel margin): a ring
        # 28 to 31 pixels from it, short of where a neighbour's frame begins.
        y, x = 5 + row * cell + cell // 2, 5 + column * cell + cell // 2
        ring = red[y - 31:y + 31, x - 31:x + 31].copy()
        ring[3:-3, 3:-3] = False
        if ring.sum() > 60:
            cells.append(position)
    return cells


def test_explore_and_a_pick_that_belongs_to_its_split(sized_page, server):  # noqa: F811
    page = sized_page
    open_page(page, server, PAGES["explore"])
    page.get_by_text("200 pictures, page 1 of 4").wait_for()
    # Scrolled down to the grid's last row, a click there opens the closer look in sight, and closing it
    # leaves the page where it was: drawn afresh, the grid was empty for a moment, and the page jumped to
    # its top.
    scrolled = "document.querySelector('[data-testid=stMain]').scrollTop"
    page.evaluate(f"{scrolled} = 100000")
    page.wait_for_timeout(300)
    bottom = page.evaluate(scrolled)
    click_picture(page, 45)
    closer = page.get_by_role("dialog")
    closer.get_by_text("The model's top guesses", exact=True).wait_for(timeout=120_000)   # a fresh server loads TensorFlow first
    page.keyboard.press("Escape")
    closer.wait_for(state="detached")
    settle(page)
    assert abs(page.evaluate(scrolled) - bottom) <= 1, (bottom, page.evaluate(scrolled))
    page.locator("[data-testid=stSelectbox]").filter(has_text="Class").click()
    page.get_by_role("option", name="cat", exact=True).click()
    settle(page)
    page.get_by_text("20 pictures, page 1 of 1").wait_for()
    # Two rows of 64-pixel cells: the grid is drawn at its full height, so rows of pictures never run together.
    drawn = page.locator("[data-testid=stVegaLiteChart]").first.locator("canvas, svg").first.bounding_box()
    assert drawn["height"] >= 2 * 64, drawn
    click_picture(page, 0, pictures=20)
    closer = page.get_by_role("dialog")
    title = closer.get_by_text(re.compile(r"^Training picture #\d+: cat$"))
    title.wait_for()
    training_index = re.search(r"#(\d+)", title.inner_text()).group(1)
    closer.get_by_text("The model's top guesses", exact=True).wait_for(timeout=120_000)   # a fresh server loads TensorFlow first
    settle(page)
    closer.locator("[data-testid=stVegaLiteChart]").wait_for()
    # In sight at a laptop's or a projector's 720 pixels, wherever the page was scrolled to: below the grid,
    # a click seemed to do nothing.
    top = closer.get_by_text("The model's top guesses", exact=True).bounding_box()
    assert 0 <= top["y"] <= page.viewport_size["height"] - top["height"], top
    clean(page, "explore")
    # Closed with its cross, the picture stays framed; clicked again, it opens again.
    closer.get_by_role("button", name="Close", exact=True).click()
    closer.wait_for(state="detached")
    settle(page)
    assert poll(lambda: framed(page), lambda f: f == [0], 15) == [0]     # around the picture just clicked
    # Each picture opens again, however often: a click is taken once, and the grid is drawn afresh under
    # one of two keys in turn, each emptied of its click while the other is drawn.
    for position in (1, 0):
        click_picture(page, position)
        title.wait_for()
        title_now = title.inner_text()
        assert (title_now == f"Training picture #{training_index}: cat") == (position == 0), title_now
        page.keyboard.press("Escape")
        closer.wait_for(state="detached")
        settle(page)
        assert poll(lambda: framed(page), lambda f: f == [position], 15) == [position]

    # The training set's cat is not shown as the test set's picture of the same number.
    page.get_by_role("radio", name="Test").click()
    settle(page)
    page.get_by_text("4 pictures, page 1 of 1").wait_for()
    page.wait_for_function(GRID_OF, arg=4)      # the test set's grid drawn, not the training set's still
    assert page.get_by_role("dialog").count() == 0 and framed(page) == []
    click_picture(page, 1, pictures=4)
    closer.get_by_text(re.compile(r"^Test picture #\d+: cat$")).wait_for()
    page.keyboard.press("Escape")
    closer.wait_for(state="detached")
    settle(page)
    assert poll(lambda: framed(page), lambda f: f == [1], 15) == [1]

    page.get_by_role("radio", name="Statistics").click()
    settle(page)
    page.wait_for_function("document.querySelectorAll('[data-testid=stVegaLiteChart]').length == 2", timeout=15_000)
    assert len(same_size(page, "[data-testid=stImage] img", 10)) == 1, "captions changed the average pictures' sizes"
    clean(page, "explore-statistics")


def test_evaluate_every_tab_draws(sized_page, server):  # noqa: F811
    page = sized_page
    open_page(page, server, PAGES["evaluate"])
    metric = page.locator("[data-testid=stMetric]").first
    metric.wait_for(timeout=120_000)      # a fresh server loads TensorFlow and tests the model on the tiny data first
    settle(page)
    assert re.search(r"\d+\.\d%$", metric.locator("[data-testid=stMetricValue]").inner_text())
    page.locator("[data-testid=stDataFrame]").first.wait_for()
    clean(page, "evaluate")

    page.get_by_role("tab", name="Confusion matrix").click()
    settle(page)
    chart = page.locator("[data-testid=stVegaLiteChart]:visible").first
    chart.locator(".mark-rect.role-mark path").nth(99).wait_for(state="attached")    # all 100 squares
    numbers = chart.locator(".mark-text.role-mark text")
    numbers.nth(99).wait_for(state="attached")
    assert all(re.fullmatch(r"\d+", t) for t in numbers.all_text_contents())
    page.locator("[data-testid=stImage] img:visible").first.wait_for()    # the mistakes under the matrix
    assert len(same_size(page, "[data-testid=stImage] img")) == 1, "captions changed the mistakes' sizes"
    clean(page, "evaluate-confusion")

    page.get_by_role("radio", name="% of each true class").click()
    settle(page)
    numbers = page.locator("[data-testid=stVegaLiteChart]:visible").first.locator(".mark-text.role-mark text")
    page.wait_for_function("[...document.querySelectorAll('[data-testid=stVegaLiteChart] .mark-text.role-mark text')]"
                           ".some(t => t.textContent.endsWith('%'))")
    assert all(re.fullmatch(r"(\d+|<1)%", t) for t in numbers.all_text_contents())
    clean(page, "evaluate-confusion-percent")

    page.get_by_role("tab", name="Confidence").click()
    settle(page)
    chart = page.locator("[data-testid=stVegaLiteChart]:visible").first
    chart.locator(".mark-symbol path").nth(1).wait_for(state="attached")   # the dots, not only the diagonal
    page.get_by_text("away from how often it is right").wait_for()
    clean(page, "evaluate-confidence")


def test_quiz_caption_on_one_line(sized_page, server):  # noqa: F811
    page = sized_page
    open_page(page, server, PAGES["quiz"])
    page.get_by_role("button", name="Dog Shortcut 6", exact=True).wait_for(timeout=120_000)
    caption = page.get_by_text("The real size: 32 x 32 pixels")
    box = caption.bounding_box()
    assert box["height"] < 30, f"the caption wraps: {box}"
    clean(page, "quiz")
    page.get_by_role("button", name="Dog Shortcut 6", exact=True).click()
    page.get_by_text("It is a ").wait_for()
    clean(page, "quiz-answered")
