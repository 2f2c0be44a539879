"""Every page as a teacher sees it on a laptop and on a projector-sized screen, and a student on a phone.

Each page (and each of its tabs and views) is opened in Chromium at 1400x1000,
at 1280x720 and at a phone's 390x844, photographed into test-artifacts/screens/,
and checked for what a person would notice at once:
- an error box or a Python exception;
- a label, a selected value, a tab, a metric or a button whose text is cut off
  by its box (or by the window), or that ends in "…"; a table wider than its box;
- a chart that draws nothing (its canvas has no coloured pixels, or its SVG no
  mark with a size), a chart axis label shortened with "…", a broken picture.
Every problem on a page is reported together, so one run lists them all.

Also here: the model chosen in the sidebar survives a reload (it is kept on the
server for the visitor's cookie, cifar_core/remembered.py).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from cifar_core import models
from conftest import ROOT
from prepared_runs import finished_run
from test_browser import CHROMIUM, browser, new_context, poll, settle, streamlit_app   # noqa: F401 (browser is a fixture)

SCREENS = ROOT / "test-artifacts" / "screens"
VIEWPORTS = [(1400, 1000), (1280, 720), (390, 844)]
RUN_NAME = "Class 7B's first try"     # the Train page's own example of a run name
# page -> (address, the views to click in turn by their names; None: each of the page's tabs)
PAGES = {
    "home": ("", []),
    "explore": ("explore", ["Statistics", "Map"]),
    "train": ("train", []),
    "predict": ("predict", ["Test picture"]),
    "inside": ("inside", None),
    "evaluate": ("evaluate", None),
    "quiz": ("quiz", []),
    "glossary": ("glossary", []),
}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


@pytest.fixture(scope="module")
def server(tiny_archive, tmp_path_factory):
    """The app on the tiny data set, with one finished run already on the board (so every model list,
    comparison and run view has something in it)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        finished_run(RUN_NAME, accuracy=0.8125)
    with streamlit_app(tiny_archive, runs_dir) as url:
        yield url, runs_dir


@pytest.fixture
def visitor(browser):
    """A new person's browser (own cookies) at a given window size."""
    contexts = []

    def open_one(width: int, height: int):
        contexts.append(new_context(browser, viewport={"width": width, "height": height}))
        page = contexts[-1].new_page()
        page.set_default_timeout(60_000)
        return page
    yield open_one
    for context in contexts:
        context.close()


