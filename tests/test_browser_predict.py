"""The Predict page in a real browser, on the whole data set: the heat map side by side with its key,
what the model is shown of a photo, framed on it, the doubts, the batch table's true classes, and the upload limit.

Screenshots at 1400 x 1000 and 1280 x 720 land in test-artifacts/predict-*.png (look at them)."""
from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import test_browser
from test_browser import browser, new_context, no_exceptions, streamlit_app, open_page, poll, screenshot, settle  # noqa: F401 (fixtures)

pytestmark = test_browser.pytestmark     # skipped, not failed, where Chromium is not installed
VIEWS = {"wide": (1400, 1000), "laptop": (1280, 720), "phone": (390, 844)}


@pytest.fixture(scope="module")
def server(real_archive, tmp_path_factory):
    """The app on the whole data set, as a teacher runs it."""
    with streamlit_app(real_archive, tmp_path_factory.mktemp("runs")) as url:
        yield url


@pytest.fixture(scope="module")
def pictures(real_archive, tmp_path_factory):
    """A real test picture of a cat as a wide photo-like JPEG (the picture enlarged in the middle, its own
    edges stretched and blurred to the sides, as a wider shot would have them), a 1 x 1 red PNG, a text
    file posing as a picture, and a real ship."""
    from cifar_core import data
    test = data.read(real_archive)
    folder = tmp_path_factory.mktemp("pictures")
    cat = test.x_test[int(np.flatnonzero(test.y_test == 3)[0])]
    ship = test.x_test[int(np.flatnonzero(test.y_test == 8)[0])]
    middle = Image.fromarray(cat).resize((480, 480), Image.Resampling.BICUBIC)
    wide = Image.fromarray(cat).resize((800, 480), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(12))
    wide.paste(middle, (160, 0))
    wide.save(folder / "tabby.jpg", quality=90)
    Image.new("RGB", (1, 1), "red").save(folder / "red-dot.png")
    wide.resize((2000, 400)).save(folder / "panorama.jpg", quality=90)
    Image.fromarray(ship).resize((96, 96), Image.Resampling.BICUBIC).save(folder / "ship.png")
    (folder / "notes.png").write_text("not a picture at all")
    return folder


