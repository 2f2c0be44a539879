"""The app in a real browser: `streamlit run` on a free port, driven by Playwright and Debian's Chromium.

Screenshots of every page land in test-artifacts/ (look at them).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
PAGES = {"home": "", "explore": "explore", "train": "train", "predict": "predict", "evaluate": "evaluate", "quiz": "quiz"}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(data: Path, runs_dir: Path, startup_s: float = 90, options: tuple[str, ...] = ()):
    """`streamlit run app.py` on a free port, as a user starts it, on `data` with its own runs folder
    (and Streamlit's command-line `options`): yields its address, and ends it afterwards."""
    port = free_port()
    env = {**os.environ, "CIFAR10_DATA": str(data), "CIFAR_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false", *options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    # While it is still running: a server that failed to bind its port (taken since `free_port` looked)
    # has ended, and the one answering there is another test's.
    answered = False
    while not answered and time.monotonic() < deadline and process.poll() is None:
        try:
            answered = urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok"
        except OSError:
            time.sleep(0.3)
    if not answered or process.poll() is not None:
        process.kill()
        raise RuntimeError("streamlit did not start:\n" + process.stdout.read().decode())
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tiny_archive, tmp_path_factory):
    """The app as a user starts it, on the tiny data set, with its own runs folder."""
    with streamlit_app(tiny_archive, tmp_path_factory.mktemp("runs")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = new_context(browser, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def open_page(page, server: str, path: str):
    page.goto(f"{server}/{path}")
    page.wait_for_selector("[data-testid=stApp]")
    page.get_by_role("heading", level=1).first.wait_for()    # the script has drawn the page, not just the frame
    settle(page)


def poll(read, done, seconds: float = 10):
    """`read()` again until `done` holds of it or `seconds` pass (a layout settles after a resize); the last read."""
    end = time.monotonic() + seconds
    while not done(value := read()) and time.monotonic() < end:
        time.sleep(0.2)
    return value


# tests/run_watch.js: whether a page has run every rerun it asked for, from Streamlit's own messages.
RUN_WATCH = (Path(__file__).parent / "run_watch.js").read_text()


def new_context(browser, **options):
    """A browser context whose pages watch the runs they ask for (tests/run_watch.js), for `settle`."""
    context = browser.new_context(**options)
    context.add_init_script(RUN_WATCH)
    return context


def settle(page, timeout_ms: float = 120_000):
    """Wait until Streamlit has run every rerun the page asked for, and the runs they handed over to.
    A moment first: some widgets send their value a little after the action (a chart's click)."""
    page.wait_for_timeout(300)
    page.wait_for_function("window.__settled()", timeout=timeout_ms)


def no_exceptions(page):
    assert page.locator("[data-testid=stException]").count() == 0, page.locator("[data-testid=stException]").first.inner_text()


def screenshot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_opens_cleanly(name, page, server):
    open_page(page, server, PAGES[name])
    page.locator("h1").first.wait_for()
    no_exceptions(page)
    # The sidebar is on every page: the data source and the model choice.
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_text("Model used on every page").wait_for()
    assert "Data: CIFAR-10 (" in sidebar.inner_text()
    screenshot(page, name)


def test_the_pages_scripts_come_gzipped_from_memory(page, server):
    """Every script, style and font a first visit fetches is Streamlit's own file, gzipped where that helps."""
    import gzip

    from streamlit import file_util
    fetched = []
    page.on("response", lambda r: fetched.append(r) if "/static/" in r.url else None)
    open_page(page, server, "predict")
    assert len(fetched) > 20, "a first visit fetches Streamlit's scripts"
    zipped = 0
    for response in fetched:
        assert response.status == 200, response.url
        path = response.url.removeprefix(server).split("?")[0]
        on_disk = (Path(file_util.get_static_dir()) / path.lstrip("/")).read_bytes()
        raw = urllib.request.urlopen(urllib.request.Request(server + path, headers={"Accept-Encoding": "gzip"}))
        body = raw.read()
        zipped += raw.headers.get("Content-Encoding") == "gzip"
        assert (gzip.decompress(body) if raw.headers.get("Content-Encoding") == "gzip" else body) == on_disk, path
        assert raw.headers["Cache-Control"] == "public, immutable, max-age=31536000"
    assert zipped >= len(fetched) / 2


def test_a_request_with_a_huge_head_is_refused_before_it_costs_the_server(server):
    """uvicorn's httptools parser bounded no request's head and rebuilt its value as each piece came: a
    64 MB cookie was 28 s of the event loop's CPU, every visitor's page waiting. Refused past 64 KB."""
    import socket
    from urllib.parse import urlparse
    address = urlparse(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        # 256 KB, past the bound and still within the socket's buffers: the answer is read, not reset
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=" + b"x" * (256 << 10))
        answer = connection.recv(1024)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    assert urllib.request.urlopen(server + "/_stcore/health", timeout=5).read() == b"ok"
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(b"GET /_stcore/health HTTP/1.1\r\nHost: x\r\nCookie: a=" + b"x" * 4000 + b"\r\n\r\n")
        assert connection.recv(1024).startswith(b"HTTP/1.1 200")      # a large but ordinary head is fine


def test_a_message_larger_than_any_a_page_sends_closes_its_websocket(server):
    """A chart click of millions of empty objects, 16 MB in one message, was kept in the session: 420 MB and
    seconds of a core on every rerun after. A drawing, the largest a page sends, is a few hundred KB (a
    drawing of 150 strokes: 312 KB): past 4 MB the connection is closed, as Streamlit closes one past its
    own limit."""
    # The synchronous client: the browser tests' Playwright keeps an event loop running in this thread.
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    def send(size: int):
        with connect(server.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"],
                     max_size=None) as ws:
            ws.send(b"\x00" * size)
            try:
                ws.recv(timeout=10)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
            return "open"
    assert send(5_000_000) == 1009
    assert urllib.request.urlopen(server + "/_stcore/health", timeout=5).read() == b"ok"


def test_home_links_to_explore(page, server):
    open_page(page, server, "")
    page.get_by_role("link", name="Explore the data").click()
    page.get_by_role("heading", name="Explore the data").wait_for()
    no_exceptions(page)


# Whether the grid has drawn the picture at (x, y) of its drawing, and all `count` of its pictures (when
# given): Vega draws some time after the chart appears, and draws new pictures some time after a rerun
# has ended; a click before that picks nothing, or the picture that was there before. Streamlit has Vega
# draw in SVG up to 2,000 rows (a grid holds at most 200 pictures): the `<image>` under the point.
PICTURE_DRAWN = """([x, y, count]) => {
  const drawing = document.querySelector('[data-testid=stVegaLiteChart] svg');
  if (!drawing) return false;
  const box = drawing.getBoundingClientRect();
  const under = document.elementFromPoint(box.left + x, box.top + y);
  return (count === null || drawing.querySelectorAll('image').length === count)
    && !!under && under.tagName.toLowerCase() === 'image' && drawing.contains(under);
}"""


# Each Vega chart's plot on the page: its title and the top and bottom of its frame, in page pixels.
PLOT_FRAMES = """() => [...document.querySelectorAll('[data-testid=stVegaLiteChart] svg')].map(svg => {
  const frame = svg.querySelector('.role-frame.root path.background')?.getBoundingClientRect();
  return {title: svg.querySelector('.role-title')?.textContent || '', top: frame?.top, bottom: frame?.bottom,
          height: frame?.height}; })"""


# A map's dots, and how many of them reach past its plot's frame (its key's symbols left out).
DOTS_OUTSIDE = """() => { const svg = document.querySelector('[data-testid=stVegaLiteChart] svg');
  const frame = svg?.querySelector('.role-frame.root path.background')?.getBoundingClientRect();
  if (!frame) return [0, 0];
  const dots = [...svg.querySelectorAll('.mark-symbol path')].filter(p => !p.closest('.role-legend'))
    .map(p => p.getBoundingClientRect());
  return [dots.length, dots.filter(b => b.top < frame.top - 0.5 || b.bottom > frame.bottom + 0.5
                                     || b.left < frame.left - 0.5 || b.right > frame.right + 0.5).length]; }"""


def plot_frames(page) -> list[dict]:
    return page.evaluate(PLOT_FRAMES)


def click_picture(page, position: int, columns: int = 10, cell: int = 64, pictures: int | None = None):
    """Click the grid's picture at `position` once it is drawn there (and the grid holds `pictures`)."""
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    chart.wait_for()
    row, column = divmod(position, columns)
    at = (5 + column * cell + cell / 2, 5 + row * cell + cell / 2)
    page.mouse.move(1, 1)       # a tooltip left by the last click could cover the picture
    page.wait_for_function(PICTURE_DRAWN, arg=[*at, pictures])
    box = chart.locator("svg").first.bounding_box()
    page.mouse.click(box["x"] + at[0], box["y"] + at[1])
    settle(page)


def test_explore_browse_pick_filter_and_statistics(page, server):
    open_page(page, server, "explore")
    page.get_by_text("200 pictures, page 1 of 4").wait_for()

    click_picture(page, 3)
    closer = page.get_by_role("dialog")         # over the grid, wherever the page is scrolled to
    closer.get_by_text("Training picture #3", exact=False).wait_for()
    closer.get_by_text("The model's top guesses", exact=True).wait_for()
    closer.locator("[data-testid=stImage]").first.wait_for()     # the picture large, drawn after the title
    screenshot(page, "explore-picked")
    page.keyboard.press("Escape")
    closer.wait_for(state="detached")
    settle(page)

    page.locator("[data-testid=stSelectbox]").filter(has_text="Class").click()
    page.get_by_role("option", name="cat", exact=True).click()
    settle(page)
    page.get_by_text("20 pictures, page 1 of 1").wait_for()

    page.get_by_role("button", name="Shuffle").click()
    settle(page)
    no_exceptions(page)

    page.get_by_role("radio", name="Test").click()
    settle(page)
    page.get_by_text("4 pictures, page 1 of 1").wait_for()    # 40 test pictures, 4 of them cats
    # The training picture picked above is not shown under the test set's name.
    assert page.get_by_role("dialog").count() == 0

    page.get_by_role("radio", name="Statistics").click()
    settle(page)
    page.get_by_text("The average picture of each class").wait_for()
    # The two statistics charts, once the picture grid of the view before has gone.
    page.wait_for_function("document.querySelectorAll('[data-testid=stVegaLiteChart]').length == 2", timeout=15_000)
    no_exceptions(page)
    # Side by side, their plots level: the class names turned on end under the bars took 20 pixels of
    # that chart's plot.
    counts, values = poll(lambda: plot_frames(page), lambda frames: len(frames) == 2 and all(f["top"] is not None for f in frames), 10)
    assert abs(counts["bottom"] - values["bottom"]) <= 2 and abs(counts["top"] - values["top"]) <= 2, (counts, values)
    screenshot(page, "explore-statistics")

    page.get_by_role("radio", name="Map").click()
    settle(page)
    page.locator("[data-testid=stVegaLiteChart]").first.wait_for()
    no_exceptions(page)
    # Every dot whole inside the plot: the outermost sat on its edge, which cuts them, half a dot drawn.
    dots = poll(lambda: page.evaluate(DOTS_OUTSIDE), lambda found: found[0] > 0, 15)
    assert dots[0] == 40 and dots[1] == 0, dots         # the 40 test pictures, none cut
    screenshot(page, "explore-map")


def start_long_run(page, name: str):
    """Start a run on the Train page that lasts minutes on the tiny data (150 epochs, batches of 4); wait until it trains."""
    page.get_by_role("spinbutton", name="Epochs").fill("150")
    page.get_by_role("spinbutton", name="Batch size").fill("4")
    page.get_by_role("textbox", name="Run name").fill(name)
    page.get_by_role("button", name="Start training").click()
    # Its heading, then its progress line: "Epoch " alone also matched the form's "Epochs" at once, and a test
    # that went to another page then could leave before the press had made the run.
    # A trainer imports TensorFlow before its first epoch: on a machine busy with other tests, a minute and more.
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=180_000)
    page.get_by_text(re.compile(r"^Epoch \d+ of")).first.wait_for(timeout=180_000)


STOP_OR_CANCEL = re.compile(r"^(Stop|Cancel)$")     # a run just started may still be waiting: then Cancel


def test_train_start_watch_stop_and_find_it_on_the_board(page, server):
    open_page(page, server, "train")
    start_long_run(page, "browser run")
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    chart.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    first, first_picture = page.locator("[data-testid=stProgress]").inner_text(), chart.screenshot()
    # Both move every few seconds (a point a second, drawn every 2.5 s); a busy machine is given half a minute.
    later = poll(lambda: page.locator("[data-testid=stProgress]").inner_text(), lambda t: t != first, 30)
    later_picture = poll(chart.screenshot, lambda p: p != first_picture, 30)
    assert first != later, "the progress did not move"
    assert first_picture != later_picture, "the curves did not grow"
    screenshot(page, "train-running")

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped: test accuracy").wait_for(timeout=60_000)
    no_exceptions(page)
    board = page.locator("[data-testid=stDataFrame]")
    deadline = time.monotonic() + 60
    while "stopped" not in board.text_content() and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert "browser run" in board.text_content() and "stopped" in board.text_content()
    screenshot(page, "train-stopped")


def go_to(page, title: str):
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name=title).click()
    settle(page)        # the page asked for has run: the heading seen before it could be the last page's
    page.get_by_role("heading", level=1).first.wait_for()


REFUSAL = "Only the person who started this run"
NOT_YOURS = "Someone else started this run"


@pytest.fixture
def new_browser(browser):
    """Open pages in separate browser contexts: each is a different person, with its own cookies."""
    contexts = []

    def open_one():
        contexts.append(new_context(browser, viewport={"width": 1400, "height": 1000}))
        page = contexts[-1].new_page()
        page.set_default_timeout(30_000)
        return page
    yield open_one
    for context in contexts:
        context.close()


def test_identity_survives_navigation_and_reload_but_not_a_shared_address(new_browser, server):
    from app_pages import identity
    page = new_browser()
    open_page(page, server, "train")
    start_long_run(page, "identity run")

    go_to(page, "Predict")
    page.reload()
    page.wait_for_selector("[data-testid=stApp]")
    settle(page)
    go_to(page, "Train")
    page.get_by_role("heading", name="identity run").wait_for()
    address = page.url
    screenshot(page, "train-identity")

    # Someone else opens the very same address: they see the run, but it is not theirs.
    other = new_browser()
    other.goto(address)
    other.get_by_role("heading", name="identity run").wait_for()
    other.get_by_text(NOT_YOURS).wait_for()
    settle(other)
    assert other.get_by_role("button", name=STOP_OR_CANCEL).count() == 0
    screenshot(other, "train-identity-someone-else")

    # The browser that started it still owns it after moving between pages and reloading.
    page.get_by_role("button", name=STOP_OR_CANCEL).click()
    page.get_by_text("Stopped: ", exact=False).wait_for(timeout=30_000)
    assert page.get_by_text(REFUSAL).count() == 0 and page.get_by_text(NOT_YOURS).count() == 0
    no_exceptions(page)

    # Who a browser is lives in an HttpOnly, SameSite cookie the server set: not in the address, not on the page.
    [cookie] = [c for c in page.context.cookies() if c["name"] == identity.COOKIE]
    [their_cookie] = [c for c in other.context.cookies() if c["name"] == identity.COOKIE]
    assert identity.valid(cookie["value"]) and cookie["value"] != their_cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "?" not in address and cookie["value"] not in address
    assert identity.COOKIE not in page.evaluate("document.cookie")
    assert cookie["value"] not in page.content()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A photo-like JPEG (a real CIFAR-10 sample picture, enlarged), a PNG, an AVIF (as browsers save pictures
    from many websites), a HEIC (an iPhone's photo as a Mac keeps it), and a text file posing as a picture."""
    from PIL import Image

    from cifar_core import data, decoding
    folder = tmp_path_factory.mktemp("photos")
    sample = data.load_sample()
    Image.fromarray(sample.x_test[0]).resize((640, 480), Image.Resampling.BICUBIC).save(folder / "holiday.jpg", quality=90)
    Image.fromarray(sample.x_test[500]).resize((300, 300)).save(folder / "pet.png")
    Image.fromarray(sample.x_test[700]).resize((400, 300)).save(folder / "web.avif")
    assert decoding.HEIC            # its import lets Pillow write HEIC too
    Image.fromarray(sample.x_test[900]).resize((400, 300)).save(folder / "phone.heic", "HEIF")
    (folder / "notes.png").write_text("not a picture at all")
    return folder


def test_predict_upload_a_photo_and_read_the_answer(page, server, photos):
    open_page(page, server, "predict")
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(photos / "holiday.jpg"))
    said = page.locator("[data-testid=stMetric]").first
    said.wait_for(timeout=60_000)
    assert "The model says" in said.inner_text() and "sure" in said.inner_text()
    assert any(name in said.inner_text() for name in ("airplane", "automobile", "bird", "cat", "deer",
                                                      "dog", "frog", "horse", "ship", "truck"))
    page.get_by_text("the parts that made it think").wait_for()     # the heat map is shown without asking
    no_exceptions(page)
    screenshot(page, "predict-upload")


def test_predict_several_uploads_with_a_bad_one(page, server, photos):
    open_page(page, server, "predict")
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
        [str(photos / "holiday.jpg"), str(photos / "notes.png"), str(photos / "pet.png"), str(photos / "web.avif"),
         str(photos / "phone.heic")])
    table = page.locator("[data-testid=stDataFrame]").first
    table.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while "not a picture" not in (table.text_content() or "") and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    content = table.text_content()
    assert "holiday.jpg" in content and "pet.png" in content and "not a picture in a format we can read" in content
    # Let through by the uploader, and read: a picture not read has a red line of its own under the table.
    assert "web.avif" in content and "phone.heic" in content
    assert not [alert for alert in page.locator("[data-testid=stAlert]").all_inner_texts()
                if "web.avif" in alert or "phone.heic" in alert]
    page.get_by_role("button", name="Download the table (CSV)").wait_for()
    no_exceptions(page)
    screenshot(page, "predict-batch")


def test_a_chosen_button_of_a_row_clicked_again_stays_chosen(page, server):
    """Explore's "Pictures from" (and every such row of buttons): clicking the one chosen chose none, and the
    page fell back to the first (Training) with no button lit."""
    open_page(page, server, "explore")
    test = page.get_by_role("radio", name="Test", exact=True)
    for _ in range(2):
        test.click()
        settle(page)
        assert test.get_attribute("aria-checked") == "true"
        assert page.get_by_role("radio", name="Training", exact=True).get_attribute("aria-checked") == "false"
    no_exceptions(page)


def test_predict_draw_on_the_canvas(page, server):
    open_page(page, server, "predict")
    page.get_by_role("radio", name="Draw").click()
    settle(page)
    canvas = page.locator("canvas.upper-canvas").first   # Fabric.js draws strokes on its upper canvas
    canvas.wait_for(timeout=30_000)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 160)
    page.mouse.down()
    for step in range(20):
        page.mouse.move(box["x"] + 60 + step * 10, box["y"] + 160 - step * 4, steps=2)
    page.mouse.up()
    said = page.locator("[data-testid=stMetric]").first
    said.wait_for(timeout=60_000)
    assert "The model says" in said.inner_text()
    page.get_by_text("This is a drawing. The model has only ever seen photos").first.wait_for()
    no_exceptions(page)
    screenshot(page, "predict-drawing")


