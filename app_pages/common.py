"""What every page shares: the data set, the active model, and the sidebar.

The data set and models are cached with st.cache_resource: one read-only copy
per server process, shared by every browser session. The choice of model is
the one piece of per-session state, kept by the model's key (`model_box`).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st

from app_pages import guide, identity, model_shelf, serving
from cifar_core import board, data, decoded, evaluation, inference, password, progress, remembered, runs, settings

ACTIVE_MODEL_KEY = "active_model"
DEFAULT_LABEL = "Bundled model"
BUNDLED = "bundled"     # the bundled model's key; a run's is its id


@st.cache_resource(show_spinner="Loading CIFAR-10…", max_entries=2)
def _dataset(path: str | None, stamp: tuple = ()) -> data.Cifar10:
    """The data set at `path` as it is now (`stamp`: a file replaced is read again), or the sample. Its
    `origin`, which the pages keep what they work out from it under (answers, maps, means), names its
    pictures too: a file replaced under the same name is never met with the old one's answers."""
    cifar = data.load(path) if path else data.load_sample()
    if path:
        cifar = replace(cifar, origin=f"{cifar.origin}#{evaluation.fingerprint(cifar.x_test, cifar.y_test)[:12]}")
    serving.freeze_loaded()     # long-lived: out of the garbage collector's full passes (app_pages/serving.py)
    return cifar


@st.cache_resource
def _unreadable() -> dict:
    """Data files found unreadable, by path, size and time: one that failed is not read again on every
    visitor's every rerun (seconds each for a damaged archive), only once it changes."""
    return {}


@st.cache_resource
def _sizes() -> dict:
    """How many training and test pictures each data file held when a page read it (by path, size and
    time), for the sidebar: a file of the official name may hold fewer than the whole data set."""
    return {}


def _note(table: dict, stamp: tuple, value):
    """`value` kept in `table` for the data file as it was when read (`_stamp`, taken before reading it: a
    copy that finished during a failed read is the next visitor's to read); the table stays small: a path
    is set once per server, and a file replaced now and then."""
    if len(table) > 16:
        table.clear()
    table[stamp] = value
    return value


def _stamp(path: Path) -> tuple:
    """What changes when the data at `path` does: the size and time of every file of it that is read, as
    its decoded copy goes by (a folder's own time stays as its files are copied in or replaced)."""
    try:
        return str(path), *(tuple(f) for f in decoded.source_identity(path)["files"])
    except OSError:
        return str(path), None, None


def without_folders(sentence: str, *paths: Path) -> str:
    """A sentence about the data set for every visitor, naming each of `paths` (and the folder downloads
    go to) by its last part alone: the server's folders are no visitor's business (its log has them)."""
    for path in sorted({*map(Path, paths), data.keras_cache_dir()}, key=lambda p: -len(str(p))):
        sentence = sentence.replace(str(path), path.name)
    return sentence


def data_problem(path: Path | None) -> str | None:
    """Why the data set at `path` could not be read, if a page has already tried; else None."""
    return _unreadable().get(_stamp(path)) if path else None


def loaded() -> tuple[data.Cifar10, str | None]:
    """The full data set where it is on this machine, else the bundled sample; and why not, if it failed."""
    path = data.locate()
    stamp = _stamp(path) if path else None
    problem = _unreadable().get(stamp) if path else None
    if path and not problem:
        try:
            cifar = _dataset(str(path), stamp)
            _note(_sizes(), stamp, (len(cifar.x_train), len(cifar.x_test)))
            return cifar, None
        except data.DataError as e:
            problem = _note(_unreadable(), stamp, f"{without_folders(str(e), path)} Using the bundled sample instead.")
    return _dataset(None), problem


