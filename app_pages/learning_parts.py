"""Learning, live: a run's first-layer filters and a fixed panel of test pictures, epoch by epoch.

The pieces read a run's snapshots (see `cifar_core.snapshots`): each file is
read once and kept by its name, time and size, so the live view, which redraws
them at every epoch's end, opens a file only when a new one has appeared. A damaged or
missing snapshot is skipped.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app_pages import chart_specs, common
from cifar_core import board, charts, evaluation, progress, rundir, runs, snapshots
from cifar_core.data import CLASS_NAMES, with_article

PANEL_CAPTION = ("Eight test pictures the network never trains on, the same eight for every run. Under each: "
                 "the class the network would answer after this epoch, how sure it is, and whether that is right. "
                 "How sure is the network's own figure, from one look and before the calibration a finished run "
                 "gets, so the same picture's \"% sure\" on other pages can differ.")
FILTERS_CAPTION = (
    "The first layer's filters: each square is a small colour pattern (3x3 pixels; 4x4 in the airbench "
    "networks, whose fixed first step blends each 2x2 square of pixels, and 6x6 in the airbench16 ones, whose "
    "first step takes the 2x2 squares side by side) that the network looks for all over a "
    "picture. A filter responds most where the picture looks like its bright parts and unlike its dark ones. "
    "Every training step nudges each pattern towards what helps tell the classes apart, so they change as it "
    "learns, most in the first epochs. Each square is scaled on its own around grey (a weight of nothing): "
    "compare their shapes and colours, not how strong they are.")


@st.cache_data(max_entries=2048, show_spinner=False)
def _read(_path: str, identity: tuple) -> snapshots.Snapshot | None:
    """A snapshot file, read once per server by its file (device, inode, time written, size), not its path:
    a continued run's are hard links to its parent's, and read by path each link was read and kept again."""
    return snapshots.read(Path(_path))


@st.cache_data(max_entries=512, show_spinner=False)
def _picture(pixels: np.ndarray, scale: int) -> bytes:
    """A panel picture enlarged, as PNG, once for every session watching: each of them redraws it."""
    return charts.png(charts.upscale(pixels, scale))


@st.cache_data(max_entries=256, show_spinner=False)
def _filter_sheet_png(filters: np.ndarray) -> bytes:
    return charts.png(filter_sheet(filters))


class History:
    """A run's snapshots as its folder holds them now; each file is opened once per change."""

    def __init__(self, run_path: Path):
        self.paths = snapshots.files(run_path)

    def get(self, epoch: int) -> snapshots.Snapshot | None:
        path = self.paths.get(epoch)
        try:
            stat = os.stat(path) if path else None
        except OSError:
            return None
        if stat is None:
            return None
        # By its file, which its links share; by its path where the file system numbers no files (an inode of 0).
        identity = (stat.st_dev, stat.st_ino) if stat.st_ino else (str(path),)
        return _read(str(path), (*identity, stat.st_mtime_ns, stat.st_size))

    def readable(self) -> list[snapshots.Snapshot]:
        return [s for s in map(self.get, self.paths) if s is not None]

    def newest(self, upto: int | None = None) -> snapshots.Snapshot | None:
        """The newest readable snapshot (at or before epoch `upto`)."""
        for epoch in reversed(self.paths):
            if (upto is None or epoch <= upto) and (snapshot := self.get(epoch)) is not None:
                return snapshot
        return None

    def filters(self, upto: int) -> tuple[int, np.ndarray] | None:
        """The newest filters at or before epoch `upto` (long runs keep them on some epochs only)."""
        for epoch in reversed(self.paths):
            if epoch <= upto and (snapshot := self.get(epoch)) is not None and snapshot.filters is not None:
                return epoch, snapshot.filters
        return None

    def pictures(self) -> np.ndarray | None:
        for epoch in self.paths:
            if (snapshot := self.get(epoch)) is not None and snapshot.pictures is not None:
                return snapshot.pictures
        return None


def filter_sheet(filters: np.ndarray, cell: int = 32, columns: int = 8, gap: int = 3) -> np.ndarray:
    """The filters as one picture: each enlarged (crisp) to about `cell` pixels, on a white grid."""
    n, h, _, _ = filters.shape
    scale = max(1, cell // h)
    size = h * scale
    rows = -(-n // columns)
    sheet = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), 255, np.uint8)
    for i, square in enumerate(filters):
        r, c = divmod(i, columns)
        sheet[r * (size + gap):r * (size + gap) + size, c * (size + gap):c * (size + gap) + size] = \
            charts.upscale(square, scale)
    return sheet