def test_evaluate_pick_a_confusion_matrix_cell_and_see_its_pictures(page, server, tiny_archive):
    from cifar_core import data, evaluation, inference
    tiny = data.read(tiny_archive)
    counts = evaluation.confusion_matrix(tiny.y_test, inference.predict(inference.load_model(), tiny.x_test).argmax(1))
    row, column = np.unravel_index(counts.argmax(), counts.shape)   # the fullest square

    open_page(page, server, "evaluate")
    page.get_by_role("tab", name="Confusion matrix").click()
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    chart.wait_for(timeout=60_000)
    page.wait_for_timeout(800)
    square = chart.locator(".mark-rect.role-mark path").nth(row * 10 + column)    # drawn row by row
    box = square.bounding_box()
    assert abs(box["width"] - 48) < 0.1 and abs(box["height"] - 48) < 0.1      # the matrix at its full size
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    closer = page.get_by_role("dialog")       # over the matrix, in sight wherever the page is scrolled to
    heading = closer.get_by_text("that the model called").first
    heading.wait_for(timeout=15_000)
    names = data.CLASS_NAMES
    assert heading.inner_text().startswith(f"{evaluation.counted(counts[row, column], 'picture')} of "
                                           f"{data.with_article(names[row])} that the model called {names[column]}")
    pictures = closer.locator("[data-testid=stImage] img")
    pictures.first.wait_for()
    assert pictures.count() == min(counts[row, column], 40)
    no_exceptions(page)
    screenshot(page, "evaluate-cell")
    closer.get_by_role("button", name="Close", exact=True).click()
    closer.wait_for(state="detached")
    settle(page)
    page.get_by_role("radio", name="% of each true class").click()     # a rerun of the page: it stays closed
    settle(page)
    assert page.get_by_role("dialog").count() == 0
    # The keyboard's way, the box beside the matrix, opens the same pictures (its list opens with the
    # matrix's column made a CSS container, for its reserved height).
    box = page.get_by_role("combobox", name="Show the pictures of the square")
    box.evaluate("e => e.scrollIntoView({block: 'center'})")    # in sight first: a list opened while the page
    page.wait_for_timeout(300)                                  # still scrolls to it is closed by the scroll
    box.click()
    page.get_by_role("option", name=f"{names[row]} called {names[column]} (").click()
    page.get_by_role("dialog").get_by_text(f"that the model called {names[column]}").first.wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")

    page.get_by_role("tab", name="Confidence").click()
    chart = page.locator("[data-testid=stVegaLiteChart]:visible").last    # hidden tabs hold charts too
    chart.wait_for()
    # The curve is drawn: the dots (circles) are there, not only the dashed diagonal (Vega draws them a
    # moment after the chart appears).
    chart.locator("path[aria-roledescription='circle'], .mark-symbol path").nth(2).wait_for(state="attached")
    page.get_by_text("away from how often it is right").wait_for()
    screenshot(page, "evaluate-confidence")


