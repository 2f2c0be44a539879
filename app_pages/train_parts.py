"""The pieces of the Train page: the run form, the live view of one run, the runs board."""
from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from app_pages import common, learning_parts
from cifar_core import charts, models, report, runs
from cifar_core.config import FIELD_HELP, OPTIMIZERS, ConfigError, TrainConfig

RECIPES = {"quick": "Quick (about a minute)", "best": "Best (most accurate, 15+ minutes)",
           "tutorial": "TensorFlow tutorial (the classic baseline)"}
SUBSETS = (0, 36_000, 10_000, 5_000)   # training pictures: all of them, or fewer for a shorter demo
STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:"}


class ConfigFields:
    """The form's widgets for a TrainConfig, with a place under each for its error."""

    def __init__(self, defaults: TrainConfig, preset: str, max_epochs: int):
        key = f"train_{preset}_"   # a new recipe resets the fields to its values
        left, middle, right = st.columns(3)
        self.widgets, self.slots = {}, {}

        def add(column, field, widget, *args, **kwargs):
            with column:
                self.widgets[field] = widget(*args, key=key + field, help=FIELD_HELP[field], **kwargs)
                self.slots[field] = st.empty()

        add(left, "arch", st.selectbox, "Network", list(models.REGISTRY),
            index=list(models.REGISTRY).index(defaults.arch), format_func=lambda n: f"{n}: {models.DESCRIPTIONS[n]}")
        add(left, "optimizer", st.selectbox, "Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer))
        add(middle, "epochs", st.number_input, "Epochs", value=defaults.epochs, step=1)
        add(middle, "learning_rate", st.number_input, "Learning rate", value=defaults.learning_rate,
            format="%.4g", step=None)
        add(right, "batch_size", st.number_input, "Batch size", value=defaults.batch_size, step=32)
        add(right, "train_subset", st.selectbox, "Training pictures", SUBSETS, index=SUBSETS.index(defaults.train_subset),
            format_func=lambda n: f"{n:,}" if n else "All 50,000")
        add(left, "augment", st.toggle, "Augmentation (flips and shifts)", value=defaults.augment)
        add(middle, "name", st.text_input, "Run name", placeholder="e.g. Class 7B's first try", max_chars=60)
        right.caption(f"At most {max_epochs} epochs per run on this server.")

    def values(self) -> dict:
        return dict(self.widgets)

    def show_error(self, error: ConfigError) -> None:
        (self.slots.get(error.field) or st).error(str(error))


def watched_run(owner: str) -> runs.Run | None:
    """The run to show live: the one just started or picked, else this person's newest, else any running one."""
    everything = runs.list_runs()
    chosen = st.session_state.get("train_watch")
    for candidates in ([r for r in everything if r.id == chosen],
                       [r for r in everything if r.status.get("owner") == owner],
                       [r for r in everything if r.state == "running"]):
        if candidates:
            return candidates[0]
    return None


@st.fragment(run_every=1.5)
def live(run_id: str, owner: str) -> None:
    """One run's state, progress and curves, refreshed from its run directory every 1.5 s."""
    try:
        run = runs.get(run_id)
    except runs.RunError:
        return
    if run.state == "running":
        runs.reconcile()     # a trainer that died shows as failed, never as running forever
        run = runs.get(run_id)
    # When the run ends, redraw the whole page so the board and the sidebar's model list see it.
    seen = st.session_state.setdefault("train_seen_states", {})
    if seen.get(run.id) in ("queued", "running") and run.state not in ("queued", "running"):
        seen[run.id] = run.state
        st.rerun(scope="app")
    seen[run.id] = run.state
    metrics = run.metrics()
    st.subheader(common.plain(run.name))
    status_line(run, metrics)
    mine = run.status.get("owner") == owner or common.is_teacher()
    if run.state in ("queued", "running") and not mine:
        st.caption("Someone else started this run: only they (or a teacher) can stop it.")
    if run.state in ("queued", "running") and mine:
        if st.button("Stop", icon=":material/stop:", key=f"stop_{run.id}"):
            try:
                runs.stop(run.id, owner, admin=common.is_teacher())
                st.toast("Stopping after the current batch…")
            except runs.RunError as e:
                st.error(str(e))
    if metrics:
        st.altair_chart(charts.training_curves(charts.curve_frame(metrics, run.name)), width="stretch")
    elif run.state == "running":
        st.caption("Loading the data and building the network…")
    if run.state in ("queued", "running"):
        learning_parts.snapshot_panel(run)
    else:
        learning_parts.replay(run, key="train_replay")


def status_line(run: runs.Run, metrics: list[dict]) -> None:
    icon = STATE_ICONS.get(run.state, "")
    if run.state == "queued":
        st.info(f"Waiting in the queue: number {runs.queue_position(run)}. It starts by itself when a trainer is free.",
                icon=icon)
    elif run.state == "running":
        p = run.progress(metrics)
        speed = f" · {p['images_per_s']:,.0f} pictures/s" if p["images_per_s"] else ""
        left = f" · about {p['seconds_left']:.0f} s left" if p["seconds_left"] is not None else ""
        st.progress(p["fraction"], text=f"Epoch {max(1, p['epoch'])} of {p['epochs']}{speed}{left}")
    elif run.state == "failed":
        st.error(f"Failed: {run.status.get('error') or 'no reason was recorded.'}", icon=icon)
    else:
        best = run.summary(metrics)["best test accuracy"]
        result = f"best test accuracy {best:.1%}" if best is not None else "no complete epoch"
        st.success(f"{run.state.capitalize()}: {result}. Pick it as the model in the sidebar to try it.", icon=icon)


def board(owner: str) -> None:
    """Every run in a table; pick rows to compare their curves, download, continue or delete them."""
    everything = runs.list_runs()
    if not everything:
        st.caption("No runs yet. Start one above.")
        return
    summaries = {r.id: r.summary() for r in everything}
    table = pd.DataFrame(summaries.values()).set_index("id")
    picked = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", key="train_board",
                          column_config={"best test accuracy": st.column_config.ProgressColumn(
                              format="percent", min_value=0, max_value=1)})
    chosen = [everything[i] for i in picked.selection.rows if i < len(everything)]
    if not chosen:
        st.caption("Select runs in the table to compare their curves, download them or continue them.")
        return
    frames = [charts.curve_frame(r.metrics(), r.name) for r in chosen]
    st.altair_chart(charts.training_curves(pd.concat(frames), colour_by="run"), width="stretch")
    for run in chosen:
        actions(run, owner)
    if len(chosen) == 2:
        st.subheader("What they learned, side by side")
        learning_parts.compare(*chosen, key="train_compare")
    elif len(chosen) == 1:
        learning_parts.replay(chosen[0], key="train_board_replay")


