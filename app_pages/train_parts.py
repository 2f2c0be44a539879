"""The pieces of the Train page: the run form, the live view of one run, the runs board."""
from __future__ import annotations

import secrets
import time

import pyarrow as pa
import streamlit as st

from app_pages import chart_cache, common, learning_parts, run_downloads
from cifar_core import board as runs_board, charts, evaluation, models, overfitting, report, rundir, runs, settings
from cifar_core import queue_wait, trainer_memory
from cifar_core.config import (FIELD_HELP, MAX_SEED, MAX_TRAIN_IMAGES, OPTIMIZERS, OWN_RUN_MARK, ConfigError,
                                TrainConfig)
from cifar_core.progress import clock, duration, testing_seconds

# Each recipe's button, and what it is said to be under the buttons: the whole sentence on a button was cut
# off on a phone ("Best (most accurate: 8 minutes on a fast server, about…").
RECIPES = {"quick": ("Quick", "about a minute"),
           "best": ("Best", "the most accurate: about 10 minutes on a CPU with bfloat16 maths (2 cores "
                    "will do), an hour or more on one without"),
           "class": ("For a whole class", "about 20 seconds each"),
           "airbench94": ("airbench94", "best's recipe before Muon"),
           "tutorial": ("TensorFlow tutorial", "the classic baseline")}
# Thirty students pressing Start with the recipe as it is got thirty identical runs, one figure thirty times:
# each run draws its own seed unless one is typed, and the seed is shown with the run to repeat it.
FORM_HELP = {"seed": "What draws the network's starting weights, the order of the pictures and their flips and "
                     "shifts. Left empty, each run gets a new one, shown under its name: runs of one recipe then "
                     "differ a little, as any two trainings do. Type a run's seed with its settings to repeat it.",
             # Its box says what each network is for; this, what each is made of (airbench's parts, unless
             # it says otherwise).
             "arch": "The network to train: wider ones learn more but take longer an epoch, and those on 2x2 "
                     "patches are the quickest. What each is made of:\n\n" + "\n".join(
                 f"- **{name}**: {models.MAKEUPS[name]}" for name in models.REGISTRY)}
SEEDS_DRAWN = 100_000   # seeds a run draws from: five digits to read out, and two of thirty runs rarely share one
SUBSETS = (0, 36_000, 10_000, 5_000)   # training pictures: all of them, or fewer for a shorter demo


def recipe_label(preset: str) -> str:
    return RECIPES.get(preset, (preset.capitalize(), ""))[0]


def recipe_said(preset: str) -> str:
    """The chosen recipe in a sentence, under its buttons."""
    label, said = RECIPES.get(preset, (preset.capitalize(), ""))
    return f"{label}: {said}." if said else f"{label}."
STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":material/play_circle:",
               "finished": ":material/check_circle:", "stopped": ":material/stop_circle:",
               "failed": ":material/error:"}