def test_a_run_name_typed_is_kept_when_another_recipe_is_picked(page, server):
    """The recipe's numbers are reset to the new recipe's; the name, the person's own, was emptied too."""
    open_page(page, server, "train")
    page.get_by_role("textbox", name="Run name").fill("Class 7B's first try")
    page.locator("[data-testid=stButtonGroup]").first.get_by_role("radio", name="For a whole class").click()
    settle(page)
    assert page.get_by_role("spinbutton", name="Epochs").input_value() == "1"     # the recipe's own numbers
    assert page.get_by_role("textbox", name="Run name").input_value() == "Class 7B's first try"


def test_quiz_three_rounds(page, server):
    open_page(page, server, "quiz")
    for round_ in range(1, 4):
        page.get_by_role("button", name="Dog Shortcut 6", exact=True).click()
        page.get_by_text("It is a ").wait_for()
        you = page.locator("[data-testid=stMetric]").first.inner_text()
        assert f"/ {round_}" in you
        page.get_by_role("button", name="Next picture").click()
        page.get_by_role("button", name="Dog Shortcut 6", exact=True).wait_for()
    no_exceptions(page)
    screenshot(page, "quiz")
    page.reload()       # at the projector: the class's score goes on, from the browser's cookie
    page.get_by_role("button", name="Dog Shortcut 6", exact=True).wait_for()
    assert "/ 3" in page.locator("[data-testid=stMetric]").first.inner_text()


