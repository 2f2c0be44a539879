"""A run's training curves, built once per change of its files for every session that shows them.

The Train page's live view redraws its curves every 2.5 s for every visitor watching, and a
training run writes a record about once a second. Building the Altair chart and
turning it into a Vega-Lite spec took about 230-280 ms of server CPU (2 shared
cores), and with a new record every second that was a quarter of a core while
any run trained, however many people watched.

The chart's shape never changes, only its points: the spec is built once per
process, its data left out, and each change of a run's files only turns the new
points into Arrow bytes (about a millisecond), shared by every session. A redraw
then sends the stored bytes and a copy of the spec (chart_specs.draw); Streamlit passes
bytes through as they are.
"""
from __future__ import annotations

import functools

import pandas as pd
import streamlit as st
from streamlit import dataframe_util

from app_pages import chart_specs
from cifar_core import charts

# Made-up points, so that Altair sees the columns' kinds (text for names) as in a real run, and the key
# names the lines a run has: a running one, a test one, or both.
_TRAINING = {"kind": "batch", "epoch": 1, "step": 1, "steps": 1, "elapsed_s": 0.0, "loss": 1.0, "accuracy": 0.5}
_TEST = {"kind": "epoch", "epoch": 1, "elapsed_s": 0.0, "test_loss": 1.0, "test_accuracy": 0.5}


def _lines(metrics: list[dict]) -> tuple[bool, bool]:
    """Which lines `metrics` draw: the running training figures, the test's."""
    return (any(m.get("kind") == "batch" for m in metrics), any(m.get("kind") == "epoch" for m in metrics))


def _sample(lines: tuple[bool, bool]) -> list[dict]:
    return [record for record, drawn in zip((_TRAINING, _TEST), lines) if drawn] or [_TRAINING, _TEST]


def _without_points(panels: list) -> tuple[list[dict], str]:
    """The curves' panels (charts.curve_panels) as Vega-Lite without their points, and the name their one
    data set goes by."""
    specs = [chart_specs.vega_lite(panel) for panel in panels]
    (name,) = {name for spec in specs for name in spec.pop("datasets")}    # every panel reads the one data set
    return specs, name


@functools.cache
def _curves_template(lines: tuple[bool, bool]) -> tuple[list[dict], str]:
    """The training curves' two panels without their points, and the name their data goes by, for a run
    with the `lines` (_lines) it has."""
    return _without_points(charts.curve_panels(charts.curve_frame(_sample(lines))))


def _halves(frame: pd.DataFrame) -> tuple[bytes, ...]:
    """A curves frame's points as Arrow bytes (as st.altair_chart would send them), a part for each panel:
    its own quantity's rows (each panel draws only those), so that the two send no more than one chart did."""
    return tuple(dataframe_util.convert_anything_to_arrow_bytes(frame[frame["quantity"] == quantity]
                                                                .reset_index(drop=True))
                 for quantity in charts.CURVE_QUANTITIES)


@st.cache_data(max_entries=64, show_spinner=False)
def _curves_points(run_id: str, stamp: tuple, name: str, _metrics: list[dict]) -> tuple[bytes, ...]:
    # `stamp` (the run's files' times and sizes, from the board snapshot) stands for the metrics,
    # which are not hashed: a new record changes the stamp, and the points are made again.
    return _halves(charts.curve_frame(_metrics, name))     # curve_panels draws it as it is


def training_curves(run_id: str, stamp: tuple | None, name: str, metrics: list[dict], alt: str | None = None) -> None:
    """Draw one run's loss and accuracy curves (charts.training_curves), its points made once per change;
    `alt`, the curves in words for a screen reader."""
    if stamp is None:     # not in the snapshot (just deleted): build it for this one drawing
        frame = charts.curve_frame(metrics, name)
        _side_by_side(*_without_points(charts.curve_panels(frame)), _halves(frame), alt)
        return
    _side_by_side(*_curves_template(_lines(metrics)), _curves_points(run_id, stamp, name, metrics), alt)


def _side_by_side(panels: list[dict], data_name: str, points: tuple[bytes, ...], alt: str | None) -> None:
    """The loss and accuracy panels (each its points as Arrow bytes) in two columns, as wide as they are (a
    phone stacks them): the chart described once, to a screen reader, by the first."""
    for column, panel, part, said in zip(st.columns(2), panels, points,
                                         (alt, "The accuracy half of the chart before it.")):
        with column:
            chart_specs.draw({**panel, "datasets": {data_name: part}}, width="stretch", alt=said)


@st.cache_resource(max_entries=32, show_spinner=False)
def _compared_template(names: tuple[str, ...], lines: tuple[bool, bool]) -> tuple[list[dict], str]:
    """The compared runs' curves without their points: the chart's shape depends on the runs' names (a
    colour and a shape each, in order) and on which lines any of them has (_lines), never on their points."""
    return _without_points(charts.curve_panels(
        pd.concat([charts.curve_frame(_sample(lines), name) for name in names]), colour_by="run"))


@st.cache_data(max_entries=32, show_spinner=False)
def _compared_points(key: tuple, _named_metrics: list) -> tuple[bytes, ...]:
    """The compared runs' points as Arrow bytes, a part per panel, made once per change of any of them (`key`)."""
    frames = [charts.curve_frame(metrics, name, earlier) for name, metrics, earlier in _named_metrics]
    return _halves(pd.concat(frames, ignore_index=True))


def compared_curves(key: tuple, named_metrics: list[tuple[str, list[dict], int]], alt: str | None = None) -> None:
    """Draw several runs' curves (`named_metrics`: each one's name, records and the epochs before its own,
    those of the run it continues) in one chart (charts.training_curves, coloured by run), for every
    session from one spec per set of names and points made once per change (`key`: the runs' ids, stamps
    and names): the chart built anew for each live board with runs selected, every refresh, was 0.19 s of
    CPU each (most of a core for a class), and a training run's points change every second."""
    lines = tuple(map(any, zip(*(_lines(metrics) for _, metrics, _ in named_metrics)))) or (True, True)
    _side_by_side(*_compared_template(tuple(name for name, _, _ in named_metrics), lines),
                  _compared_points(key, named_metrics), alt)
