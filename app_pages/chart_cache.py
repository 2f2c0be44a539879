"""A run's training curves, built once per change of its files for every session that shows them.

The Train page's live view redraws every 1.5 s for every visitor watching. Building
the Altair chart and turning it into a Vega-Lite spec took about 280 ms of server
CPU each time (measured on 2 shared cores, a 4-epoch run), for each visitor, even
when no new record had arrived. Here the spec is built once per (run, state of
its files) and shared: every other redraw sends the stored spec, about 7 ms.
"""
from __future__ import annotations

import streamlit as st

from cifar_core import charts

# Keys Altair's default theme adds to every spec; Streamlit drops that theme for its own, so do we.
DEFAULT_THEME_VIEW = ("continuousWidth", "continuousHeight")


def _spec(chart) -> dict:
    spec = chart.to_dict()
    view = spec.get("config", {}).get("view", {})
    for key in DEFAULT_THEME_VIEW:
        view.pop(key, None)
    if "view" in spec.get("config", {}) and not view:
        del spec["config"]["view"]
    if "config" in spec and not spec["config"]:
        del spec["config"]
    return spec


@st.cache_data(max_entries=64, show_spinner=False)
def _curves_spec(run_id: str, stamp: tuple, name: str, _metrics: list[dict]) -> dict:
    # `stamp` (the run's files' times and sizes, from the board snapshot) stands for the metrics,
    # which are not hashed: a new record changes the stamp, and the spec is built again.
    return _spec(charts.training_curves(charts.curve_frame(_metrics, name)))


def training_curves(run_id: str, stamp: tuple | None, name: str, metrics: list[dict]) -> None:
    """Draw one run's loss and accuracy curves (charts.training_curves), built once per change."""
    if stamp is None:     # not in the snapshot (just deleted): build it for this one drawing
        st.altair_chart(charts.training_curves(charts.curve_frame(metrics, name)), width="stretch")
        return
    st.vega_lite_chart(_curves_spec(run_id, stamp, name, metrics), width="stretch")
