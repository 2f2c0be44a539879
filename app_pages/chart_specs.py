"""Altair charts turned into Vega-Lite once, for charts a page draws again and again.

st.altair_chart converts its chart on every rerun, and Altair's conversion checks the
whole chart against the Vega-Lite schema: 15 ms for the Predict page's probability
bars and 14 ms for its heat-map colour key, on every rerun of every visitor. A chart
whose look never changes (only its data, or nothing) is converted here once per
server, and drawn with st.vega_lite_chart, which takes the dict as it is.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from streamlit import dataframe_util

from cifar_core import charts
from cifar_core.data import CLASS_NAMES


def vega_lite(chart: alt.TopLevelMixin) -> dict:
    """`chart` as the Vega-Lite dict st.altair_chart makes of it: Altair's own conversion, less the
    300 x 300 view that Altair's default theme adds and Streamlit turns off while it converts."""
    spec = chart.to_dict()
    theme = alt.theme.get()() if alt.theme.active == "default" else {}
    view = spec.get("config", {}).get("view", {})
    for name, value in theme.get("config", {}).get("view", {}).items():
        if view.get(name) == value:
            del view[name]
    if "config" in spec:
        if not view:
            spec["config"].pop("view", None)
        if not spec["config"]:
            del spec["config"]
    return spec


def template(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite dict without its data: the same chart for any data of the same columns."""
    spec = vega_lite(chart)
    spec.pop("data", None)
    spec.pop("datasets", None)
    return spec


def with_arrow_data(spec: dict) -> dict:
    """`spec` with each of its data sets as the Arrow bytes st.altair_chart would send: a kept spec is then
    drawn without converting its rows again on every rerun."""
    return {**spec, "datasets": {name: dataframe_util.convert_anything_to_arrow_bytes(pd.DataFrame(rows))
                                 for name, rows in spec.get("datasets", {}).items()}}


def draw(spec: dict, data=None, **kwargs):
    """st.vega_lite_chart of a kept spec, which must come out of it as it went in. Streamlit moves the
    data out of the top level of the dict it is given, so that level is copied. Below it Streamlit only
    writes " " for a missing legend title, the same every time; a deep copy cost a watched Train page
    a millisecond a redraw."""
    return st.vega_lite_chart(data, dict(spec), **kwargs)


@st.cache_resource(show_spinner=False)
def _probability_bars() -> dict:
    return template(charts.probabilities(np.full(len(CLASS_NAMES), 1 / len(CLASS_NAMES))))


def probability_bars(probabilities: np.ndarray, top: int | None = None) -> None:
    """charts.probabilities(probabilities, top), drawn from its Vega-Lite made once per server, with its
    figures as the chart's text for a screen reader."""
    frame = charts.probability_frame(probabilities, top)
    named = ", ".join(f"{name} {sure}" for name, sure in zip(frame["class"], frame["sure"]))
    draw(_probability_bars(), frame, width="stretch",
         alt=f"Bar chart of how sure the model is of {'its top guesses' if top else 'each class'}: {named}.")


@st.cache_resource(show_spinner=False, max_entries=2)
def _confusion(as_share: bool) -> dict:
    return template(charts.confusion(np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), np.int64), as_share=as_share))


def confusion(counts: np.ndarray, as_share: bool, chosen: tuple[int, int] | None, **kwargs):
    """charts.confusion drawn from its Vega-Lite made once per server: building and checking the Altair chart
    was 0.1 s of a core on every rerun of Evaluate's matrix (every click on a square, every box chosen).
    Returns the selection event."""
    return draw(_confusion(as_share), charts.confusion_frame(counts, chosen), **kwargs)


@st.cache_resource(show_spinner=False, max_entries=len(CLASS_NAMES) + 1)
def _embedding_map(chosen: str | None) -> dict:
    blank = np.zeros((len(CLASS_NAMES), 2))
    return template(charts.embedding_map(blank, np.arange(len(CLASS_NAMES)), [""] * len(CLASS_NAMES), chosen))


MAP_DATA = "dots"     # the name a map's kept data goes by in its spec


def embedding_map(dots: bytes, chosen: str | None, **kwargs):
    """charts.embedding_map drawn from its Vega-Lite made once per server for each class picked out, with
    its dots (`charts.embedding_frame`) as Arrow bytes made once for everyone (building and checking the
    Altair chart and its 1,000 thumbnails was 0.07-0.1 s of a core on every rerun of the map)."""
    return draw({**_embedding_map(chosen), "data": {"name": MAP_DATA}, "datasets": {MAP_DATA: dots}}, **kwargs)


GRID_CELL = 64       # pixels: charts.image_grid's cell


@st.cache_resource(show_spinner=False, max_entries=4)
def _image_grid(columns: int) -> dict:
    blank = np.zeros((columns, 32, 32, 3), np.uint8)
    return template(charts.image_grid(blank, np.zeros(len(blank), np.int64), np.arange(len(blank)), columns, GRID_CELL))