@pytest.fixture
def sized_page(browser, request):  # noqa: F811
    """A page at one of VIEWS' sizes; when the test fails, a screenshot of how the page looked."""
    def make(view: str):
        width, height = VIEWS[view]
        context = new_context(browser, viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(120_000)   # a shared 2-core machine: the first Grad-CAM can take a while
        opened.append((context, page))
        return context, page
    opened, failed_before = [], request.session.testsfailed
    yield make
    for context, page in opened:
        if request.session.testsfailed > failed_before:   # the call's report is counted before teardown
            screenshot(page, "predict-failed-" + request.node.name.replace("[", "-").replace("]", ""))
        context.close()


def upload(page, *paths):
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files([str(p) for p in paths])
    settle(page)


def image_pixels(page, locator) -> np.ndarray:
    """The pixels an <img> on the page shows, as the browser drew them."""
    locator.scroll_into_view_if_needed()
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"), np.float32)


def cut_off_labels(page) -> list[str]:
    """Texts of widget labels, captions, metrics and warnings that do not fit their box."""
    return page.evaluate("""() => [...document.querySelectorAll(
        '[data-testid=stWidgetLabel] p, [data-testid=stCaptionContainer], [data-testid=stMetricValue] div,'
        + ' [data-testid=stImageCaption], [data-testid=stAlertContentWarning] p')]
        .filter(e => e.offsetParent !== null && (e.scrollWidth > e.clientWidth + 1))
        .map(e => e.innerText)""")


@pytest.mark.parametrize("view", VIEWS)
def test_a_test_picture_with_its_heat_map_side_by_side_and_a_key(sized_page, server, view):  # noqa: F811
    context, page = sized_page(view)
    open_page(page, server, "predict")
    page.get_by_role("radio", name="Test picture").click()
    page.get_by_text("the right answer is").wait_for()
    page.get_by_text("The two together").wait_for()
    settle(page)
    images = page.locator("[data-testid=stImage] img")
    captions = [c.inner_text() for c in page.locator("[data-testid=stImageCaption]").all()]
    start = next(i for i, c in enumerate(captions) if c == "The picture")
    plain, heat, both = (image_pixels(page, images.nth(start + i)) for i in range(3))
    side = min(min(p.shape[:2]) for p in (plain, heat, both))      # equal to a pixel of rounding
    assert side > (90 if view == "phone" else 150)
    # In one row, even on a phone: stacked, a phone showed one at a time, a screen apart.
    boxes = [images.nth(start + i).bounding_box() for i in range(3)]
    assert len({round(b["y"]) for b in boxes}) == 1
    assert all(a["x"] + a["width"] <= b["x"] for a, b in zip(boxes, boxes[1:]))
    assert boxes[-1]["x"] + boxes[-1]["width"] <= page.viewport_size["width"]
    plain, heat, both = (p[:side, :side] for p in (plain, heat, both))
    assert np.abs(heat - plain).mean() > 30             # the heat map is its own picture, not a tint
    assert 8 < np.abs(both - plain).mean() < np.abs(heat - plain).mean()   # the overlay: between the two
    page.get_by_text("Colour key: how much each place counted").wait_for()
    key = page.locator("[data-testid=stVegaLiteChart]").filter(has_text="the most")
    key.wait_for()
    assert "the most" in key.inner_text() and "not at all" in key.inner_text()
    # The bar itself is drawn, not just its labels: it is a good part of the chart, and colourful (Vega
    # draws it a moment after the chart appears).
    dark = poll(lambda: (image_pixels(page, key).max(axis=-1) < 60).mean(axis=1),   # rows where its dark end shows
                lambda rows: (rows > 0.05).sum() >= 15)
    assert (dark > 0.05).sum() >= 15, "the colour key's bar is not drawn"
    page.get_by_text("Pale yellow and orange: the parts that made it think").wait_for()
    no_exceptions(page)
    assert cut_off_labels(page) == []
    key.scroll_into_view_if_needed()
    screenshot(page, f"predict-test-picture-heat-{view}")
    page.locator("h1").first.scroll_into_view_if_needed()
    screenshot(page, f"predict-test-picture-{view}")


@pytest.mark.parametrize("view", VIEWS)
def test_a_wide_photo_shows_what_the_model_saw(sized_page, server, pictures, view):  # noqa: F811
    context, page = sized_page(view)
    open_page(page, server, "predict")
    upload(page, pictures / "tabby.jpg")
    page.get_by_text("the model is shown all of it squeezed into a square (red frame) and the closer square "
                     "(thin frame), and averages its two answers").wait_for()
    framed = image_pixels(page, page.locator("[data-testid=stImage] img").first)
    red = (framed[..., 0] > 200) & (framed[..., 1] < 90) & (framed[..., 2] < 90)
    columns = np.flatnonzero(red.mean(axis=0) > 0.8) / framed.shape[1]
    assert columns.size and columns.min() < 0.02 and columns.max() > 0.98    # the whole photo, framed
    # The closer square in a thin frame: its sides are 80% of the picture's height.
    reddish = (framed[..., 0] > 150) & (framed[..., 0] - framed[..., 1:].max(axis=-1) > 60)   # thin: blended
    thin = np.flatnonzero((reddish.mean(axis=0) > 0.5) & (reddish.mean(axis=0) < 0.85)) / framed.shape[1]
    assert np.abs(thin - 0.26).min() < 0.03 and np.abs(thin - 0.74).min() < 0.03    # 208 and 592 of 800
    said = page.locator("[data-testid=stMetric]").first
    assert "The model says" in said.inner_text() and "sure" in said.inner_text()
    assert page.get_by_text("was cut off").count() == 0                # drawn by now: nothing of it was
    # A photo is not a CIFAR-10 picture: what its "% sure" is worth is a hover away.
    said.locator("[data-testid=stTooltipIcon]").hover()
    page.get_by_text("so the app evens a photo's answer out").wait_for()
    page.mouse.move(0, 0)
    # The photo's square, changed to fool the model, is still answered (and its "% sure" explained) as a photo.
    noise = page.locator("[data-testid=stSlider] input[type=range][aria-label=Noise]")
    noise.focus()
    noise.press("ArrowRight")
    fooled = page.locator("[data-testid=stMetric]").nth(1)
    fooled.wait_for()
    settle(page)
    # Noise of one level changes next to nothing: the answer is the photo's own, both views averaged as above.
    said_class, said_sure = re.search(r"(\w+), (?:over |under )?(\d+)% sure", said.inner_text()).groups()
    fooled_class, fooled_sure = re.search(r"(\w+), (?:over |under )?(\d+)% sure", fooled.inner_text()).groups()
    assert fooled_class == said_class and abs(int(fooled_sure) - int(said_sure)) <= 2
    for _ in range(4):
        noise.press("ArrowRight")
    fooled.locator("[data-testid=stTooltipIcon]").hover()
    page.get_by_text("so the app evens a photo's answer out").nth(0).wait_for()
    page.mouse.move(0, 0)
    no_exceptions(page)
    assert cut_off_labels(page) == []
    page.locator("[data-testid=stImage]").first.scroll_into_view_if_needed()
    screenshot(page, f"predict-photo-{view}")


def test_a_panoramas_ends_are_cut_off_and_said_to_be(sized_page, server, pictures):  # noqa: F811
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, pictures / "panorama.jpg")
    page.get_by_text("the model is shown its middle squeezed into a square (red frame)").wait_for()
    page.get_by_text("40% of it, outside the red frame, was cut off: a picture more than 3 times as long one "
                     "way as the other keeps only its middle").wait_for()
    framed = image_pixels(page, page.locator("[data-testid=stImage] img").first)
    red = (framed[..., 0] > 200) & (framed[..., 1] < 90) & (framed[..., 2] < 90)
    columns = np.flatnonzero(red.mean(axis=0) > 0.8) / framed.shape[1]
    assert columns.size and abs(columns.min() - 0.2) < 0.02 and abs(columns.max() - 0.8) < 0.02   # 400 and 1600
    no_exceptions(page)
    screenshot(page, "predict-panorama")