PANEL_ITEM_PX = 96     # a picture and its answer under it: four to a row beside the filters, three on a phone
PANEL_ROW_PX = 4 * PANEL_ITEM_PX + 3 * 16       # four of them and the "small" gaps between (1rem)


def _panel(snapshot: snapshots.Snapshot, pictures: np.ndarray | None) -> None:
    guesses = snapshot.probabilities.argmax(axis=1)
    # A row that wraps, not columns: a phone stacks columns, one picture a line (a Train page 5,300 px long).
    # At most four to a row, so eight make two even rows: on a 1920-pixel projector the row held seven and
    # left the eighth alone under them.
    row = st.container(horizontal=True, wrap=True, gap="small", width=PANEL_ROW_PX)
    for i, (guess, truth) in enumerate(zip(guesses, snapshot.labels)):
        with row.container(width=PANEL_ITEM_PX):
            if pictures is not None:
                st.image(_picture(pictures[i], 3), output_format="PNG", alt=f"a test picture of {with_article(CLASS_NAMES[truth])}")
            sure = snapshot.probabilities[i, guess]
            if guess == truth:
                st.markdown(f"**{CLASS_NAMES[guess]}** {evaluation.sure(sure)}  \n:green[:material/check: right]")
            else:
                st.markdown(f"**{CLASS_NAMES[guess]}** {evaluation.sure(sure)}  \n:red[:material/close: wrong, it is "
                            f"{with_article(CLASS_NAMES[truth])}]")


def _filters(history: History, epoch: int) -> None:
    found = history.filters(epoch)
    if found is None:
        st.caption("This network's first layer cannot be drawn as colours.")
        return
    filter_epoch, filters = found
    n, size = len(filters), filters.shape[1]
    note = "" if filter_epoch == epoch else f", as after epoch {filter_epoch} (long runs keep them on 50 epochs)"
    st.image(_filter_sheet_png(filters), output_format="PNG", alt=f"{n} first-layer filters after epoch {filter_epoch}")
    st.caption(f"{n} filters of {size}x{size} pixels{note}.")


def snapshot_panel(run: runs.Run, epoch: int | None = None, *, compact: bool = False) -> None:
    """What the network sees after `epoch` (the newest when None): the panel's answers and the filters.
    `compact` stacks them for half-width columns."""
    history = History(run.path)
    snapshot = history.newest(epoch)
    if snapshot is None:
        st.caption("The first snapshot of what it sees appears after its first epoch." if run.state in
                   ("queued", "running") else "This run has no snapshots of what it saw.")
        return
    if compact:
        _filters(history, snapshot.epoch)
        _panel(snapshot, history.pictures())
        return
    heading, note = epoch_words(run, [s.epoch for s in history.readable()], snapshot.epoch)
    st.markdown(heading)
    if note:
        st.caption(note)
    left, right = st.columns([3, 2], gap="large")
    with left:
        _panel(snapshot, history.pictures())
        st.caption(PANEL_CAPTION)
    with right:
        _filters(history, snapshot.epoch)
        st.caption(FILTERS_CAPTION)


def earlier_epochs(run: runs.Run) -> int:
    """How many epochs of the run it continues come before a continued run's own (0 for one that continues
    none), for curves drawn beside its parent's; from its snapshots' names where its status predates saying."""
    if not run.config.get("initial_model"):
        return 0
    if runs.EARLIER_EPOCHS in run.status:       # said when it was made: no folder read on a board's refresh
        return int(run.status[runs.EARLIER_EPOCHS])
    return _earlier_epochs(run, sorted(snapshots.files(run.path)))


def _earlier_epochs(run: runs.Run, epochs: list[int]) -> int:
    """How many of a continued run's snapshot `epochs` are the run it continues (copied when it started);
    0 for a run that continues none, whose records are not read."""
    if not epochs or not run.config.get("initial_model"):
        return 0
    if runs.EARLIER_EPOCHS in run.status:       # said when the run was made
        return int(run.status[runs.EARLIER_EPOCHS])
    # A run made before that: its epoch records, from the board's snapshot (read once per tick for everyone:
    # a long run's file read again on every move of the replay slider was 0.15 s of the server's CPU a read).
    metrics = board.current().metrics_of(run.id) or run.metrics()
    return epochs[-1] - len([m for m in metrics if m.get("kind") == "epoch"])