PROBLEMS_JS = r"""() => {
  const problems = [];
  // A phone's sidebar is folded away off the screen: nothing in it is seen until it is opened.
  const folded = document.querySelector('[data-testid=stSidebar][data-collapsed=true]');
  const shown = el => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
      && !(folded && folded.contains(el));
  };
  // On a phone (Streamlit's layout below 640 px), inside a box that scrolls sideways (a wide table, a row of
  // tabs), text past its edge is scrolled to, not cut off; the page's own scrolling (stMain, the sidebar's)
  // does not count: a page scrolled sideways is cut. At a laptop's or a projector's size all must fit.
  const phone = window.innerWidth < 640;
  const scrolled = el => {
    if (!phone) return false;
    for (let a = el; a && !['stMain', 'stSidebarContent'].includes(a.getAttribute('data-testid'));
         a = a.parentElement) {
      const x = getComputedStyle(a).overflowX;
      if ((x === 'auto' || x === 'scroll') && a.scrollWidth > a.clientWidth + 1) return true;
    }
    return false;
  };
  const words = el => (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 90);

  for (const el of document.querySelectorAll('[data-testid=stException], [data-testid=stAlertContentError]'))
    problems.push(`error box: "${words(el)}"`);

  // A page wider than the window scrolls sideways as a whole, and a tap that scrolls it cuts every part of
  // it at the left (a chart wider than its column, not held to it, did on a phone).
  const main = document.querySelector('[data-testid=stMain]');
  if (main && main.scrollWidth > main.clientWidth + 1)
    problems.push(`the page scrolls sideways: ${main.scrollWidth} px of it in a ${main.clientWidth} px window`);

  // Cut-off text: a text's own box reaching past an ancestor that clips it, or past the window.
  const app = document.querySelector('[data-testid=stApp]');
  const walker = document.createTreeWalker(app, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  const skip = '.vega-embed, [data-testid=stDataFrame], [data-testid=stCode], pre, .katex, [role=tooltip], style, script';
  const labelled = '[data-testid=stWidgetLabel], [role=tab], button, [data-testid=stMetricLabel], ' +
                   '[data-testid=stMetricValue], [data-testid=stSidebarNav], [data-testid=stPageLink]';
  while (walker.nextNode()) {
    const node = walker.currentNode, text = node.textContent.trim(), el = node.parentElement;
    if (!text || !el || el.closest(skip) || !shown(el)) continue;
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (!box.width) continue;
    const quoted = `"${text.slice(0, 60)}"`;
    if (/(…|\.\.\.)$/.test(text) && el.closest(labelled)) problems.push(`shortened with an ellipsis: ${quoted}`);
    if (scrolled(el)) continue;
    if (box.right > window.innerWidth + 1) { problems.push(`cut off by the window: ${quoted}`); continue; }
    for (let a = el; a && a !== app; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX === 'visible') continue;
      const clip = a.getBoundingClientRect();
      if (clip.width < 2 || clip.height < 2) break;     // visually hidden on purpose (screen-reader text)
      if (box.right > clip.right + 1 || box.left < clip.left - 1) {
        problems.push(`cut off: ${quoted} (${Math.round(box.width)} px of text in a ${Math.round(clip.width)} px box)`);
        break;
      }
    }
  }

  // A selectbox shows its value in a text box: a value wider than the box is cut off. A table draws its cells
  // on a canvas: columns past its right edge are cut off. On a phone both are as a phone shows them, a long
  // value's start (each network's line says what it is for first) and a table scrolled sideways, its run
  // names pinned.
  for (const input of phone ? [] : app.querySelectorAll('input[type=text], input:not([type])'))
    if (shown(input) && input.value && input.scrollWidth > input.clientWidth + 1)
      problems.push(`cut off: the value "${input.value.slice(0, 60)}" (${input.scrollWidth} px in a ${input.clientWidth} px box)`);

  for (const grid of phone ? [] : app.querySelectorAll('[data-testid=stDataFrame] .dvn-scroller'))
    if (shown(grid) && grid.scrollWidth > grid.clientWidth + 1)
      problems.push(`table cut off: ${grid.scrollWidth} px of columns in a ${grid.clientWidth} px box`);

  // Charts: each visible one has drawn marks.
  [...document.querySelectorAll('.vega-embed')].forEach((embed, i) => {
    if (!shown(embed)) return;        // in a closed tab or expander
    const canvas = embed.querySelector('canvas'), svg = embed.querySelector('svg');
    const near = embed.closest('[data-testid=stVerticalBlock]');
    const name = `chart ${i + 1} (${canvas ? 'canvas' : svg ? 'svg' : 'not drawn'}, ${Math.round(embed.getBoundingClientRect().width)} px wide)`;
    let marks = 0;
    if (canvas) {
      let pixels;
      try { pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data; }
      catch (e) { problems.push(`${name} cannot be read: ${e}`); return; }
      for (let p = 0; p < pixels.length; p += 4) {
        const r = pixels[p], g = pixels[p + 1], b = pixels[p + 2];
        // Axes, grid lines and labels are grey; data marks are coloured.
        if (pixels[p + 3] > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 40) marks++;
      }
    } else if (svg) {
      marks = [...svg.querySelectorAll('g.role-mark > *')].filter(m => {
        const b = m.getBBox(); return b.width > 0 || b.height > 0; }).length;
      for (const t of svg.querySelectorAll('g.role-axis-label text, g.role-legend-label text'))
        if (t.textContent.endsWith('…')) problems.push(`${name}: axis label shortened: "${t.textContent}"`);
    }
    if (!marks) problems.push(`${name} draws nothing`);
  });

  for (const img of document.querySelectorAll('[data-testid=stApp] img'))
    if (shown(img) && img.complete && img.naturalWidth === 0) problems.push(`broken picture: ${img.alt || img.src.slice(0, 60)}`);
  return problems;
}"""


BUSY_JS = """() => !!document.querySelector('[data-testid=stSpinner], [data-stale=true]')
    || document.querySelector('[data-testid=stApp]')?.dataset.testScriptState !== 'notRunning'"""


def calm(page, timeout_s: float = 120):
    """Until the script has finished and nothing on the page is loading (a spinner, a stale element, a run,
    a fragment's among them). Quiet for a second, to be sure."""
    settle(page)
    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < 4 and time.monotonic() < deadline:
        quiet = 0 if page.evaluate(BUSY_JS) else quiet + 1
        page.wait_for_timeout(250)


def wait_for_charts(page, timeout_s: float = 20):
    """Until no visible chart draws nothing, by PROBLEMS_JS's own test (Vega makes its canvas or SVG first
    and draws into it later), or `timeout_s` pass; then a moment for Vega to finish painting."""
    poll(lambda: page.evaluate(PROBLEMS_JS), lambda problems: not any("draws nothing" in p for p in problems),
         timeout_s)
    page.wait_for_timeout(300)