def image_grid(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, *, key: str, on_select,
               selected: int | None = None, columns: int = 10, alt: str | None = None,
               numbers: np.ndarray | None = None):
    """charts.image_grid drawn from its Vega-Lite made once per server (building and checking the Altair
    chart was 120 ms of every Explore rerun), as wide as its column: a row holds as many pictures as fit,
    up to `columns`. Returns the selection event. `alt`: what a screen reader says of the grid; `numbers`,
    the pictures' numbers as pages name them."""
    frame = charts.image_grid_frame(images, labels, indices, selected, numbers)
    hold_place(key, -(-len(indices) // columns) * GRID_CELL)        # its rows where all `columns` fit
    # Its rows fit its width; Vega's drawing is 5 pixels wider still, blank, which made a phone's grid
    # scroll sideways by them.
    st.html(f"<style>.st-key-{key} [data-testid=stVegaLiteChart] {{ overflow-x: clip; }}</style>")
    return draw(_image_grid(columns), frame, on_select=on_select, key=key, width="stretch", alt=alt)


MAX_CLICK_CHARS = 10_000     # a click on a picture or a square is about 200 characters as Python prints it

# A clickable chart's pick can also be made in a box, from the keyboard. The chart is then drawn afresh,
# under a new key and without the click it still holds: that click would otherwise win again on the next
# rerun, and clicking the same thing again would change nothing.
def clicked(chart: str, selection: str) -> tuple[str, list]:
    """The key to draw clickable chart `chart` under, and what its last click chose (`selection`'s points,
    [] without one). Read before the chart is drawn, so that it can frame what was just clicked.

    The browser sends the click; a script could send anything in its place. Only points that are objects
    come back, and each page checks their values as well."""
    key = _key(chart)
    event = st.session_state.get(key)
    if event is not None and len(repr(event)) > MAX_CLICK_CHARS:
        # No click of a person's is this large: a script's, kept in the session and copied on every rerun
        # while the chart holds it. The chart is drawn afresh under a new key, and Streamlit lets it go.
        return afresh(chart), []
    chosen = event.get("selection") if isinstance(event, dict) else None
    points = chosen.get(selection) if isinstance(chosen, dict) else None
    return key, [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def afresh(chart: str) -> str:
    """The new key to draw clickable chart `chart` under, without the click its last key holds.

    One of two keys, in turn: Streamlit keeps a widget's settings (its callback and their arguments
    among them) under its key for the whole session once it is drawn, so a new key for every click grew
    the session with every click. The key not drawn is emptied at the end of the run, so it comes back
    without a click."""
    st.session_state[f"{chart}_drawn"] = st.session_state.get(f"{chart}_drawn", 0) + 1
    return _key(chart)


def _key(chart: str) -> str:
    return f"{chart}_{st.session_state.get(f'{chart}_drawn', 0) % 2}"


def hold_place(key: str, height: int | str) -> None:
    """Keep `height` for the chart drawn under `key` while Vega draws it: pixels, or a CSS length, in which
    100cqw is the width of the column the chart is in. Drawn afresh under a new key (`afresh`), a chart is
    empty until then: the page grew shorter for a moment, and a browser scrolled down to it was thrown back
    to the page's top. (A `height` short of the chart's lets go of at most the difference.)"""
    if isinstance(height, str):     # the column is made a container, so that 100cqw is its width
        st.html(f"<style>[data-testid=stVerticalBlock]:has(> .st-key-{key}) {{ container-type: inline-size; }}"
                f".st-key-{key} {{ min-height: {height}; }}</style>")
    else:
        st.html(f"<style>.st-key-{key} {{ min-height: {height}px; }}</style>")


# A widget's callback and its arguments stay in the visitor's session once the widget is drawn: Streamlit
# keeps them under its key until the key is drawn again, or for the rest of the session. One defined in a
# page's own script holds that run's every variable alive with it (an upload's bytes, a model's answers);
# these are module functions, which hold nothing of a run.
# A box's callback sees the value as the browser sent it, before Streamlit checks it is one of the box's
# options: a script may send anything. Each of these raises ValueError for a value that names no picture
# or square.
def in_split(split, count: int, value) -> tuple:
    """A picture chosen in a box, as Explore's pick: its split (as the page names it) and its index, one
    of the split's `count` pictures."""
    index = _whole(value)
    if not 0 <= index < count:
        raise ValueError(value)
    return split, index


def in_square(size: int, value) -> tuple[int, int]:
    """A square chosen in a box, numbered row by row, as Evaluate's pick: (row, column)."""
    square = _whole(value)
    if not 0 <= square < size * size:
        raise ValueError(value)
    return divmod(square, size)


def _whole(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise ValueError(value)
    return int(value)


def chosen_in_box(box: str, chart: str, pick: str, as_pick) -> bool:
    """A box's `on_change`: its choice, `as_pick(value)`, becomes the pick, and `chart` is drawn afresh.
    A value that `as_pick` refuses is ignored. Whether the choice was taken."""
    value = st.session_state.get(box)
    if value is None:
        return False
    try:
        st.session_state[pick] = as_pick(value)
    except ValueError:
        return False
    afresh(chart)
    return True