def file_name(run: runs.Run) -> str:
    """A download's file name from the run's name: letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", run.name).strip("-")[:60] or run.id


def actions(run: runs.Run, owner: str) -> None:
    columns = st.columns([3, 2, 2, 3, 2], vertical_alignment="bottom")
    columns[0].markdown(f"**{common.plain(run.name)}** · {run.state}")
    if run.model_path:
        columns[1].download_button("Model (.keras)", run.model_path.read_bytes(), f"{file_name(run)}.keras",
                                   key=f"model_{run.id}", icon=":material/download:")
    columns[2].download_button("Report (.html)", report.html(run), f"{file_name(run)}.html", mime="text/html",
                               key=f"report_{run.id}", icon=":material/description:")
    if run.state in ("finished", "stopped") and run.model_path:
        more = columns[3].number_input("More epochs", 1, 200, 2, key=f"more_{run.id}")
        if columns[3].button("Continue", key=f"continue_{run.id}"):
            try:
                st.session_state["train_watch"] = runs.continue_run(run.id, int(more), owner,
                                                                    admin=common.is_teacher()).id
                st.rerun()
            except (runs.RunError, ConfigError) as e:
                st.error(str(e))
    if run.state not in ("queued", "running") and columns[4].button("Delete", key=f"delete_{run.id}"):
        try:
            runs.delete(run.id, owner, admin=common.is_teacher())
            st.rerun()
        except runs.RunError as e:
            st.error(str(e))


def teacher_tools() -> None:
    """A teacher's reset between lessons: every run, whoever started it."""
    with st.expander("Teacher: clear every run on this server"):
        st.caption("Cancels every waiting run, stops every running one and deletes every ended one, "
                   "whoever started it. Downloaded models and reports are not affected.")
        if st.button("Clear all runs", type="primary", key="train_clear_all"):
            cleared = runs.clear(admin=common.is_teacher())
            st.toast(f"Cleared {cleared} runs.")
            st.rerun()