def test_a_one_pixel_picture_is_answered_with_a_warning(sized_page, server, pictures):  # noqa: F811
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, pictures / "red-dot.png")
    page.locator("[data-testid=stMetric]").first.wait_for()
    warnings = page.locator("[data-testid=stAlertContentWarning]")
    warnings.first.wait_for()
    text = " ".join(warnings.all_inner_texts())
    assert "only 1 x 1 pixels" in text and "may not be one of the ten classes" in text
    assert warnings.count() == 1, warnings.all_inner_texts()        # said once, not in three notes
    no_exceptions(page)
    screenshot(page, "predict-red-dot")


def test_the_batch_table_counts_right_answers_against_picked_true_classes(sized_page, server, pictures):  # noqa: F811
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, pictures / "tabby.jpg", pictures / "notes.png", pictures / "ship.png")
    table = page.locator("[data-testid=stDataFrame]").first
    table.wait_for()
    page.get_by_text("notes.png: This file is not a picture in a format we can read").wait_for()  # whole, visible
    deadline = time.monotonic() + 60
    while "ship.png" not in (table.text_content() or "") and time.monotonic() < deadline:
        page.wait_for_timeout(250)                      # the grid fills its accessible copy a moment later
    content = table.text_content()
    assert "None" not in content and "tabby.jpg" in content
    page.get_by_text("Pick each picture's true class").wait_for()
    # Pick "ship" as the ship's true class: double-click its cell, choose from the list.
    from cifar_core import data, decoding, inference
    model = inference.load_model()
    ship = decoding.load_image(pictures / "ship.png")
    said = data.CLASS_NAMES[int(inference.predict_views(model, inference.views(ship), ship.size).argmax())]
    # The grid is drawn on a canvas: pick the cell with the keyboard, from the first row's first cell. A rerun
    # that redraws the grid while the keys go in loses them (seen once in a loaded CI run): then again.
    counted = page.get_by_text(f"Right on {int(said == 'ship')} of 1 picture with a true class")
    for attempt in range(3):
        box = table.bounding_box()
        page.mouse.click(box["x"] + 30, box["y"] + 35 + 17)
        # Home first: a lost try can leave the grid scrolled sideways (seen in a CI run), the click then
        # landing in another column than the first.
        for key in ["Home"] + ["ArrowRight"] * 2 + ["ArrowDown"] * 2 + ["Enter"]:   # "true class", third row
            page.keyboard.press(key)
        page.wait_for_timeout(500)
        page.keyboard.type("ship")
        page.keyboard.press("Enter")
        settle(page)
        try:
            counted.wait_for(timeout=30_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    verdict = "right" if said == "ship" else "wrong"
    deadline = time.monotonic() + 60
    while verdict not in (table.text_content() or "") and time.monotonic() < deadline:
        page.wait_for_timeout(250)                      # the grid's accessible copy is refilled after a rerun
    assert verdict in table.text_content()
    no_exceptions(page)
    screenshot(page, "predict-batch-true-class")


def test_photos_of_the_same_name_can_each_be_looked_at(sized_page, server, pictures, tmp_path):  # noqa: F811
    """A phone shares every photo as "image.jpg": each must still be the one looked at when picked."""
    from cifar_core import data, decoding, inference
    first, second = tmp_path / "one" / "image.jpg", tmp_path / "two" / "image.jpg"
    for path, source in ((first, "tabby.jpg"), (second, "ship.png")):
        path.parent.mkdir()
        Image.open(pictures / source).convert("RGB").save(path, quality=95)
    model = inference.load_model()
    said = []
    for path in (first, second):
        image = decoding.load_image(path)
        said.append(data.CLASS_NAMES[int(inference.predict_views(model, inference.views(image), image.size).argmax())])
    assert said[0] != said[1]
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, first, second)
    answer = page.locator("[data-testid=stMetric]").filter(has_text="The model says").first
    answer.wait_for()
    assert f"{said[0]}," in answer.inner_text()
    page.get_by_role("combobox", name="Look closer at").click()
    page.get_by_role("option", name="image.jpg (row 2)").click()
    settle(page)
    deadline = time.monotonic() + 60
    while f"{said[1]}," not in answer.inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert f"{said[1]}," in answer.inner_text(), "the second photo of the same name is the one answered"
    no_exceptions(page)