def dataset() -> data.Cifar10:
    """`loaded()` for a page: call once per page, it says in the sidebar when the data could not be read."""
    known = data_problem(data.locate())
    cifar, problem = loaded()
    if problem and not known and not st.session_state.get("data_redrawn"):
        # Found unreadable just now, after the sidebar called it the full data set: draw again, once (a
        # file still being copied in is a new one on every look).
        st.session_state["data_redrawn"] = True
        st.rerun()
    if problem:
        st.sidebar.error(problem)
    return cifar


# A class of thirty, each with a run of their own chosen in the sidebar, and the bundled model: with fewer
# places every student's rerun loaded a model again (a third of a second of the server's CPU, and a full
# garbage collection). Measured per model kept: 2.7 MB for `airbench16` (the class and quick recipes),
# 15 MB for `airbench` (best), about 40 MB for the bundled pair. A visitor flicking through forty runs
# makes room from their own models, not the class's (app_pages/model_shelf.py).
MODEL_PLACES = 32
RECENTLY_S = 600.0      # a model asked for in the last ten minutes is in use
# One model loads at a time, whoever asked: a load takes 0.4-0.6 s of a core (0.16-0.18 s of it the full
# collection in `freeze_loaded`), and thirty students picking their new runs at once, or one visitor
# flicking through forty runs, would otherwise take both cores from everyone answering a photo or watching
# a run.
_loading = threading.Lock()


@st.cache_resource
def models_kept() -> model_shelf.Shelf:
    return model_shelf.Shelf(MODEL_PLACES, RECENTLY_S, _loading)     # one per server


def _model(path: str, modified: float, who: str | None = None):
    """The model at `path` as of `modified`, loaded once per server, asked for by visitor `who` (this
    browser's `owner()` unless given)."""
    return from_shelf(models_kept(), (path, modified), lambda: _load(path), "Loading the model…", who)


def from_shelf(shelf: model_shelf.Shelf, key, load, waiting: str, who: str | None = None):
    """`shelf`'s value for `key`, asked for by visitor `who` (this browser's `owner()` unless given);
    `load()` makes it, under a spinner saying `waiting`, where it is not kept."""
    who = who or owner()
    if key in shelf:
        return shelf.get(key, who, load)
    with st.spinner(waiting):
        return shelf.get(key, who, load)


def _load(path: str):
    model = inference.load_model(path)
    # Sure of nothing: every forward pass it answers with (a pair's networks alone too) traced now, then frozen.
    inference.predict(model, np.zeros((1, 32, 32, 3), np.uint8), sure_enough=float("inf"))
    serving.freeze_loaded()     # long-lived: out of the garbage collector's full passes (app_pages/serving.py)
    return model


@dataclass(frozen=True)
class ModelChoice:
    label: str
    path: Path
    key: str = ""       # what a visitor's choice is remembered by: BUNDLED or a run id, which outlive labels
    accuracy: float | None = None   # the accuracy in its label: measured when the model was saved
    bare: str = ""      # its label without the accuracy, where one is in it

    @property
    def name(self) -> str:
        """Its label without the accuracy, for beside a "% sure", where "(92.1%)" reads as one."""
        return self.bare or self.label


def _with_accuracy(name: str, accuracy: float | None) -> str:
    # The one accuracy each model has (evaluation.ACCURACY_DEFINITION), printed the one way every page prints it.
    return f"{name} ({evaluation.percent(accuracy)})" if accuracy is not None else name


def model_choices() -> list[ModelChoice]:
    """The bundled model, then every run that has a checkpoint and has finished or stopped."""
    card = inference.model_card()
    choices = [ModelChoice(_with_accuracy(DEFAULT_LABEL, card.get("test_accuracy")), inference.DEFAULT_MODEL, BUNDLED,
                           card.get("test_accuracy"), DEFAULT_LABEL)]
    # The server's snapshot of the runs, newest first: no file is read here.
    ready = [run for run in board.current().runs if run.state in ("finished", "stopped") and run.model_path]
    labels = {c.label for c in choices}
    for run in reversed(ready):     # oldest first, so a label once given stays with its run
        # From status.json, not metrics.jsonl: this runs on every page, for every run.
        name = f"Run {run.name}"
        label = _with_accuracy(name, run.status.get("test_accuracy"))
        if label in labels:     # two runs of the same name and accuracy stay two choices
            label, name = f"{label} [{run.id}]", f"{name} [{run.id}]"
        labels.add(label)
        choices.insert(1, ModelChoice(label, run.model_path, run.id, run.status.get("test_accuracy"), name))
    return choices