def look(page, name: str) -> list[str]:
    calm(page)
    wait_for_charts(page)
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENS / f"{name}.png")                    # the screen as it first appears
    problems = [f"{name}: {problem}" for problem in page.evaluate(PROBLEMS_JS)]
    # The whole page: Streamlit scrolls its main area itself, so a window as tall as the content shows it all.
    size = page.viewport_size
    tall = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    if tall > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(tall, 8000)})
        wait_for_charts(page, 5)
        page.screenshot(path=SCREENS / f"{name}-whole.png")
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
    return problems


def states(page, clicks):
    """The page's views in turn: (name, how to get there), the first being the page as it opens."""
    yield "", None
    if clicks is None:
        tabs = page.locator("[data-testid=stMain] [role=tab]")
        for i, tab in enumerate(tabs.all_inner_texts()):
            yield f"tab{i + 1}", lambda tab=tab: page.locator("[data-testid=stMain]").get_by_role("tab", name=tab).click()
    for text in clicks or []:
        # A segmented control's options are radio buttons.
        yield text.lower().replace(" ", "-"), lambda text=text: page.locator("[data-testid=stMain]").get_by_role(
            "radio", name=text, exact=True).first.click()


@pytest.mark.parametrize("width, height", VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
@pytest.mark.parametrize("name", PAGES)
def test_what_a_teacher_sees(name, width, height, server, visitor):
    url, _ = server
    address, clicks = PAGES[name]
    page = visitor(width, height)
    page.goto(f"{url}/{address}")
    page.get_by_role("heading", level=1).first.wait_for()
    problems = []
    for state, action in states(page, clicks):     # lazily: the tabs are counted once the page has settled
        if action:
            action()
        problems += look(page, "-".join(filter(None, [name, state, f"{width}x{height}"])))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width, columns", [(390, 5), (1280, 10)], ids=["phone", "laptop"])
def test_explore_s_grid_holds_as_many_pictures_to_a_row_as_fit(width, columns, server, visitor):
    """On a phone, a row of ten pictures was twice the screen's width: the grid was slid sideways inside
    itself for the rest of each row. A row holds as many pictures as fit now, up to ten."""
    url, _ = server
    page = visitor(width, 844)
    page.goto(f"{url}/explore")
    page.get_by_text("200 pictures, page 1 of 4").wait_for()
    calm(page)
    wait_for_charts(page)
    grid = page.locator("[data-testid=stVegaLiteChart]").first
    drawn = grid.locator("canvas, svg").first.bounding_box()
    assert grid.evaluate("e => { e.scrollLeft = 50; return e.scrollLeft === 0; }"), "the grid scrolls sideways"
    assert int(drawn["height"] // 64) == 50 // columns, drawn       # 50 pictures, `columns` to a row
    assert columns * 64 <= grid.bounding_box()["width"]             # and each row in sight
    problems = look(page, f"explore-grid-{width}")
    assert not problems, "\n".join(problems)


def test_evaluate_s_confusion_matrix_fits_a_phone(server, visitor):
    """On a phone the 480-pixel matrix was slid sideways inside itself: the columns of deer to truck were
    out of sight. Its squares are as large as the width beside the class names allows now."""
    url, _ = server
    page = visitor(390, 844)
    page.goto(f"{url}/evaluate")
    page.get_by_role("tab", name="Confusion matrix").click()
    calm(page)
    wait_for_charts(page)
    matrix = page.locator("[data-testid=stVegaLiteChart]:visible").first
    squares = matrix.locator(".mark-rect.role-mark path")
    squares.nth(99).wait_for(state="attached")
    last = squares.nth(99).bounding_box()
    assert last["x"] + last["width"] <= 390 - 16, last        # truck called truck, inside the page's margin
    assert 20 < last["width"] < 48 and abs(last["width"] - last["height"]) < 0.1
    # The drawing ends under the squares: Vega kept the height of the first, wider, layout, and a phone had
    # 95 blank pixels there.
    drawing = matrix.locator("svg.marks").bounding_box()
    assert drawing["y"] + drawing["height"] - (last["y"] + last["height"]) < 30, (drawing, last)
    wider = matrix.evaluate("e => [e, ...e.querySelectorAll('*')].filter(d => d instanceof HTMLElement && d.scrollWidth > d.clientWidth + 1"
                            " && d.clientWidth > 0).map(d => d.tagName)")
    assert not wider, f"the matrix scrolls sideways inside {wider}"
    # Each number inside its square: 14-pixel text spilled over squares half the size.
    spilled = matrix.evaluate("""e => {
        const squares = [...e.querySelectorAll('.mark-rect.role-mark path')].map(s => s.getBoundingClientRect());
        return [...e.querySelectorAll('.mark-text.role-mark text')].filter((t, i) => {
            const b = t.getBoundingClientRect(), s = squares[i];
            return b.left < s.left + 1 || b.right > s.right - 1 || b.top < s.top || b.bottom > s.bottom; }).length; }""")
    assert spilled == 0
    squares.nth(35).click()     # cat called dog
    page.get_by_role("dialog").get_by_text("that the model called dog").first.wait_for()
    problems = look(page, "evaluate-confusion-390")
    assert not problems, "\n".join(problems)


CUT_OFF_JS = """e => [e, ...e.querySelectorAll('*')].filter(d => d.scrollWidth > d.clientWidth + 1 && d.clientWidth > 0
                                                  && getComputedStyle(d).overflowX !== 'visible').length"""


def test_what_each_network_is_for_fits_a_phones_select_box(server, visitor):
    """The box and its list showed "airbench16: A good model in about a minute (ai" on a phone: each
    network's whole sentence was cut off. They say what it is for, and its help says what it is made of."""
    url, _ = server
    page = visitor(390, 844)
    page.goto(f"{url}/train")
    calm(page)
    box = page.locator("[data-testid=stSelectbox]").filter(has_text="Network")
    assert box.locator("input").evaluate(CUT_OFF_JS) == 0, box.locator("input").input_value()
    box.click()
    options = page.get_by_role("option")
    options.nth(len(models.REGISTRY) - 1).wait_for()
    for i in range(options.count()):
        assert options.nth(i).evaluate(CUT_OFF_JS) == 0, options.nth(i).inner_text()
    page.keyboard.press("Escape")
    from app_pages.train_parts import FORM_HELP
    assert all(f"**{name}**: {models.MAKEUPS[name]}" in FORM_HELP["arch"] for name in models.REGISTRY)


def sidebar_model(page) -> str:
    """The value the sidebar's model selectbox shows (not its label)."""
    return page.locator("[data-testid=stSidebar] [data-testid=stSelectbox] input").first.input_value()


def test_the_chosen_model_survives_a_reload(server, visitor):
    url, runs_dir = server
    page = visitor(1400, 1000)
    page.goto(f"{url}/explore")
    page.get_by_role("heading", name="Explore the data").wait_for()
    settle(page)
    assert sidebar_model(page).startswith("Bundled model")
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=f"Run {RUN_NAME}").click()
    settle(page)
    assert RUN_NAME in sidebar_model(page)

    page.reload()
    page.get_by_role("heading", name="Explore the data").wait_for()
    settle(page)
    assert RUN_NAME in sidebar_model(page)
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Quiz").click()
    page.get_by_role("heading", name="You against the model").wait_for()
    settle(page)
    assert RUN_NAME in sidebar_model(page)
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENS / "model-choice-after-reload.png")

    # Someone else, at the same address, still starts with the bundled model.
    other = visitor(1400, 1000)
    other.goto(f"{url}/explore")
    other.get_by_role("heading", name="Explore the data").wait_for()
    settle(other)
    assert sidebar_model(other).startswith("Bundled model")