def test_a_picture_under_any_of_its_formats_names_is_taken(sized_page, server, pictures, tmp_path):  # noqa: F811
    """A JPEG saved from the web on Windows is often a .jfif, a camera's HEIF a .HIF: each was stopped in
    the browser with "image/jpeg files are not allowed", a sentence about a picture the app reads."""
    from cifar_core import decoding
    names = ["tabby.jfif", "tabby.JPE"] + (["ship.heif", "ship.HIF"] if decoding.HEIC else [])
    for name in names:
        source = Image.open(pictures / ("tabby.jpg" if name.startswith("tabby") else "ship.png")).convert("RGB")
        source.save(tmp_path / name, "JPEG" if name.startswith("tabby") else "HEIF", quality=90)
    context, phone = sized_page("phone")
    open_page(phone, server, "predict")
    said = phone.get_by_test_id("stFileUploaderDropzoneInstructions")
    assert "JFIF" in said.inner_text() and "TIF" in said.inner_text()
    assert not said.evaluate("e => [e, ...e.querySelectorAll('*')].some(p => p.scrollWidth > p.clientWidth + 1)"), \
        "the box's list of the names it takes is whole on a phone, not cut short"
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, *(tmp_path / name for name in names))
    table = page.locator("[data-testid=stDataFrame]").first
    table.wait_for()
    listed = poll(lambda: table.text_content() or "", lambda text: all(name in text for name in names), 60)
    assert all(name in listed for name in names), listed
    assert page.get_by_text("are not allowed").count() == 0
    assert page.get_by_text("not a picture in a format we can read").count() == 0
    no_exceptions(page)