def _remembered(choices: list[ModelChoice]) -> ModelChoice:
    """This visitor's choice kept on the server (it survives a reload and a new tab); else the bundled
    model (the remembered run was deleted, or nothing was ever chosen)."""
    kept = remembered.recall(owner())
    return next((c for c in choices if c.key == kept), choices[0])


def active_choice() -> ModelChoice:
    """The model every page uses: this tab's pick in the sidebar while it is still there, else the
    remembered one."""
    choices = model_choices()
    return picked(ACTIVE_MODEL_KEY, choices, _remembered(choices))


def picked(box: str, choices: list[ModelChoice], default: ModelChoice) -> ModelChoice:
    """The model last picked in `model_box(box, ...)` while it is still one of `choices`, else `default`."""
    key = st.session_state.get(box + PICKED)
    return next((c for c in choices if c.key == key), default)


def pick(box: str, choice: ModelChoice) -> None:
    """Make `choice` the pick of `model_box(box, ...)`, as if the visitor had picked it there."""
    st.session_state[box + PICKED] = choice.key


def use_everywhere(key: str) -> ModelChoice | None:
    """Make the model of `key` (BUNDLED or a run id) the one every page uses, as a pick in the sidebar does
    (this tab's pick, and this browser's remembered one); None where it is no longer listed."""
    choice = next((c for c in model_choices() if c.key == key), None)
    if choice is not None:
        pick(ACTIVE_MODEL_KEY, choice)
        remembered.remember(owner(), key)
    return choice


def model_box(title: str, box: str, choices: list[ModelChoice], default: ModelChoice, *, where=st,
              help: str | None = None, then=None) -> ModelChoice:
    """A box listing `choices` that keeps the visitor's pick by the model's key, never by its label.

    A selectbox's value travels between browser and server as the text it shows, and a label can pass
    from one model to another (of two runs of one name and accuracy, the newer is told apart by its id;
    once the older is deleted, the newer takes the plain label). So the box is set to the kept pick's
    label on every run, and a new pick is read back in its callback against the labels the visitor saw.
    `then(key)` follows a visitor's own pick."""
    choice = picked(box, choices, default)
    keys = {c.label: c.key for c in choices}
    st.session_state[box] = choice.label
    where.selectbox(title, list(keys), key=box, help=help, on_change=_on_pick, args=(box, keys, then))
    return choice


PICKED = ":picked"      # session-state suffix: a box's pick, by model key


def _on_pick(box: str, keys: dict[str, str], then) -> None:
    key = keys.get(st.session_state.get(box))
    if key:
        st.session_state[box + PICKED] = key
        if then:
            then(key)


# A run still training saves a checkpoint every epoch, and Look inside may show the latest: each one a new
# model, loaded for a glance. Kept apart, in two places, so that a page left open on a training run does
# not push the class's finished models out of `_model`, nor out of the garbage collector's reach for good.
@st.cache_resource(show_spinner="Loading the latest checkpoint…", max_entries=2)
def _checkpoint(path: str, modified: float):
    with _loading:
        return inference.load_model(path)


def cannot_open(choice: ModelChoice, problem: Exception):
    """End the page with one sentence: a damaged checkpoint, or a run deleted since the page listed it."""
    if isinstance(problem, FileNotFoundError):
        problem = "its run was deleted meanwhile"
    elif isinstance(problem, OSError):      # the server's own paths are nobody's business
        problem = problem.strerror or type(problem).__name__
    st.error(f"{plain(choice.label)} cannot be opened just now ({problem}); choose another model, or try again "
             "in a moment.")
    st.stop()