class ConfigFields:
    """The form's widgets for a TrainConfig, with a place under each for its error."""

    def __init__(self, defaults: TrainConfig, preset: str, max_epochs: int):
        key = f"train_{preset}_"   # a new recipe resets the fields to its values
        self.widgets, self.slots = {}, {}

        def add(column, field, widget, *args, **kwargs):
            # The run's name is the person's, not the recipe's: typed before another recipe was picked, it
            # was emptied with the recipe's numbers.
            with column:
                self.widgets[field] = widget(*args, key=("train_" if field == "name" else key) + field,
                                             help=FORM_HELP.get(field, FIELD_HELP[field]), **kwargs)
                self.slots[field] = st.empty()

        # A row of its own: a column would cut off what each network is for.
        add(st.container(), "arch", st.selectbox, "Network", list(models.REGISTRY),
            index=list(models.REGISTRY).index(defaults.arch), format_func=lambda n: f"{n}: {models.PURPOSES[n]}")
        left, middle, right = st.columns(3)
        add(left, "optimizer", st.selectbox, "Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer))
        add(middle, "epochs", st.number_input, "Epochs", value=defaults.epochs, step=1)
        add(middle, "learning_rate", st.number_input, "Learning rate", value=defaults.learning_rate,
            format="%.4g", step=None)
        add(right, "batch_size", st.number_input, "Batch size", value=defaults.batch_size, step=32)
        subsets = sorted({*SUBSETS, defaults.train_subset}, key=lambda n: -n if n else -MAX_TRAIN_IMAGES - 1)
        add(right, "train_subset", st.selectbox, "Training pictures", subsets,
            index=subsets.index(defaults.train_subset),
            # "All" trains on all but the pictures kept aside to make "% sure" honest (`recipe.split`).
            format_func=lambda n: f"{n:,}" if n else (f"All {MAX_TRAIN_IMAGES - defaults.calibration_images:,} "
                                                      f"({defaults.calibration_images:,} more kept aside)"))
        add(left, "augment", st.toggle, "Augmentation (flips and shifts)", value=defaults.augment)
        add(left, "seed", st.number_input, "Seed", value=None, min_value=0, max_value=MAX_SEED, step=1,
            placeholder="New for each run")
        add(middle, "name", st.text_input, "Run name", placeholder="e.g. Class 7B's first try", max_chars=60)
        turn = settings.get().run_turn_minutes
        right.caption(f"At most {evaluation.counted(max_epochs, 'epoch')} a run on this server."
                      + (f" While others are waiting, a run stops {evaluation.counted(turn, 'minute')} after it "
                         "starts, keeping what it has learned." if turn else ""))

    def values(self) -> dict:
        """What the form says; an empty seed stays None here (`with_seed` draws it when the run starts)."""
        return dict(self.widgets)

    def show_error(self, error: ConfigError | runs.RunError) -> None:
        (self.slots.get(error.field) or st).error(str(error))


def with_seed(values: dict) -> dict:
    """The form's values with a seed drawn for the run where none was typed."""
    if values.get("seed") is not None:
        return values
    return {**values, "seed": secrets.randbelow(SEEDS_DRAWN)}


def run_said(run: runs.Run) -> str:
    """Under a run's name: its recipe and seed, what repeats it."""
    preset, seed = run.config.get("preset"), run.config.get("seed")
    recipe = f"Recipe: {recipe_label(preset)}" + (", changed" if run.recipe_changed() else "") if preset else None
    return " · ".join(filter(None, [recipe, f"seed {seed}" if seed is not None else None]))


def watched_run(owner: str) -> runs.Run | None:
    """The run to show live: the one just started or picked, else this person's newest, else any running one."""
    everything = runs_board.current().runs
    chosen = st.session_state.get("train_watch")
    for candidates in ([r for r in everything if r.id == chosen],
                       [r for r in everything if r.status.get("owner") == owner],
                       [r for r in everything if r.state == "running"]):
        if candidates:
            return candidates[0]
    return None


SAW_TOOTH = (
    "How to read the curves: the dashed line is the training loss and accuracy as a running average over the "
    "epoch so far. It starts again at every epoch, so it jumps there and makes a saw-tooth: early in an epoch "
    "it averages only the newest, better steps. With augmentation each picture is also shown mirrored every "
    "other epoch, so one epoch can look a little different from the next. The solid line's dots are the whole "
    "test set, measured after each epoch on pictures the network never trains on: they are the figures to trust. "
    "A one-epoch run (Quick, For a whole class) has one dot and no saw-tooth, and its dashed line, which "
    "averages every step from the untrained start, ends worse than the dot, which measures the finished network: "
    "below it on accuracy, above it on loss.")


NO_DOT_YET = (
    "How to read the curves: the dashed line is the training loss and accuracy as a running average over the "
    "epoch so far, from the untrained start, so it lags behind the network as it is now. The test figures, "
    "measured on the whole test set on pictures the network never trains on, come as a dot at the end of each "
    "epoch: they are the figures to trust.")


NO_DOT_EVER = (
    "How to read the curves: the dashed line is the training loss and accuracy as a running average over the "
    "epoch, from the untrained start. The run ended before its first epoch did, so it has no test dot, the "
    "figure measured on the whole test set after each epoch.")


def curves_alt(named_metrics: list[tuple[str, list[dict]]]) -> str:
    """The curves in words, for a screen reader: what is drawn, and each run's latest test figures."""
    latest = []
    for name, metrics in named_metrics:
        last = next((m for m in reversed(metrics) if m.get("kind") == "epoch"), None)
        latest.append(f"{name}: no test yet" if last is None else
                      f"{name}: after epoch {last['epoch']}, test loss {last['test_loss']:.3f}, test accuracy "
                      f"{evaluation.percent(last['test_accuracy'])}")
    return ("Line charts of loss and accuracy against epochs: dashed lines for the running training figures, "
            "solid lines with dots for the test set after each epoch. " + "; ".join(latest) + ".")


LIVE_EVERY_S = 2.5     # how often a watched run's progress line, time left and curves refresh (~1 point/s)
WHOLE_PAGE_EVERY_S = 20.0   # a watched run's new epoch redraws the whole page at most this often
QUEUED_EVERY_S = 5.0   # a waiting run's place in the queue: it moves on about once a class run (8 s)


def live(run_id: str, owner: str) -> None:
    """One run's state, progress, curves and what it sees, live from the server's snapshot of the runs.

    Thirty students watch at once, and every refresh of a part of a page costs the server a script run of
    its own (about 5 ms however little it draws, 8 ms with the curves), so the parts that change together
    refresh together, and only as often as they change: the progress line and the curves in one fragment,
    every 2.5 s while the run trains and every 5 s while it waits; the pictures of what the network sees,
    which change once an epoch, only when an epoch ends (the fragment reruns the page then). Nothing is
    read from disk here: the runs watcher refreshes the snapshot once a second for every session.
    """
    run = runs_board.current().get(run_id)
    if run is None:
        return
    st.header(common.plain(run.name))
    st.caption(run_said(run))
    if run.state == "running":
        _live_training(run_id, owner)
        learning_parts.snapshot_panel(run)
    elif run.state == "queued":
        _live_waiting(run_id, owner)
    else:
        _status(run, runs_board.current().metrics_of(run_id), owner)
        _curves(run_id)
        learning_parts.replay(run, key="train_replay")


@st.fragment(run_every=LIVE_EVERY_S)
def _live_training(run_id: str, owner: str) -> None:
    _live(run_id, owner)


@st.fragment(run_every=QUEUED_EVERY_S)
def _live_waiting(run_id: str, owner: str) -> None:
    _live(run_id, owner)


DRAWN_KEPT = 100     # watched runs whose state and epochs a tab remembers, to redraw when either changes


def _live(run_id: str, owner: str) -> None:
    snapshot = runs_board.current()
    run = snapshot.get(run_id)
    if run is None:
        return
    metrics = snapshot.metrics_of(run.id)
    epochs = sum(m.get("kind") == "epoch" for m in metrics)
    # When the run starts or ends, or an epoch does, redraw the page: the board, the sidebar's model list,
    # the pictures of what it sees and how often this refreshes are all decided outside this fragment. For
    # an epoch's end at most every WHOLE_PAGE_EVERY_S: a run of 4-second epochs redrew every watcher's whole
    # page that often (a quarter of a core for thirty watchers).
    drawn = st.session_state.setdefault("train_drawn", {})
    if run.id not in drawn and len(drawn) >= DRAWN_KEPT:     # a projector's tab open for weeks of classes' runs
        drawn.clear()
    was = drawn.setdefault(run.id, (run.state, epochs))
    if was[0] != run.state or (was[1] != epochs and time.monotonic() - st.session_state.get("train_whole_page", 0)
                               >= WHOLE_PAGE_EVERY_S):
        drawn[run.id] = (run.state, epochs)
        st.session_state["train_whole_page"] = time.monotonic()
        st.rerun(scope="app")
    _status(run, metrics, owner)
    _curves(run_id)


def _status(run: runs.Run, metrics: list[dict], owner: str) -> None:
    said_after_stop()
    status_line(run, metrics)
    mine = run.status.get("owner") == owner or common.is_teacher()
    if run.state in ("queued", "running") and not mine:
        st.caption("Someone else started this run: only they (or a teacher) can stop it.")
    if run.state in ("queued", "running") and mine:
        # A callback, not `if st.button(...)`: it runs before the script, so a press is kept even when this
        # rerun is the one that redraws the whole page because an epoch has just ended.
        label, stopping = stop_button(run)
        st.button(label, icon=":material/stop:", key=f"stop_{run.id}", on_click=_stop, args=(run.id, owner),
                  disabled=stopping)
        if error := st.session_state.pop("train_stop_error", None):
            st.error(error)
    if run.state in ("finished", "stopped") and run.model_path:
        # The step after training, one press away: on a phone the sidebar's list of models is out of sight.
        # A callback, as Stop's: a press is kept even when its rerun draws another run here.
        st.button("Try it on your own pictures", icon=":material/photo_camera:", key=f"try_{run.id}",
                  on_click=_try, args=(run.id,),
                  help="Makes it the model every page uses, as picking it in the sidebar does, and opens Predict.")
        if error := st.session_state.pop("train_try_error", None):
            st.error(error)


TRIED = "train_tried"       # set by a press of "Try it": the Train page opens Predict (`follow_try`)


def _try(run_id: str) -> None:
    if common.use_everywhere(run_id) is None:
        st.session_state["train_try_error"] = "This run's model is no longer on the server: it was deleted meanwhile."
    else:
        st.session_state[TRIED] = True


def follow_try() -> None:
    """Open Predict after a press of a run's "Try it" (its model is already the one every page uses)."""
    if st.session_state.pop(TRIED, False):
        st.switch_page("app_pages/predict.py")


def stop_button(run: runs.Run) -> tuple[str, bool]:
    """A waiting or running run's stop button, in the live view and on the board: its words (Cancel while it
    waits: it leaves the queue at once) and whether it is greyed out (Stopping, once asked: not pressed again)."""
    stopping = run.state == "running" and rundir.stop_requested(run.path)
    return ("Stopping" if stopping else "Stop" if run.state == "running" else "Cancel"), stopping


STOP_SAID = "train_stop_said"     # what a press of Stop did, for the rerun after it to say (`said_after_stop`)


def _stop(run_id: str, owner: str) -> None:
    try:
        run = runs.stop(run_id, owner, admin=common.is_teacher())
        # A waiting run is cancelled at once: it has no batch to finish. Worded to stay true for the toast's
        # few seconds: "Stopping…" still showed after the run had stopped.
        st.session_state[STOP_SAID] = ("Asked to stop after its current batch." if run.state == "running"
                                       else "Cancelled: it has left the queue.")
    except runs.RunError as e:
        st.session_state["train_stop_error"] = str(e)


def said_after_stop() -> None:
    """The toast for a press of Stop, from the script: drawn from its callback during a fragment's rerun
    (the live panel's, the board's), Streamlit warned in the server's log, for every press, that it would
    be drawn at the top of the page."""
    if said := st.session_state.pop(STOP_SAID, None):
        st.toast(said)


def _curves(run_id: str) -> None:
    snapshot = runs_board.current()
    metrics = snapshot.metrics_of(run_id)
    if metrics and not charts.drawable(metrics):     # a run stopped in its first batch, or a second into it
        (first,) = [m for m in metrics if m.get("kind") == "batch"] or [None]
        if first is not None:
            st.caption(f"One training measurement so far (loss {first['loss']:.3f}, accuracy "
                       f"{evaluation.percent(first['accuracy'])}): a curve needs two.")
        return
    if metrics and (run := snapshot.get(run_id)) is not None:
        # Points made once per new record for everyone watching, not per visitor (app_pages/chart_cache.py).
        chart_cache.training_curves(run.id, snapshot.stamps.get(run.id), run.name, metrics,
                                    alt=curves_alt([(run.name, metrics)]))
        overfitting_note(metrics)
        # Until its first epoch ends (the whole watched life of a one-epoch run) there is no test dot to read;
        # a run that ended before then never has one.
        st.caption(SAW_TOOTH if any(m.get("kind") == "epoch" for m in metrics)
                   else NO_DOT_YET if run.state in rundir.ACTIVE else NO_DOT_EVER)


def overfitting_note(metrics: list[dict]) -> None:
    """Say so, in words, when the test has been getting worse while training got better."""
    found = overfitting.detect(metrics)
    if found is None:
        return
    signs = []
    if found.accuracy_fell:
        signs.append(f"test accuracy fell from {evaluation.percent(found.test_accuracy[0])} to "
                     f"{evaluation.percent(found.test_accuracy[1])}")
    if found.loss_rose:
        signs.append(f"test loss rose from {found.test_loss[0]:.3f} to {found.test_loss[1]:.3f}")
    best = f"{evaluation.percent(found.best_accuracy)}, after epoch {found.best_epoch}"
    if found.best_epoch < found.last_epoch:
        best = f"Its best test accuracy from one look (the dots) was {best}: fewer epochs would have kept it."
    else:   # only the loss rose: the answers grow over-sure while accuracy still climbs
        best = (f"Its test accuracy from one look (the dots) is still its best, {best}, but its answers are "
                "growing more sure than they are right, which the test loss punishes.")
    st.warning(f"**Overfitting** after epoch {found.first_epoch}: the training loss kept falling "
               f"({found.train_loss[0]:.3f} to {found.train_loss[1]:.3f} by epoch {found.last_epoch}) while the "
               f"{' and the '.join(signs)}. The network is learning its own training pictures by heart rather "
               f"than what makes each class. More pictures, augmentation or fewer epochs help. {best}",
               icon=":material/trending_down:")


def _guess(run: runs.Run) -> str:
    """When a waiting run can expect to start, and what that guess rests on; "" where it cannot be told."""
    start = runs_board.current().expected_starts.get(run.id)
    if start is None:
        return ""
    return (f", {queue_wait.roughly(start - time.time())} (a guess from how long runs of the same recipes "
            "take on this server)")


TRY_IT = "Try it with the button below, or pick it in the sidebar's list of models."


def status_line(run: runs.Run, metrics: list[dict]) -> None:
    icon = STATE_ICONS.get(run.state, "")
    p = run.progress(metrics)
    if run.state == "queued" and run.status.get("backend") == "ray":   # the cluster's scheduler decides, not a queue
        from cifar_core import ray_backend
        st.info(ray_backend.waiting_sentence(run), icon=icon)
    elif run.state == "queued":
        ahead = runs_board.current().queued_ahead(run.id)
        # Not in this tick's snapshot yet: no number, never "None".
        where = f": number {len(ahead) + 1}" if ahead is not None else ""
        need = run.status.get("waiting_for_mb")
        if need:
            when = (f"It needs about {trainer_memory.gb(need)} of memory to train, more than the runs training now "
                    "leave free, so it starts by itself when one of them ends.")
        elif any(trainer_memory.estimate_mb(TrainConfig.from_dict(run.config)) < (r.status.get("waiting_for_mb") or 0)
                 for r in ahead or ()):     # runs.py lets a smaller run past one waiting for memory; None: not now
            when = ("A run ahead of it is waiting for memory; this one may start before it, when a trainer is "
                    "free and memory allows both.")
        elif ahead:
            when = "It starts by itself after the runs ahead of it" + _guess(run) + "."
            if any(r.queue_order > run.queue_order for r in ahead):     # queue_wait.in_turn put them ahead
                when += " People take turns: runs of those who have started fewer in the last hour go first."
        else:
            when = "It starts by itself when a trainer is free" + _guess(run) + "."
        st.info(f"Waiting in the queue{where}. {when}", icon=icon)
    elif run.state == "running" and rundir.stop_requested(run.path):
        # Not "about N min left": it stops after its current batch, then saves and tests what it has; within
        # its first minute of training it keeps nothing (a few batches are no model worth the queue's time).
        kept = ("it keeps and tests what it has learned" if rundir.keeps_a_model(metrics)
                else "it ends without a model, as it has trained for less than a minute")
        st.progress(p["fraction"], text=f"Stopping: after its current batch {kept} · {duration(p['elapsed_s'])} so far")
    elif run.state == "running":
        text = progress_text(p)
        # Its time left may be past its turn: it stops then, and says so before, not the class's queue after.
        turn = runs.turn_left(run, runs_board.current().runs)
        if turn is not None and (p["seconds_left"] is None or turn < p["seconds_left"]):
            text += (f" · others are waiting: its turn ends in {duration(turn)}, when it stops (what it has "
                     "learned kept)" if turn else " · others are waiting: its turn is over, and it stops shortly "
                     "(what it has learned kept)")
        st.progress(p["fraction"], text=text)
    elif run.state == "failed":
        st.error(f"Failed: {run.status.get('error') or 'no reason was recorded.'}", icon=icon)
    elif run.state == "stopped" and not run.model_path:     # cancelled while it waited, or stopped too soon
        why = run.status.get("error") or run.status.get("stopped_because") or "It was stopped in its first minute of training."
        st.info(f"Stopped: {why} It has no model to try.", icon=icon)
    else:
        accuracy = run.status.get("test_accuracy")
        result = (f"test accuracy {evaluation.percent(accuracy)}" if accuracy is not None
                  else "its test accuracy was not measured")
        testing = testing_seconds(run.status, metrics)
        took = f" It took {duration(p['elapsed_s'])} from its start" + (
            f", of which testing {duration(testing)}." if testing else ".")
        because = run.status.get("stopped_because")     # the server's or a teacher's, not its owner's
        if because:
            st.info(f"{because} {result[0].upper()}{result[1:]}.{took} {TRY_IT}", icon=icon)
        else:
            st.success(f"{run.state.capitalize()}: {result}.{took} {TRY_IT}", icon=icon)
        if accuracy is not None and not any(m.get("kind") == "epoch" for m in metrics):
            st.caption(evaluation.ACCURACY_DEFINITION + " It stopped before its first epoch ended, so its curves "
                       "have no test dots: this figure is of the network as it was when it stopped.")
        elif accuracy is not None:
            st.caption(evaluation.ACCURACY_DEFINITION + " The dots on the curves are each epoch's test pass, "
                       "without the mirror, so the last dot can differ from this figure a little"
                       + (" (more here: it stopped partway through an epoch, after its last dot)."
                          if run.state == "stopped" else "."))


def progress_text(p: dict) -> str:
    """The progress bar's line: where the run is, how fast, how long so far and how long left."""
    so_far = f"{duration(p['elapsed_s'])} so far"
    final = p["phase"] == "final"
    left = "" if p["seconds_left"] is None else (
        f" · about {duration(p['seconds_left'])} left" if p["seconds_left"] >= 1
        else " · nearly done" if p["seconds_left"] > 0
        # The final estimate leaves out the search named below (seconds for `best`): past it, not late.
        else " · finishing" if final
        else " · taking longer than expected, nearly done")   # the estimate ran out while it still works
    if p["phase"] == "starting":
        return f"Starting: loading the data and building the network · {so_far}"
    if final:
        done = "Its one epoch done" if p["epochs"] == 1 else f"All {p['epochs']} epochs done"
        return (f"{done}: measuring the final model on the whole test set, calibrating how sure it is, then "
                f"finding what its maps answer most (for Look inside) · {so_far}{left}")
    doing = "testing on the whole test set" if p["phase"] == "testing" else (
        f"{p['images_per_s']:,.0f} pictures/s" if p["images_per_s"] else "training")
    return f"Epoch {max(1, p['epoch'])} of {p['epochs']} · {doing} · {so_far}{left}"


MINE = OWN_RUN_MARK + " "   # before the names of a visitor's own runs on the board (no run's name starts so)
MINE_SAID = f"{OWN_RUN_MARK}\u00a0marks the runs started in this browser."   # no-break space: never a line's end alone


# Widths in pixels: the table sizes its columns to their first values, and a live "0 s" grows into "12 min 05 s".
# All of them fit the main column of a 1280-pixel window.
BOARD_COLUMNS = {
    # Kept in sight while the rest scrolls sideways (a phone shows three columns): a time without its run's
    # name says nothing.
    "name": st.column_config.TextColumn(pinned=True, help=f"The run's name. {MINE_SAID} Only its browser, or a "
                                                         "teacher, may stop or delete a run."),
    "recipe": st.column_config.TextColumn(help="The recipe the run started from; \"(changed)\": some of its settings "
                                               "were changed before Start (see them in its report). Another seed "
                                               "is no change of recipe."),
    "epochs": st.column_config.TextColumn(width=70, help="Epochs trained of those asked for, live: 2.4 is 40% "
                                                         "into the third."),
    "test accuracy": st.column_config.TextColumn(
        width=100, help=evaluation.ACCURACY_DEFINITION + " Measured on the final model, once the run has ended."),
    "time": st.column_config.TextColumn(width=95, help=runs.TIME_SAID),
    "of which testing": st.column_config.TextColumn(width=125, help=runs.TESTING_SAID),
    runs.START_PRESSED: st.column_config.TextColumn(
        help="When Start was pressed, in this browser's time zone. A run that waited in the queue began later."),
}


def board(owner: str, shown_above: str | None = None) -> None:
    """Every run in a table; pick rows to compare their curves, download, continue or delete them.
    While any run waits or trains, the table refreshes itself, so its progress, time and state are live.
    `shown_above`: the run the page shows live above the table (`live`), whose curves are not drawn twice."""
    if any(r.state in ("queued", "running") for r in runs_board.current().runs):
        _live_board(owner, shown_above)
    else:
        _still_board(owner, shown_above)


BOARD_IDS_KEY = "train_board_ids"   # session state: the run ids of the board's rows as last drawn
BOARD_EVERY_S = 10.0   # how often a live board's progress, times and states refresh: the watched run's
                       # own figures, above it, refresh every 2.5 s


@st.fragment(run_every=BOARD_EVERY_S)
def _live_board(owner: str, shown_above: str | None) -> None:
    if not any(r.state in ("queued", "running") for r in runs_board.current().runs):
        st.rerun(scope="app")     # everything has ended: the page (and the sidebar's model list) see it
    _board(owner, shown_above)


@st.fragment
def _still_board(owner: str, shown_above: str | None) -> None:
    _board(owner, shown_above)


def _board(owner: str, shown_above: str | None) -> None:
    snapshot = runs_board.current()
    everything = list(snapshot.runs)
    if not everything:
        st.caption("No runs yet. Start one above.")
        return
    table = _board_table(str(snapshot.runs_dir), snapshot.version, int(time.time() // BOARD_EVERY_S),
                         common.visitor_zone(), snapshot)
    mine = [r.status.get("owner") == owner for r in everything]
    _keep_selection_on_its_runs([r.id for r in everything])
    picked = st.dataframe(_marked_mine(table, mine), hide_index=True, on_select="rerun", selection_mode="multi-row",
                          key="train_board", column_config=BOARD_COLUMNS)
    rows = picked_rows(picked.selection.rows, len(everything))
    chosen = [everything[i] for i in rows[:MAX_PICKED]]
    if not chosen:
        st.caption("Select runs in the table to compare their curves, download them or continue them (from "
                   "the keyboard: Tab into the table, the arrow keys to a run, Shift and Space to select it)."
                   + (f" {MINE_SAID}" if any(mine) else ""))
        return
    if len(rows) > MAX_PICKED:
        st.caption(f"{len(rows)} runs picked: here are the first {MAX_PICKED}. More curves in one chart would "
                   "share colours, and no one could tell them apart.")
    names = learning_parts.distinct_names(chosen)
    if [r.id for r in chosen] == [shown_above] and chosen[0].state != "queued":
        # The run the page shows above, curves and replay and all: drawn again here, the whole of it stood
        # twice on the page, a screen apart. Its downloads, Continue and Delete are here alone. (One waiting
        # has no curves either place: the board says when they come.)
        st.caption("This run's curves and what it learned are shown above, under its name.")
        actions(chosen[0], owner, names[0])
        return
    # On one axis, a continued run's epochs count on from those of the run it continues: side by side, its
    # first epoch drawn at 1 sat on its parent's first, as if it had learnt in one epoch what took several.
    earlier = [learning_parts.earlier_epochs(r) for r in chosen]
    named_metrics = [(name, snapshot.metrics_of(r.id), before) for r, name, before in zip(chosen, names, earlier)]
    if any(charts.drawable(metrics) for _, metrics, _ in named_metrics):
        chart_cache.compared_curves(tuple((r.id, snapshot.stamps.get(r.id), name, before)
                                          for r, name, before in zip(chosen, names, earlier)),
                                    named_metrics, alt=curves_alt([(name, metrics) for name, metrics, _ in named_metrics]))
        st.caption("Each run has a colour of its own and a shape for its test dots: its dashed line is its running "
                   "training figures, its solid line its test figures. " + SAW_TOOTH + " The dots look at each test "
                   "picture once, without the mirror, so a run's last dot can differ a little from its test "
                   "accuracy in the table (more, for a run stopped partway through an epoch: its model is from "
                   "after its last dot, and one stopped in its first epoch has no dot)."
                   + (" A continued run's epochs count on from the run it continues." if any(earlier) else ""))
    elif any(metrics for _, metrics, _ in named_metrics):
        st.caption(("This run has" if len(chosen) == 1 else "These runs have")
                   + " one training measurement at most: a curve needs two.")
    elif any(r.state in rundir.ACTIVE for r in chosen):
        st.caption("This run has not trained a step yet: its curves appear here when it has." if len(chosen) == 1
                   else "None of these runs has trained a step yet: their curves appear here as they do.")
    else:     # ended before a step: a curve will never come
        st.caption("This run ended before it trained a step, so there are no curves to draw." if len(chosen) == 1
                   else "None of these runs trained a step before it ended, so there are no curves to draw.")
    for run, name in zip(chosen, names):
        actions(run, owner, name)
    if len(chosen) == 2:
        st.subheader("What they learned, side by side")
        learning_parts.compare(*chosen, key="train_compare", names=names)
    elif len(chosen) == 1:
        learning_parts.replay(chosen[0], key="train_board_replay")


MAX_PICKED = len(charts.RUN_COLOURS)    # runs compared at once: each has a colour and a shape of its own


def picked_rows(rows, count: int) -> list[int]:
    """The table's selected rows as the browser sent them, made sane: row numbers of the `count` rows,
    each once, in order. Streamlit passes on whatever list a browser (or a script) sends, and ten
    thousand copies of one row would be ten thousand curves drawn on every refresh."""
    if not isinstance(rows, (list, tuple)):      # a script's `"rows": 7`, or null: nothing picked
        return []
    return list(dict.fromkeys(i for i in rows if type(i) is int and 0 <= i < count))


def _keep_selection_on_its_runs(ids: list[str]) -> None:
    """The table keeps its selection by row number; newest first, every run someone starts moves the rows
    down one, and the selection (the curves compared at the projector, the Continue button) would slide
    onto other runs. When the rows have moved since they were drawn, the selection is moved with its runs."""
    drawn = st.session_state.get(BOARD_IDS_KEY)
    st.session_state[BOARD_IDS_KEY] = ids
    state = st.session_state.get("train_board")
    selection = state.get("selection") if isinstance(state, dict) else None
    rows = selection.get("rows") if isinstance(selection, dict) else []
    if state and not _as_a_person_selects(state, len(drawn or ids)):
        # A script's selection (a million rows, or anything else), kept in the session and copied on every
        # rerun while the board is drawn: replaced by the rows of it a person could have picked.
        rows = picked_rows(rows, len(drawn or ids))
        st.session_state["train_board"] = {"selection": {"rows": rows, "columns": []}}
    if not drawn or drawn == ids or not rows:
        return
    kept = [drawn[i] for i in picked_rows(rows, len(drawn))]
    st.session_state["train_board"] = {"selection": {"rows": [ids.index(i) for i in kept if i in ids], "columns": []}}


def _as_a_person_selects(state, count: int) -> bool:
    """Whether the board's selection `state` is one a person can make: rows of its `count`, each once."""
    selection = state.get("selection") if isinstance(state, dict) else None
    if not isinstance(selection, dict) or not set(state) <= {"selection"} \
            or not set(selection) <= {"rows", "columns", "cells"}:
        return False
    rows = selection.get("rows", [])
    return (isinstance(rows, list) and rows == picked_rows(rows, count)
            and all(selection.get(k) in (None, []) for k in ("columns", "cells")))


def _marked_mine(table: pa.Table, mine: list[bool]) -> pa.Table:
    """The board's table with the names of this visitor's own runs (`mine`, row by row) marked MINE: in a
    class's thirty runs, theirs. The table itself is made once for the class (`_board_table`); this copies
    its one column of names."""
    if not any(mine):
        return table
    names = [MINE + name if own else name for name, own in zip(table["name"].to_pylist(), mine)]
    return table.set_column(table.schema.get_field_index("name"), "name", pa.array(names, pa.string()))


@st.cache_resource(max_entries=2, show_spinner=False)
def _board_rows(folder: str, version: int, tick: int, _snapshot: runs_board.Snapshot) -> list[dict]:
    """The board's rows, made once per change of the runs (or tick of the clock, as times move on) for every
    session: a class of live boards made them each, every refresh."""
    return [r.summary(_snapshot.metrics_of(r.id)) for r in _snapshot.runs]


@st.cache_resource(max_entries=32, show_spinner=False)
def _board_table(folder: str, version: int, tick: int, zone: str | None, _snapshot: runs_board.Snapshot) -> pa.Table:
    """`_board_rows` with "Start pressed" in time zone `zone`, as an Arrow table, which Streamlit sends as it
    is, once per change for every session in that zone. The rows are shared by every zone: a script
    naming zone after zone makes only its own times again, not every run's row for the class."""
    rows = [{**row, runs.START_PRESSED: clock(run.status.get("created", 0), zone)}
            for row, run in zip(_board_rows(folder, version, tick, _snapshot), _snapshot.runs)]
    return pa.Table.from_pylist(rows).drop(["id"])


def _hold(on: bool) -> None:
    try:
        runs.hold_starts(on, admin=common.is_teacher())
    except runs.RunError as e:
        st.toast(str(e))


def actions(run: runs.Run, owner: str, name: str | None = None) -> None:
    """A run's buttons, under `name` (its name, or `learning_parts.distinct_names`' where two compared share it),
    in a box of their own: one under another, a run's More epochs stood under the Continue of the run above, as
    if it were that run's."""
    said_after_stop()
    with st.container(border=True):
        _actions(run, owner, name)


def _actions(run: runs.Run, owner: str, name: str | None) -> None:
    columns = st.columns([3, 2.4, 2.4, 2.6, 1.6], vertical_alignment="bottom")   # the buttons' words fit at 1280
    columns[0].markdown(f"**{common.plain(name or run.name)}** · {run.state}")
    usage = "The trained network as a Keras file, for `keras.models.load_model` or `python -m cifar_core predict " \
            "--model`."
    about = "One page with the run's settings, curves and results that opens without internet, and prints."
    if run_downloads.installed:   # sent by the app's server: the model from disk, a piece at a time
        if run.model_path:
            columns[1].link_button("Model (.keras)", run_downloads.address(run.id, "model.keras"),
                                   icon=":material/download:", help=usage)
        columns[2].link_button("Report (.html)", run_downloads.address(run.id, "report.html"),
                               icon=":material/description:", help=about)
    else:                         # studio.py served on its own: Streamlit's buttons, made when pressed
        name = run_downloads.file_name(run)
        if run.model_path:
            columns[1].download_button("Model (.keras)", run.model_path.read_bytes, f"{name}.keras",
                                       key=f"model_{run.id}", icon=":material/download:", help=usage)
        columns[2].download_button("Report (.html)", lambda: report.kept_html(run), f"{name}.html", mime="text/html",
                                   key=f"report_{run.id}", icon=":material/description:", help=about)
    if run.state in ("finished", "stopped", "failed") and run.model_path:
        last = " (for a failed run, the model of its last finished epoch)" if run.state == "failed" else ""
        most = settings.get().max_epochs
        more = columns[3].number_input("More epochs", 1, most, min(2, most), key=f"more_{run.id}",
                                       help=f"The run goes on from its model{last} with its learning rate peaking only "
                                            "at the rate its schedule ends at (a tenth of its peak where that falls to "
                                            "nothing), so more epochs refine it rather than shake it up again.")
        if columns[3].button("Continue", key=f"continue_{run.id}"):
            try:
                st.session_state["train_watch"] = runs.continue_run(run.id, int(more), owner,
                                                                    admin=common.is_teacher()).id
                st.rerun()
            except (runs.RunError, ConfigError) as e:
                st.error(str(e))
    # Any run its owner or a teacher may change can be stopped from its row, not only the one the live view
    # shows: a teacher's only other way to end a student's run was to clear every run, the class's models too.
    mine = run.status.get("owner") == owner or common.is_teacher()     # only they may stop or delete it
    if run.state in ("queued", "running") and mine:
        label, stopping = stop_button(run)
        kept = ("what it has learned kept" if rundir.keeps_a_model(runs_board.current().metrics_of(run.id))
                else "without a model, as it is still in its first minute of training")
        columns[4].button(label, key=f"board_stop_{run.id}", on_click=_stop, args=(run.id, owner), disabled=stopping,
                          help=f"It stops after its current batch, {kept}." if run.state == "running"
                          else "It leaves the queue.")
    if run.state not in ("queued", "running") and mine and columns[4].button("Delete", key=f"delete_{run.id}"):
        try:
            runs.delete(run.id, owner, admin=common.is_teacher())
            st.rerun()
        except runs.RunError as e:
            st.error(str(e))


def teacher_tools() -> None:
    """A teacher's pause on everyone else's new runs, and the reset between lessons: every run, whoever
    started it."""
    paused = runs.starts_on_hold()
    with st.expander("Teacher: pause new runs", expanded=paused):
        st.caption("While paused, only a teacher can start or continue a run; runs already waiting or training "
                   "go on. For a lesson that needs the trainer, or when someone keeps filling the queue: pause, "
                   "then stop their runs (pick them in the table below), or clear every run.")
        # The switch shows the server's state, which another teacher or tab may have changed meanwhile:
        # a widget keeps its own value while it stays on screen, whatever `value` says.
        st.session_state["train_hold"] = paused
        st.toggle("Only teachers may start runs", key="train_hold",
                  on_change=lambda: _hold(st.session_state["train_hold"]))
    with st.expander("Teacher: clear every run on this server"):
        st.caption("Cancels every waiting run, stops every running one and deletes every ended one, "
                   "whoever started it. Downloaded models and reports are not affected.")
        if st.button("Clear all runs", type="primary", key="train_clear_all"):
            try:
                cleared = runs.clear(admin=common.is_teacher())
            except runs.RunError as e:     # the runs folder busy for long, or the disk full: a sentence
                st.error(str(e))
            else:
                st.toast(f"Cleared {evaluation.counted(cleared, 'run')}.")
                st.rerun()