def test_a_files_name_is_shown_as_it_is_never_as_markdown(sized_page, server, pictures, tmp_path):  # noqa: F811
    """A name is the visitor's own text: "$5" began a formula, "*sale*" was italic, and a long name of a
    phone's photo must wrap on a phone, not run off its side."""
    names = ["$5 deal *sale* [1] ~~old~~ <b>.jpg",
             "IMG_20251225_123456789_HDR_PORTRAIT_BURST0001_COVER_EDITED_FINAL.jpg", "$2 :red[x].png"]
    for name in names[:2]:
        (tmp_path / name).write_bytes((pictures / "tabby.jpg").read_bytes())
    (tmp_path / names[2]).write_text("not a picture at all")
    context, page = sized_page("phone")
    open_page(page, server, "predict")
    upload(page, tmp_path / names[0])
    heading = page.get_by_role("heading", level=2).filter(has_text="deal")
    assert heading.inner_text() == names[0]
    upload(page, tmp_path / names[1])
    for attempt in range(3):        # a rerun as the table fills can close the list just opened (seen in CI)
        page.get_by_role("combobox", name="Look closer at").click()
        try:
            page.get_by_role("option", name=names[1]).click(timeout=20_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            settle(page)
    settle(page)
    heading = page.get_by_role("heading", level=2).filter(has_text="PORTRAIT")
    assert heading.inner_text() == names[1]
    assert heading.evaluate("e => e.scrollWidth <= e.clientWidth + 1 && e.getBoundingClientRect().right <= innerWidth")
    upload(page, tmp_path / names[2])
    page.get_by_text(f"{names[2]}: This file is not a picture in a format we can read").first.wait_for()
    no_exceptions(page)


def test_a_file_over_the_limit_gets_a_visible_sentence(sized_page, server, tmp_path):  # noqa: F811
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG" + bytes(21 * 1024 * 1024))
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, big)
    page.locator("[data-testid=stAlertContentError]").filter(
        has_text="huge.png: This file is 21.0 MB; pictures of up to 20 MB can be read.").wait_for()
    no_exceptions(page)
    # Over Streamlit's own limit the browser refuses the file before sending it: the words are in view.
    bigger = tmp_path / "bigger.png"
    bigger.write_bytes(b"\x89PNG" + bytes(26 * 1024 * 1024))
    upload(page, bigger)
    note = page.get_by_text("is stopped before it is sent: it gets a red mark in the list and no answer")
    assert note.is_visible()


def big_files(folder, count: int) -> list:
    """`count` 12 MB files named like pictures: the upload budget counts their bytes before reading them."""
    files = [folder / f"big{i}.png" for i in range(count)]
    for file in files:
        file.write_bytes(b"\x89PNG" + bytes(12 * 1024 * 1024))
    return files