def version(choice: ModelChoice) -> float:
    """`inference.model_version` of a listed model; a model file gone since it was listed ends the page."""
    try:
        return inference.model_version(choice.path)
    except OSError as e:
        cannot_open(choice, e)


def model_id(choice: ModelChoice) -> tuple[str, float]:
    """A listed model's file and its version (`inference.model_version`): what answers from it can be kept
    under."""
    return str(choice.path), version(choice)


def active_model_id() -> tuple[str, float]:
    """`model_id` of the model the user chose in the sidebar."""
    return model_id(active_choice())


def active_model():
    """The model the user chose in the sidebar, loaded once per process. A file that cannot be read ends
    the page with one sentence."""
    return active_model_and_id()[1]


def active_model_and_id():
    """(`active_model_id()`, `active_model()`) from one reading of the choice: read twice, a choice changed
    in between (another tab of the same browser) paired one model's answers with the other's name."""
    return active_model_choice_and_id()[1:]


def active_model_choice_and_id():
    """(`active_choice()`, `active_model_id()`, `active_model()`), all from one reading of the choice."""
    choice = active_choice()
    chosen = model_id(choice)
    try:
        return choice, chosen, _model(*chosen)
    except (OSError, inference.ModelError) as e:
        cannot_open(choice, e)


def on_the_sample() -> bool:
    """Whether the pages show the bundled sample: no data set here, or one that could not be read."""
    path = data.locate()
    return path is None or data_problem(path) is not None


def _whole_data_set() -> str:
    """How the whole data set can come, for this visitor: "press" (the sidebar's download button), "teacher"
    (the button is a teacher's, on a server a class shares) or "replace" (the server's own data file cannot
    be read, and no download takes its place)."""
    path = data.locate()
    if path is not None and path == settings.get().data:
        return "replace"
    return "teacher" if class_shared() and not is_teacher() else "press"


def header(page: str, paused: bool = False) -> None:
    """A page's title and its two plain sentences: what the page is for, and what to try first (where a
    teacher has `paused` new runs, what can be done meanwhile).

    A caption, not Markdown, so the page's own first paragraph stays its first Markdown element.
    """
    text = guide.PAGES[page]
    # On the bundled sample: no data set here, or one that could not be read (`dataset` draws the page
    # again once it finds that, so this heading follows).
    offline = on_the_sample()
    purpose = text.offline if offline and text.offline else text.purpose
    try_first = (text.offline_try if offline and text.offline_try
                 else text.paused_try if paused and text.paused_try
                 else text.class_try if class_shared() and text.class_try else text.try_first)
    # How the whole data set comes for this visitor: their own press, their teacher's, or a file replaced.
    way = _whole_data_set()
    words = {"download_it": {"press": "Download the full data set in the sidebar",
                             "teacher": "Ask your teacher to download the full data set in the sidebar",
                             "replace": "Ask whoever runs this server to replace its data file, which cannot be read"}[way],
             "with_the_download": {"press": "with the download in the sidebar",
                                   "teacher": "once your teacher downloads it in the sidebar",
                                   "replace": "once the server's data file, which cannot be read, is replaced"}[way],
             "recipe": "For a whole class" if class_shared() else "Quick"}
    st.title(text.title)
    st.caption(f"{plain(purpose.format(**words))}  \n**Try first:** {plain(try_first.format(**words))}")
    st.html(CONTAINED_CHARTS)


# A chart of fixed size wider than its column (the picture grid, the confusion matrix on a phone) scrolls
# within itself: the whole page scrolled sideways with it, every other part of it cut at the left. Held to
# its column's width, or it is as wide as the chart and the page scrolls instead (a tap on the grid did).
CONTAINED_CHARTS = "<style>[data-testid=stVegaLiteChart] { overflow-x: auto; max-width: 100%; }</style>"