def epoch_words(run: runs.Run, epochs: list[int], epoch: int) -> tuple[str, str | None]:
    """The panel's heading for snapshot `epoch` of `epochs`, and a note where one is needed. A continued
    run's snapshots count on from the run it continues; its progress bar and curves count its own epochs,
    so its own are named both ways, and the earlier ones as the other run's."""
    earlier = _earlier_epochs(run, epochs)
    if 0 < earlier < epoch:
        return f"**What it sees after its epoch {epoch - earlier}** ({epoch} counting the run it continues)", None
    heading = f"**What it sees after epoch {epoch}**"
    if epoch <= earlier:
        return heading, (f"Epoch {epoch} was trained by the run this one continues; " + _own_snapshots(run, epochs))
    return heading, None


def _own_snapshots(run: runs.Run, epochs: list[int]) -> str:
    """Where a continued run's own snapshots are, or why there are none yet."""
    if epochs and epochs[-1] > _earlier_epochs(run, epochs):
        return "this run's own snapshots follow it."
    if run.state in rundir.ACTIVE:
        return "this run's own snapshots appear after each of its epochs."
    return "this run ended before an epoch of its own, so it has no snapshots of its own."


def _continued_note(run: runs.Run, epochs: list[int]) -> str:
    earlier = _earlier_epochs(run, epochs)
    if earlier <= 0:
        return ""
    if epochs[-1] > earlier:
        return f" Epochs count from the start of the run it continues: its own epochs are {earlier + 1} to {epochs[-1]}."
    # None of its own yet: "its own epochs are 4 to 3" said nothing true.
    return " Epochs count from the start of the run it continues, and all of these are that run's: " + _own_snapshots(run, epochs)


def replay(run: runs.Run, key: str) -> None:
    """After a run: an epoch slider over its snapshots, replaying the panel and the filters."""
    epochs = [s.epoch for s in History(run.path).readable()]
    if len(epochs) > 1:
        epoch = st.select_slider("Replay the training: epoch", epochs, value=epochs[-1], key=f"{key}_{run.id}",
                                 help="Move it to see what the network saw and answered after each epoch.")
        st.caption("Move the slider to watch the filters form and the answers change, epoch by epoch."
                   + _continued_note(run, epochs))
    else:
        epoch = epochs[-1] if epochs else None
    snapshot_panel(run, epoch)


def class_accuracy_chart(per_class: list[tuple[int, np.ndarray]], epoch: int | None = None,
                         epochs: tuple[int, int] | None = None) -> alt.Chart:
    """A heat map, class x epoch: the share (%) of each class's test pictures the run got right after each
    epoch (`per_class`: each snapshot's epoch and its shares), darker for more; a red frame marks `epoch`.
    `epochs` (first, last) fixes the x range."""
    frame = pd.DataFrame([{"epoch": e, "class": name, "right": float(value) * 100}
                          for e, shares in per_class for name, value in zip(CLASS_NAMES, shares) if np.isfinite(value)],
                         columns=["epoch", "class", "right"])
    # Each epoch's cells reach to the next snapshot's: a continued run keeps only some of its parent's.
    kept = sorted({e for e, _ in per_class})
    reach = dict(zip(kept, kept[1:] + [kept[-1] + 1])) if kept else {}
    frame["start"], frame["end"] = frame["epoch"] - 0.5, frame["epoch"].map(reach) - 0.5
    first, last = epochs or ((min(e for e, _ in per_class), max(e for e, _ in per_class)) if per_class else (1, 1))
    x = alt.X("start:Q", title="epoch", scale=alt.Scale(domain=[first - 0.5, last + 0.5], nice=False, zero=False),
              axis=alt.Axis(tickMinStep=1, format="d"))
    cells = alt.Chart(frame).mark_rect().encode(
        x=x, x2="end:Q",
        y=alt.Y("class:N", sort=list(CLASS_NAMES), title=None, axis=alt.Axis(labelOverlap=False)),
        color=alt.Color("right:Q", title="right (%)", scale=alt.Scale(scheme="blues", domain=[0, 100]),
                        legend=alt.Legend(orient="right", gradientLength=120)),
        tooltip=["class", "epoch", alt.Tooltip("right:Q", format=".1f", title="pictures right (%)")])
    chart = cells
    if epoch is not None:
        marker = alt.Chart(pd.DataFrame({"start": [epoch - 0.5], "end": [epoch + 0.5]})).mark_rect(
            fill=None, stroke="#ff4b4b", strokeWidth=2).encode(x=x, x2="end:Q")
        chart = cells + marker
    # Short enough for half a 1280-pixel page, where two runs are compared: the title before it was cut off there.
    return chart.properties(height=330, title="Each class's test pictures right, by epoch")