def test_uploads_past_a_browsers_budget_are_refused_and_removing_one_makes_room(sized_page, server, tmp_path):  # noqa: F811
    """Three 12 MB files at once against the 30 MB a browser may hold (app_pages/upload_budget.py): the server
    refuses one before reading it, the browser marks it, and the page says in words what the mark means.
    Removing a kept file gives its room back, as Streamlit's own upload manager says."""
    files = big_files(tmp_path, 3)
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, *files)
    chips = page.locator("[data-testid=stFileChip]")
    refused = page.locator("[data-testid=stFileChip][aria-invalid=true]")
    page.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length == 3")
    refused.first.wait_for()
    page.wait_for_timeout(1000)
    assert refused.count() == 1 and "413" in refused.inner_text()
    assert page.get_by_text("Up to 100 pictures at once, 30 MB in all").is_visible()
    name = refused.get_attribute("aria-label").split(",")[0]
    kept = [f.name for f in files if f.name != name]
    # The two kept files reached the page: the batch table of several uploads is drawn.
    page.locator("[data-testid=stDataFrame]").first.wait_for()
    page.get_by_role("button", name=f"Remove {kept[0]}").click()
    page.get_by_role("button", name=f"Remove {name}").click()
    settle(page)
    upload(page, tmp_path / name)
    page.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length == 2")
    page.wait_for_timeout(1000)
    assert chips.count() == 2 and refused.count() == 0
    no_exceptions(page)


def holding_two_of_four(sized_page, server, folder) -> tuple[list, object, object]:
    """(four 12 MB files, the browser, its tab) with the Predict page holding the first two: 24 MB of the
    30 a browser may hold."""
    files = big_files(folder, 4)
    context, page = sized_page("wide")
    open_page(page, server, "predict")
    upload(page, *files[:2])
    page.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length == 2")
    page.locator("[data-testid=stDataFrame]").first.wait_for()       # both reached the page
    return files, context, page


def test_two_tabs_of_one_browser_share_its_budget(sized_page, server, tmp_path):  # noqa: F811
    """Streamlit keeps uploads per tab; the server counts them per browser (its identity cookie): 24 MB
    kept in one tab leaves room for no 12 MB file in a second tab of the same browser, until the first
    tab removes its files."""
    files, context, page = holding_two_of_four(sized_page, server, tmp_path)
    second = context.new_page()
    open_page(second, server, "predict")
    upload(second, files[2])
    refused = second.locator("[data-testid=stFileChip][aria-invalid=true]")
    refused.first.wait_for()
    assert "413" in refused.inner_text()
    page.bring_to_front()         # a tab in the background is throttled, as a student's would be
    for file in files[:2]:        # the first tab removes its files: their room is the second tab's
        page.get_by_role("button", name=f"Remove {file.name}").click()
        settle(page)
    second.bring_to_front()
    second.get_by_role("button", name=f"Remove {files[2].name}").click()
    settle(second)
    upload(second, files[3])      # another file: the same one again would not change the file input
    second.get_by_text(f"{files[3].name}: This file is not a picture").wait_for()   # it reached the page
    second.wait_for_timeout(1000)
    assert refused.count() == 0
    no_exceptions(second)


def test_leaving_the_predict_page_lets_go_of_the_uploads(sized_page, server, tmp_path):  # noqa: F811
    """Streamlit keeps a browser's uploads until it leaves the site, even once it has left the Predict page
    and its uploader has forgotten them: 24 MB kept, then 24 MB more after a visit to the Quiz, would be
    past the 30 MB a browser may hold. They are let go when another page is opened."""
    files, context, page = holding_two_of_four(sized_page, server, tmp_path)
    for title in ("Quiz", "Predict"):            # within the same browser session, as a student clicks
        page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title).click()
        settle(page)      # the page asked for has run: a heading seen before could still be the last page's
        page.get_by_role("heading", level=1).first.wait_for()
    upload(page, *files[2:])
    page.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length == 2")
    page.locator("[data-testid=stDataFrame]").first.wait_for()
    page.wait_for_timeout(1000)
    assert page.locator("[data-testid=stFileChip][aria-invalid=true]").count() == 0
    no_exceptions(page)


@pytest.fixture(scope="module")
def forgetful_server(tiny_archive, tmp_path_factory):
    """The app with a closed tab's session kept 1 s for a reconnect, not Streamlit's 120."""
    with streamlit_app(tiny_archive, tmp_path_factory.mktemp("runs"),
                       options=("--server.disconnectedSessionTTL", "1")) as url:
        yield url