def test_a_remembered_model_that_is_gone_falls_back_to_the_bundled_one(server, visitor):
    url, runs_dir = server
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        doomed = finished_run("Deleted soon", accuracy=0.5)
    page = visitor(1400, 1000)
    # The server sees a run written by another process at its watcher's next tick: until then a page
    # lists the models without it, and an open list does not change. So look again until it is there.
    for _ in range(30):
        page.goto(f"{url}/explore")
        page.get_by_role("heading", name="Explore the data").wait_for()
        settle(page)
        page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
        option = page.get_by_role("option", name="Run Deleted soon")
        if option.count():
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    option.click()
    settle(page)
    shutil.rmtree(doomed.path)
    page.reload()
    page.get_by_role("heading", name="Explore the data").wait_for()
    settle(page)
    assert sidebar_model(page).startswith("Bundled model")
    assert page.locator("[data-testid=stException], [data-testid=stAlertContentError]").count() == 0


# A page with one of each defect, built from the elements Streamlit draws: the checks must find each one,
# and nothing on the clean twin of each.
DEFECTS = """<div data-testid="stApp" style="width:900px;font:16px sans-serif">
  <section data-testid="stMain" style="width:300px;overflow-x:auto"><div style="width:700px;height:2px"></div></section>
  <div data-testid="stAlertContentError">That is not a picture.</div>
  <label data-testid="stWidgetLabel"><div style="width:80px;overflow:hidden;white-space:nowrap">A label far too long to fit</div></label>
  <input type="text" style="width:90px" value="Run Class 7B's first try (81.2%)">
  <button>Continue…</button>
  <div data-testid="stDataFrame"><div class="dvn-scroller" style="width:100px;overflow:auto"><div style="width:400px;height:5px"></div></div></div>
  <div class="vega-embed"><svg width="100" height="50"><g class="mark-rect role-mark"></g></svg></div>
  <div class="vega-embed"><canvas width="60" height="30" id="grey"></canvas></div>
  <div class="vega-embed"><svg width="100" height="50"><g class="mark-rect role-mark"><rect width="10" height="10"/></g>
    <g class="role-axis-label"><text>automob…</text></g></svg></div>
  <img src="data:image/png;base64,broken" width="20" height="20" alt="a broken picture">
  <div data-testid="stMain" style="overflow:auto;width:1280px"><div style="width:1600px;text-align:right">Past the window's edge</div></div>
  <div style="width:200px;overflow-x:auto"><div style="width:400px;text-align:right">A table's last column</div></div>
</div>
<script>{ const c = document.getElementById('grey').getContext('2d'); c.fillStyle = '#888'; c.fillRect(0, 0, 60, 1); }</script>"""
CLEAN = """<div data-testid="stApp" style="width:900px;font:16px sans-serif">
  <section data-testid="stMain" style="width:300px;overflow-x:auto"><div style="width:200px;height:2px"></div></section>
  <div data-testid="stAlertContentInfo">Offline: the bundled sample.</div>
  <label data-testid="stWidgetLabel"><div style="width:400px;overflow:hidden;white-space:nowrap">A short label</div></label>
  <input type="text" style="width:400px" value="Run Class 7B's first try (81.2%)">
  <button>Continue</button>
  <div data-testid="stDataFrame"><div class="dvn-scroller" style="width:400px;overflow:auto"><div style="width:300px;height:5px"></div></div></div>
  <div class="vega-embed"><canvas width="60" height="30" id="blue"></canvas></div>
  <div class="vega-embed"><svg width="100" height="50"><g class="mark-rect role-mark"><rect width="10" height="10"/></g>
    <g class="role-axis-label"><text>automobile</text></g></svg></div>
  <div style="width:1px;height:1px;overflow:hidden;position:absolute">Screen-reader text, hidden on purpose</div>
</div>
<script>{ const c = document.getElementById('blue').getContext('2d'); c.fillStyle = '#1f77b4'; c.fillRect(0, 0, 20, 20); }</script>"""