def _download_button() -> None:
    """The data set downloaded once for the whole server, by whoever presses (the teacher, on a server with
    a teacher password), in the server's own thread: every visitor sees how far it has got, and the pages
    use it once it is there."""
    state = data.downloading()
    if state.running:
        _download_progress()
        return
    if state.error:
        st.sidebar.error(without_folders(state.error))
    # Once there, every page of every visitor moves to the whole data set (every Quiz game starts again):
    # on a server with a teacher password, the teacher's call.
    locked = class_shared() and not is_teacher()
    saved = "Saved on the server, in Keras' folder of data sets (KERAS_HOME, ~/.keras by default), for next time."
    pressed = st.sidebar.button("Download CIFAR-10 (170 MB)", disabled=locked,
                                help=("Only a teacher can download it on this server (Teacher controls, below): "
                                      "every page changes to it for everyone, and every Quiz game starts again. "
                                      + saved) if locked else saved)
    if pressed and not locked:      # Streamlit discards a greyed-out button's press a script sends; and here
        data.download_in_background()
        st.rerun()


@st.fragment(run_every=1.0)
def _download_progress() -> None:
    state = data.downloading()
    if not state.running:       # done, or failed: the whole page again, with the data or the reason
        st.rerun()
    text = (f"Downloading for everyone on this server: {state.done / 1e6:.0f} of {state.total / 1e6:.0f} MB"
            if state.total else "Downloading for everyone on this server: connecting…")
    st.progress(min(1.0, state.done / state.total) if state.total else 0.0, text=text)


def visitor_zone() -> str | None:
    """The visitor's time zone as their browser reports it, if this machine knows it: a server in a
    container keeps UTC, hours off a class's clock."""
    return progress.known_zone(st.context.timezone)      # None without a browser (AppTest, a script)