def test_a_closed_tabs_uploads_are_let_go_once_its_session_is_gone(sized_page, forgetful_server, tmp_path):  # noqa: F811
    """Streamlit drops a closed tab's session once the time it keeps it for a reconnect is up, without
    freeing its uploads: 24 MB kept by a closed tab, then 24 MB more in a new tab of the same browser,
    would be past the 30 MB a browser may hold for as long as the server ran."""
    files, context, page = holding_two_of_four(sized_page, forgetful_server, tmp_path)
    page.goto("about:blank")      # the tab leaves the app: its session is closed, as when it is shut
    time.sleep(4)                 # past the 1 s the closed tab's session is kept for, with room for a busy server
    second = context.new_page()
    open_page(second, forgetful_server, "predict")
    upload(second, *files[2:])
    second.wait_for_function("document.querySelectorAll('[data-testid=stFileChip]').length == 2")
    second.get_by_text(f"{files[2].name}: This file is not a picture").first.wait_for()   # it reached the page
    second.wait_for_timeout(1000)
    assert second.locator("[data-testid=stFileChip][aria-invalid=true]").count() == 0
    no_exceptions(second)


def overlaps(a, b) -> bool:
    return min(a["x"] + a["width"], b["x"] + b["width"]) > max(a["x"], b["x"]) and \
        min(a["y"] + a["height"], b["y"] + b["height"]) > max(a["y"], b["y"])


def test_the_drawing_tools_do_not_cover_each_other(sized_page, server):  # noqa: F811
    context, page = sized_page("laptop")
    open_page(page, server, "predict")
    page.get_by_role("radio", name="Draw").click()
    settle(page)
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    canvas.hover()                                      # the canvas's toolbar shows while the pointer is on it
    page.wait_for_timeout(600)
    toolbar = page.locator(".dc-toolbar").first.bounding_box()
    for name in ("Brush size", "Brush colour", "Background"):
        label = page.get_by_text(name, exact=True).first.bounding_box()
        assert not overlaps(toolbar, label), name
    assert not overlaps(toolbar, page.get_by_role("slider", name="Brush size").bounding_box())
    assert not overlaps(toolbar, page.locator("[data-testid=stButtonGroup]").first.bounding_box())
    no_exceptions(page)
    screenshot(page, "predict-draw-laptop")


@pytest.mark.parametrize("view", ["laptop", "phone"])
def test_a_drawings_guess_is_in_view_beside_the_canvas(sized_page, server, view):  # noqa: F811
    """Beside the canvas, or just under its tools on a phone (which stacks them): the whole answer is
    a screen and more below there, and one drawing wants to see the guess change as they draw."""
    context, page = sized_page(view)
    open_page(page, server, "predict")
    page.get_by_role("radio", name="Draw").click()
    settle(page)
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 60)
    page.mouse.down()
    for step in range(20):
        page.mouse.move(box["x"] + 40 + step * 10, box["y"] + 60 + step * 8, steps=2)
    page.mouse.up()
    said = page.locator("[data-testid=stMetricValue]").first
    said.wait_for(timeout=60_000)
    guess = page.get_by_text("The model's guess:").first
    guess.wait_for()
    answered = said.inner_text().split(",")[0]
    assert f"The model's guess: {answered}," in guess.inner_text()
    line, canvas_box = guess.bounding_box(), canvas.bounding_box()
    if view == "phone":
        assert canvas_box["y"] + canvas_box["height"] <= line["y"] <= canvas_box["y"] + canvas_box["height"] + 250
    else:
        assert canvas_box["y"] <= line["y"] <= canvas_box["y"] + canvas_box["height"]
        assert line["x"] >= canvas_box["x"] + canvas_box["width"]
    assert line["y"] < said.bounding_box()["y"]
    no_exceptions(page)
    screenshot(page, f"predict-drawing-guess-{view}")