@st.cache_resource(max_entries=64, show_spinner=False)
def _class_accuracy_spec(per_class: tuple, epoch: int, epochs: tuple[int, int]) -> dict:
    """`class_accuracy_chart` as Vega-Lite with its points as Arrow bytes, made once per change of a run's
    snapshots for every session: a live board comparing two runs made both anew every refresh (45 ms
    each)."""
    return chart_specs.with_arrow_data(chart_specs.vega_lite(class_accuracy_chart(list(per_class), epoch, epochs)))


def _describe(run: runs.Run) -> str:
    config = run.config
    augment = "with augmentation" if config.get("augment") else "without augmentation"
    if config.get("augment") and config.get("zoom"):
        augment += f" and zoom {config['zoom']:g}"
    models = len(config.get("distill_from") or ())
    owners = "models'" if models > 1 else "model's"
    taught = f", learning from {models} {owners} answers" if models else ""
    return f"{config.get('arch')}, {augment}{taught}, {evaluation.counted(int(config.get('epochs') or 0), 'epoch')} · {run.state}"


def distinct_names(chosen: list[runs.Run]) -> list[str]:
    """The runs' names, each with its id where two share a name (a run continued twice, two students' "test"):
    a chart colours and keys its curves by name, and would draw two such runs as one; two headings alike
    would leave a class guessing which is which."""
    shared = {name for name, count in Counter(r.name for r in chosen).items() if count > 1}
    return [f"{r.name} [{r.id}]" if r.name in shared else r.name for r in chosen]


def compare(first: runs.Run, second: runs.Run, key: str = "learning_compare", names: list[str] | None = None) -> None:
    """Two runs side by side at the same epoch: their filters, their panel answers, their accuracy per class.
    `names`: what to call them (`distinct_names`, by default)."""
    histories = [History(first.path).readable(), History(second.path).readable()]
    epochs = sorted({s.epoch for h in histories for s in h})
    if not epochs:
        st.caption("Neither run has snapshots of what it saw yet.")
        return
    epoch = epochs[-1]
    if len(epochs) > 1:
        epoch = st.select_slider("Epoch (both runs)", epochs, value=epochs[-1], key=f"{key}_{first.id}_{second.id}")
    st.caption("The same eight test pictures and the same kind of filters for both runs, after the same epoch; "
               "under each picture, the network's answer and how sure it was, its own figure before calibration. "
               "Under them, for each class (a row) and each epoch (a column), the share of that class's test "
               "pictures the run got right from one look, without the mirror (as the dots on the training "
               "curves): darker is better. The red frame is the chosen epoch.")
    names = names or distinct_names([first, second])
    for column, run, name, history in zip(st.columns(2, gap="large"), (first, second), names, histories):
        with column:
            st.markdown(f"**{common.plain(name)}**")
            st.caption(_describe(run))
            if not history:
                st.caption("No snapshots yet.")
                continue
            last = history[-1].epoch
            if last < epoch:
                st.caption(f"It has no epoch {epoch}: shown after its last, epoch {last}.")
            snapshot_panel(run, min(epoch, last), compact=True)
    # The heat maps in a row of their own, level: under each run's answers, whose words take two lines or
    # three, one stood lower than the other, and a class's row was read across at two heights.
    for column, name, history in zip(st.columns(2, gap="large"), names, histories):
        if history:
            shown = min(epoch, history[-1].epoch)
            column.markdown(f"**{common.plain(name)}**")
            with column:
                chart_specs.draw(_class_accuracy_spec(tuple((s.epoch, s.per_class) for s in history), shown,
                                                      (epochs[0], epochs[-1])), width="stretch",
                                 alt=f"Heat map, a row for each class and a column for each epoch, of the share of "
                                     f"the class's test pictures {name} got right, darker for more; epoch {shown} "
                                     "framed.")
    st.caption(FILTERS_CAPTION)


def compare_view() -> None:
    """Pick two runs that have snapshots and see what each learned, side by side, epoch by epoch."""
    candidates = [r for r in board.current().runs if snapshots.files(r.path)]
    if len(candidates) < 2:
        st.info("Comparing needs two runs that have trained for at least an epoch. Train two on the Train page, "
                "for example the same recipe with and without augmentation.", icon=":material/compare:")
        return
    names = {r.id: f"{r.name} · {r.state} · {_created(r)}" for r in candidates}
    left, right = st.columns(2)
    first = left.selectbox("First run", list(names), index=0, format_func=names.get, key="learning_first")
    second = right.selectbox("Second run", list(names), index=1, format_func=names.get, key="learning_second")
    if first == second:
        st.caption("Pick two different runs.")
        return
    try:
        compare(runs.get(first), runs.get(second))
    except runs.RunError:
        st.caption("That run has just been deleted.")


def _created(run: runs.Run) -> str:
    return progress.clock(run.status.get("created", 0), common.visitor_zone())