def test_a_phone_is_not_shown_the_quizs_keys(browser, server):
    """A touch screen with nothing that can point has no keyboard to press 1 to 9 on: the keys on the buttons
    and the switch for them were noise there. A computer keeps both (test_the_quiz_is_played_from_the_keyboard)."""
    context = new_context(browser, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone = context.new_page()
    try:
        open_page(phone, server, "quiz")
        assert phone.evaluate("matchMedia('(any-hover: none)').matches")
        dog = phone.get_by_role("button", name="Dog", exact=True)     # no "Shortcut 6" said either
        dog.wait_for()
        assert phone.locator(".stMainBlockContainer button kbd").count() == 10
        assert not any(key.is_visible() for key in phone.locator(".stMainBlockContainer button kbd").all())
        assert not phone.get_by_text("Answer with keys").is_visible()
        dog.tap()
        phone.get_by_text("It is a ").wait_for()
        no_exceptions(phone)
    finally:
        context.close()


def test_each_page_is_named_in_the_browsers_tab(page, server):
    """What a screen reader says first on a page, and how a visitor tells tabs apart: "CIFAR-10 Studio" on
    every page said nothing of which."""
    for path, name in (("", None), ("explore", "Explore"), ("train", "Train"), ("predict", "Predict"),
                       ("inside", "Look inside"), ("evaluate", "Evaluate"), ("quiz", "Quiz"),
                       ("glossary", "Glossary")):
        open_page(page, server, path)
        page.wait_for_function("expected => document.title === expected",
                               arg=f"{name} · CIFAR-10 Studio" if name else "CIFAR-10 Studio", timeout=10_000)


def test_the_quiz_answers_go_in_the_order_they_are_seen_from_the_keyboard(page, server):
    """Tab from one answer to the next goes to the one below it, down a column of five and then the next:
    across rows of two, the keyboard went Airplane, Bird, Deer while the eye read Airplane, Automobile."""
    open_page(page, server, "quiz")
    airplane = page.get_by_role("button", name="Airplane Shortcut 1", exact=True)
    airplane.focus()
    order = ["Airplane"]
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.innerText").split()[0])     # less its key
    from cifar_core.data import CLASS_NAMES
    assert order == [name.capitalize() for name in CLASS_NAMES]
    boxes = {name: page.get_by_role("button", name=name).bounding_box() for name in ("Airplane", "Automobile", "Dog")}
    assert boxes["Automobile"]["x"] == boxes["Airplane"]["x"] < boxes["Dog"]["x"]
    assert boxes["Automobile"]["y"] > boxes["Airplane"]["y"] == boxes["Dog"]["y"]


def test_the_quiz_is_played_from_the_keyboard(page, server):
    """The keys on the buttons answer (1 to 9, and 0 for truck) and N shows the next picture: after an answer
    from the keyboard no button has the focus, so Tab would have started again from the top of the page.
    A digit typed into the sidebar's model box is the box's, never an answer; and the keys can be switched
    off."""
    open_page(page, server, "quiz")
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox] input").click()
    page.keyboard.type("3")
    page.keyboard.press("Escape")
    settle(page)
    assert page.locator("[data-testid=stMetricValue]").first.inner_text() == "0 / 0"
    assert page.get_by_role("button", name="Bird Shortcut 3", exact=True).count() == 1     # what a screen reader says
    page.get_by_role("heading", name="You against the model").click()     # the focus back on the page
    page.keyboard.press("3")
    said = page.get_by_text("It is a ")
    said.wait_for()
    settle(page)        # the answer's whole run: "(you said ...)" is drawn after the header
    assert "bird" in said.inner_text() or page.get_by_text("(you said bird)").count() == 1
    assert page.locator("[data-testid=stMetricValue]").first.inner_text().endswith("/ 1")
    page.keyboard.press("n")
    page.get_by_text("Pick one").wait_for()
    settle(page)        # the new buttons and their keys in place
    page.keyboard.press("0")
    page.get_by_text("It is a ").wait_for()
    settle(page)
    assert "truck" in page.get_by_text("It is a ").inner_text() or page.get_by_text("(you said truck)").count() == 1
    assert page.locator("[data-testid=stMetricValue]").first.inner_text().endswith("/ 2")
    no_exceptions(page)

    # Switched off, keys answer nothing (a key pressed by chance, speech input), on return to the page too.
    page.keyboard.press("n")
    page.get_by_text("Pick one").wait_for()
    page.get_by_text("Answer with keys").click()
    settle(page)
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Explore").click()
    page.get_by_role("heading", name="Explore the data").wait_for()
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Quiz").click()
    page.get_by_role("button", name="Bird", exact=True).wait_for()       # no key named beside it
    assert not page.get_by_role("switch", name="Answer with keys").is_checked()
    page.get_by_role("heading", name="You against the model").click()
    page.keyboard.press("3")
    settle(page)
    assert page.get_by_text("Pick one").count() == 1
    assert page.locator("[data-testid=stMetricValue]").first.inner_text().endswith("/ 2")


def test_a_run_name_is_shown_as_typed_never_as_markdown(page, server):
    """A name is another student's text on everybody's screen: no bold, colours, maths, links or HTML."""
    name = "**big** :red[x] $y$ <b>z</b> [a](b) #1"
    open_page(page, server, "train")
    page.get_by_role("spinbutton", name="Epochs").fill("150")
    page.get_by_role("textbox", name="Run name").fill(name)
    page.get_by_role("button", name="Start training").click()
    heading = page.get_by_role("heading", name=name, exact=True)
    heading.wait_for(timeout=30_000)
    assert heading.locator("strong, b, a[href=\"b\"], .katex, span[style*=color]").count() == 0, heading.inner_html()
    no_exceptions(page)
    screenshot(page, "train-plain-name")
    page.get_by_role("button", name=STOP_OR_CANCEL).click()