def plain(text: str) -> str:
    """`text` for a Markdown element, shown as typed: a run name like "**x** :red[y]" stays literal."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in str(text))


MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&=\"'")


GONE_TOLD = "model_gone_told"     # session state: the chosen run this tab was told is no longer listed


def _say_if_the_chosen_run_went(choices: list[ModelChoice], who: str) -> None:
    """The run this tab used (its own pick, else the browser's remembered one) is no longer listed (deleted
    by its owner or a teacher, or the server keeping its newest runs): said once, with the model every page
    uses instead, where a Quiz score of 1 / 1 against the run became 0 / 0 against another without a word.
    Nothing kept is changed: a list read while the runs folder was busy gives the choice back next time."""
    used = st.session_state.get(ACTIVE_MODEL_KEY + PICKED) or remembered.recall(who)
    if used is None or any(c.key == used for c in choices) or st.session_state.get(GONE_TOLD) == used:
        return
    st.session_state[GONE_TOLD] = used
    now = picked(ACTIVE_MODEL_KEY, choices, _remembered(choices))
    # A toast, not a line in the sidebar: on a phone the sidebar is out of sight.
    st.toast(f"The run you had chosen is no longer on this server (deleted): every page now uses "
             f"{plain(now.label)}.", icon=":material/info:")


def sidebar() -> None:
    """Where the data comes from, and which model every page uses."""
    runs.watch()     # queued runs start, and dead trainers are noticed, even with no Train page open
    with st.sidebar:
        path = data.locate()
        if path:
            if not data_problem(path):     # once it could not be read, each page that needs it says why
                st.caption(data_caption(path))
            elif path != settings.get().data:
                _download_button()      # a damaged copy in Keras' folder: a download takes its place
        else:
            st.info("Offline mode: showing the bundled sample of 1,000 test pictures (100 per class). "
                    + ("Your teacher can download the full data set here, to see all 60,000 and to train."
                       if _whole_data_set() == "teacher" else "Download the full data set to see all 60,000 and to train."))
            _download_button()
        choices, who = model_choices(), owner()
        _say_if_the_chosen_run_went(choices, who)
        model_box("Model used on every page", ACTIVE_MODEL_KEY, choices, _remembered(choices), where=st.sidebar,
                  help=f"The figure after each model is its accuracy. {evaluation.ACCURACY_DEFINITION}",
                  then=lambda key: remembered.remember(who, key))   # kept on the server for the next visit
        st.page_link("app_pages/glossary.py", label="Glossary: the words explained", icon=":material/menu_book:")
    teacher_login()


def data_caption(path: Path) -> str:
    """Which data set the pages use; with its pictures counted once a page has read it on this server."""
    sizes = _sizes().get(_stamp(path))
    if sizes is None:
        return f"Data: CIFAR-10 ({path.name})"
    train, test = sizes
    return f"Data: CIFAR-10 ({path.name}), {train:,} training and {test:,} test pictures"


def owner() -> str:
    """Who this browser is, for run ownership: from the cookie the server sets (app_pages/identity.py).

    Never from the URL, so a shared or projected address hands over nothing. Without
    a valid cookie (AppTest, or studio.py served without app.py's server) a random
    token for this session only.
    """
    # From the Cookie header itself, not st.context.cookies, where a second value of one name (planted)
    # hides the first.
    cookies = "; ".join(st.context.headers.get_all("cookie"))
    # Either name, the HTTPS one first: whether the server itself was reached over HTTPS is the identity
    # middleware's to judge (a page sees the browser's address, which says https behind a proxy that ends
    # HTTPS without telling the server, where the middleware gave the plain cookie only).
    token = identity.token_in_cookies(cookies) or st.session_state.setdefault("owner", identity.new_token())
    return identity.owner_id(token)


def class_shared() -> bool:
    """Whether a class shares this server (it has a teacher password): its runs take turns on one trainer, so
    Train opens on the recipe made for that (about 20 s a run; thirty Quick runs queue for 24 minutes)."""
    return bool(settings.get().admin_password)


def is_teacher() -> bool:
    """Teacher controls (stop or delete anyone's run, pause new ones) in a browser where
    CIFAR_ADMIN_PASSWORD was entered, every tab of it, until it is locked again or the day is over."""
    return bool(settings.get().admin_password) and unlocked_browsers().holds(owner())


@st.cache_resource
def _password_guard() -> password.Guard:
    return password.Guard()     # one per server: the delays hold across every visitor's session


@st.cache_resource
def unlocked_browsers() -> password.Unlocked:
    return password.Unlocked()     # one per server, in memory: a restart locks every browser again


KNOWN_BROWSERS = ".teacher-browsers.json"     # in the runs folder: a dot-file, which run listings skip


def known_browsers() -> password.KnownBrowsers:
    return _known_browsers(str(settings.get().runs_dir / KNOWN_BROWSERS))


@st.cache_resource
def _known_browsers(path: str) -> password.KnownBrowsers:
    return password.KnownBrowsers(Path(path))     # one per server: its lock, and what a full disk kept from its file


def teacher_login() -> None:
    expected = settings.get().admin_password
    if not expected:
        return
    if is_teacher():
        unlocked = unlocked_browsers()
        # The time left, not the 12 hours: an unlock runs from when the password was typed, in any tab.
        if st.sidebar.button("Lock teacher controls", icon=":material/lock:",
                             help=f"Teacher controls stay unlocked in this browser, every tab of it, for another "
                                  f"{progress.duration(unlocked.left_s(owner()))} ({unlocked.hold_s / 3600:.0f} "
                                  f"hours from when the password was typed). Lock them before leaving a shared "
                                  f"computer."):
            unlocked.remove(owner())
            st.rerun()
        return
    with st.sidebar.expander("Teacher controls"):
        with st.form("teacher_login", clear_on_submit=True, border=False):
            given = st.text_input("Password", type="password", key="teacher_password")
            submitted = st.form_submit_button("Unlock")
        if not submitted or not given:
            return
        known = known_browsers()
        verdict = _password_guard().check(owner(), given, expected, known=owner() in known)
        if verdict.ok:
            unlocked_browsers().add(owner())
            known.add(owner())
            st.rerun()
        wait = f"{math.ceil(verdict.wait_s):.0f} s"     # never "0 s" for a wait still to come
        if verdict.busy:
            st.error(f"Someone else tried a password just now, and this server checks one at a time: please try "
                     f"again in {wait}. A browser where the teacher password was entered before is checked at "
                     "once, whoever else is trying.")
        elif not verdict.checked:
            st.error(f"Too many tries: please wait {wait} before the next one.")
        else:
            st.error(f"That is not the teacher password. The next try is checked after {wait}.")


@st.cache_resource(show_spinner=False, max_entries=64)     # 400 KB of answers each, for as many models
def _test_probabilities(path: str, modified: float, origin: str, n: int) -> dict:
    """Where one model's answers on one data set are kept, once per server, and the lock that lets one
    visitor measure them while another waits for that same measurement instead of repeating it."""
    return {"lock": threading.Lock()}


def _measure(path: Path, modified: float, test: data.Cifar10, label: str) -> np.ndarray:
    """Shipped with the model, or kept on disk from an earlier visit; else measured here, with a
    progress bar that counts the pictures (a run's model takes about a minute on two cores)."""
    shipped = evaluation.shipped_probabilities(path, test.x_test, test.y_test)
    if shipped is not None:
        return evaluation.with_temperature(shipped, inference.temperature_for(path))
    total = len(test.y_test)
    bar = st.progress(0.0, text=f"Testing {plain(label)} on the {total:,} test pictures (once; kept for next time)…")

    def predict(images: np.ndarray) -> np.ndarray:
        model, answers = _model(str(path), modified), []
        for start in range(0, total, TEST_STEP):
            answers.append(inference.predict(model, images[start:start + TEST_STEP]))
            done = min(total, start + TEST_STEP)
            bar.progress(done / total, text=f"Testing {plain(label)}: {done:,} of {total:,} test pictures")
        return np.concatenate(answers) if answers else np.zeros((0, len(data.CLASS_NAMES)), np.float32)
    # Calibrated answers, and the temperatures decide which pictures are mirrored (and, for a pair, which
    # its first network answers alone): a new one, a new cache.
    first = inference.temperature_for(path, inference.FIRST_NETWORK_TEMPERATURE, None)
    key = f"{test.origin}:{total}:t{inference.temperature_for(path)}" + (f":first{first}" if first else "")
    probabilities = evaluation.cached_probabilities(path, test.x_test, key, predict)
    bar.empty()
    return probabilities


TEST_STEP = 512     # pictures per progress step: about a second each on two cores


def test_probabilities(choice: ModelChoice, test: data.Cifar10) -> np.ndarray:
    """A model's probabilities for every test picture of `test` (the page's `dataset()`, read once, so that
    its answers and its labels are of one data set, even as a download finishes): shipped with the bundled
    model, otherwise measured once (with a progress bar) and kept in memory and on disk."""
    modified = version(choice)
    kept = _test_probabilities(str(choice.path), modified, test.origin, len(test.y_test))
    if "probabilities" in kept:
        return kept["probabilities"]
    # Once the lock is taken, nothing may leave here without giving it back: not answers that someone
    # left just before it was taken, nor the stop or rerun that Streamlit raises as the spinner closes
    # when this visitor has left or clicked while waiting. Else every later visitor waits for good.
    held = kept["lock"].acquire(blocking=False)
    try:
        if not held:
            with st.spinner(f"Someone else is testing {plain(choice.label)} on the test pictures; waiting for them…"):
                held = kept["lock"].acquire()
        if "probabilities" not in kept:
            kept["probabilities"] = _measure(choice.path, modified, test, choice.label)
    except inference.ModelError as e:     # a damaged checkpoint: say so, in one sentence
        st.error(str(e))
        st.stop()
    except OSError as e:                  # its run deleted while this visitor waited
        cannot_open(choice, e)
    finally:
        if held:
            kept["lock"].release()
    return kept["probabilities"]
