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

# One made-up point, so that Altair sees the columns' kinds (text for names) as in a real run.
_SAMPLE = [{"kind": "epoch", "epoch": 1, "elapsed_s": 0.0, "test_loss": 1.0, "test_accuracy": 0.5}]


@functools.cache
def _curves_template() -> tuple[dict, str]:
    """The training-curves spec without its points, and the name its data goes by."""
    spec = chart_specs.vega_lite(charts.training_curves(charts.curve_frame(_SAMPLE)))
    (name,) = spec.pop("datasets")     # every part of the chart reads the one data set
    return spec, name


@st.cache_data(max_entries=64, show_spinner=False)
def _curves_points(run_id: str, stamp: tuple, name: str, _metrics: list[dict]) -> bytes:
    # `stamp` (the run's files' times and sizes, from the board snapshot) stands for the metrics,
    # which are not hashed: a new record changes the stamp, and the points are made again.
    frame = charts.curve_frame(_metrics, name)     # training_curves draws it as it is
    return dataframe_util.convert_anything_to_arrow_bytes(frame)   # as st.altair_chart would send it


def training_curves(run_id: str, stamp: tuple | None, name: str, metrics: list[dict], alt: str | None = None) -> None:
    """Draw one run's loss and accuracy curves (charts.training_curves), its points made once per change;
    `alt`, the curves in words for a screen reader."""
    if stamp is None:     # not in the snapshot (just deleted): build it for this one drawing
        st.altair_chart(charts.training_curves(charts.curve_frame(metrics, name)), width="stretch", alt=alt)
        return
    template, data_name = _curves_template()
    chart_specs.draw({**template, "datasets": {data_name: _curves_points(run_id, stamp, name, metrics)}},
                     width="stretch", alt=alt)


@st.cache_resource(max_entries=32, show_spinner=False)
def _compared_template(names: tuple[str, ...]) -> tuple[dict, str]:
    """The compared runs' curves without their points: the chart's shape depends on the runs' names (a
    colour and a shape each, in order), never on their points."""
    spec = chart_specs.vega_lite(charts.training_curves(
        pd.concat([charts.curve_frame(_SAMPLE, name) for name in names]), colour_by="run"))
    (name,) = spec.pop("datasets")
    return spec, name


@st.cache_data(max_entries=32, show_spinner=False)
def _compared_points(key: tuple, _named_metrics: list) -> bytes:
    """The compared runs' points as Arrow bytes, made once per change of any of them (`key`)."""
    frames = [charts.curve_frame(metrics, name, earlier) for name, metrics, earlier in _named_metrics]
    return dataframe_util.convert_anything_to_arrow_bytes(pd.concat(frames, ignore_index=True))


def compared_curves(key: tuple, named_metrics: list[tuple[str, list[dict], int]], alt: str | None = None) -> None:
    """Draw several runs' curves (`named_metrics`: each one's name, records and the epochs before its own,
    those of the run it continues) in one chart (charts.training_curves, coloured by run), for every
    session from one spec per set of names and points made once per change (`key`: the runs' ids, stamps
    and names): the chart built anew for each live board with runs selected, every refresh, was 0.19 s of
    CPU each (most of a core for a class), and a training run's points change every second."""
    template, data_name = _compared_template(tuple(name for name, _, _ in named_metrics))
    chart_specs.draw({**template, "datasets": {data_name: _compared_points(key, named_metrics)}},
                     width="stretch", alt=alt)