PHONE_CLEAN = """<div data-testid="stApp" style="width:390px;font:16px sans-serif">
  <div style="width:200px;overflow-x:auto"><div style="width:1600px;text-align:right">A wide table's last column, scrolled to</div></div>
  <section data-testid="stSidebar" data-collapsed="true" style="position:absolute;left:-300px;width:300px">
    <div style="width:40px;overflow:hidden;white-space:nowrap">A folded sidebar's line</div></section>
</div>"""


def test_the_checks_find_each_defect_and_nothing_on_a_clean_page(visitor):
    page = visitor(1280, 720)
    page.set_content(DEFECTS)
    found = "\n".join(page.evaluate(PROBLEMS_JS))
    for expected in ("error box: \"That is not a picture.\"", "cut off: \"A label far too long to fit\"",
                     "cut off: the value \"Run Class 7B's first try (81.2%)\"",
                     "shortened with an ellipsis: \"Continue…\"", "table cut off: 400 px",
                     "chart 1 (svg, 900 px wide) draws nothing", "chart 2 (canvas, 900 px wide) draws nothing",
                     "axis label shortened: \"automob…\"", "broken picture: a broken picture",
                     "cut off by the window: \"Past the window's edge\"",
                     "cut off: \"A table's last column\"",
                     "the page scrolls sideways: 700 px of it in a 300 px window"):
        assert expected in found, f"{expected!r} not found in:\n{found}"
    page.set_content(CLEAN)
    assert page.evaluate(PROBLEMS_JS) == []
    # On a phone, text in a box that scrolls sideways is scrolled to; a folded sidebar is not seen at all.
    page.set_viewport_size({"width": 390, "height": 844})
    page.set_content(PHONE_CLEAN)
    assert page.evaluate(PROBLEMS_JS) == []
