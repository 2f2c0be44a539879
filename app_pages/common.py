"""What every page shares: the data set, the active model, and the sidebar.

The data set and models are cached with st.cache_resource: one read-only copy
per server process, shared by every browser session. The choice of model is
the one piece of per-session state, kept under a single key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app_pages import identity
from cifar_core import data, evaluation, inference, password, runs, settings

ACTIVE_MODEL_KEY = "active_model"
DEFAULT_LABEL = "Bundled model"


@st.cache_resource(show_spinner="Loading CIFAR-10…")
def _dataset(path: str | None) -> data.Cifar10:
    return data.read(path) if path else data.load_sample()


def loaded() -> tuple[data.Cifar10, str | None]:
    """The full data set where it is on this machine, else the bundled sample; and why not, if it failed."""
    path = data.locate()
    try:
        return _dataset(str(path) if path else None), None
    except data.DataError as e:
        return _dataset(None), f"{e} Using the bundled sample instead."


def dataset() -> data.Cifar10:
    """`loaded()` for a page: call once per page, it says in the sidebar when the data could not be read."""
    cifar, problem = loaded()
    if problem:
        st.sidebar.error(problem)
    return cifar


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _model(path: str, modified: float):
    return inference.load_model(path)


@dataclass(frozen=True)
class ModelChoice:
    label: str
    path: Path


def model_choices() -> list[ModelChoice]:
    """The bundled model, then every run that has a checkpoint and has finished or stopped."""
    card = inference.model_card()
    accuracy = f" ({card['test_accuracy']:.1%})" if "test_accuracy" in card else ""
    choices = [ModelChoice(DEFAULT_LABEL + accuracy, inference.DEFAULT_MODEL)]
    for run in runs.list_runs():
        if run.state in ("finished", "stopped") and run.model_path:
            # From status.json, not metrics.jsonl: this runs on every page, for every run.
            accuracy = run.status.get("test_accuracy")
            best = f" ({accuracy:.1%})" if accuracy is not None else ""
            choices.append(ModelChoice(f"Run {run.name}{best}", run.model_path))
    return choices


def active_choice() -> ModelChoice:
    choices = model_choices()
    chosen = st.session_state.get(ACTIVE_MODEL_KEY)
    return next((c for c in choices if c.label == chosen), choices[0])


def active_model():
    """The model the user chose in the sidebar, loaded once per process."""
    path = active_choice().path
    return _model(str(path), path.stat().st_mtime)


def _download_button() -> None:
    if not st.sidebar.button("Download CIFAR-10 (170 MB)", help="Saved in ~/.keras/datasets for next time"):
        return
    bar = st.sidebar.progress(0.0, text="Connecting…")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 0.0, text=f"{done / 1e6:.0f} of {total / 1e6:.0f} MB")
    try:
        data.download(progress=progress)
    except data.DataError as e:
        bar.empty()
        st.sidebar.error(str(e))
        return
    st.rerun()


def plain(text: str) -> str:
    """`text` for a Markdown element, shown as typed: a run name like "**x** :red[y]" stays literal."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in str(text))


MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$&=\"'")


def sidebar() -> None:
    """Where the data comes from, and which model every page uses."""
    runs.watch()     # queued runs start, and dead trainers are noticed, even with no Train page open
    with st.sidebar:
        path = data.locate()
        if path:
            st.caption(f"Data: full CIFAR-10 ({path.name})")
        else:
            st.info("Offline mode: showing the bundled sample of 1,000 test pictures (100 per class). "
                    "Download the full data set to see all 60,000 and to train.")
            _download_button()
        labels = [c.label for c in model_choices()]
        if st.session_state.get(ACTIVE_MODEL_KEY) not in labels:
            st.session_state[ACTIVE_MODEL_KEY] = labels[0]
        st.selectbox("Model used on every page", labels, key=ACTIVE_MODEL_KEY)
    teacher_login()


def owner() -> str:
    """Who this browser is, for run ownership: from the cookie the server sets (app_pages/identity.py).

    Never from the URL, so a shared or projected address hands over nothing. Without
    a valid cookie (AppTest, or studio.py served without app.py's server) a random
    token for this session only.
    """
    token = identity.token_from(st.context.cookies) or st.session_state.setdefault("owner", identity.new_token())
    return identity.owner_id(token)


def is_teacher() -> bool:
    """Teacher controls (stop or delete anyone's run) once CIFAR_ADMIN_PASSWORD has been entered."""
    return bool(st.session_state.get("teacher"))


@st.cache_resource
def _password_guard() -> password.Guard:
    return password.Guard()     # one per server: the delays hold across every visitor's session


def teacher_login() -> None:
    expected = settings.get().admin_password
    if not expected or is_teacher():
        return
    with st.sidebar.expander("Teacher controls"):
        with st.form("teacher_login", clear_on_submit=True, border=False):
            given = st.text_input("Password", type="password", key="teacher_password")
            submitted = st.form_submit_button("Unlock")
        if not submitted or not given:
            return
        verdict = _password_guard().check(owner(), given, expected)
        if verdict.ok:
            st.session_state["teacher"] = True
            st.rerun()
        elif not verdict.checked:
            st.error(f"Too many tries: please wait {verdict.wait_s:.0f} s before the next one.")
        else:
            st.error(f"That is not the teacher password. The next try is checked after {verdict.wait_s:.0f} s.")


@st.cache_resource(show_spinner="Testing the model on every test picture (once per model)…", max_entries=16)
def _test_probabilities(path: str, modified: float, origin: str, n: int):
    test = loaded()[0]
    key = f"{origin}:{n}:t{inference.temperature_for(path)}"   # calibrated answers: a new temperature, new cache
    return evaluation.cached_probabilities(path, test.x_test, key,
                                           lambda images: inference.predict(_model(path, modified), images))


def test_probabilities(choice: ModelChoice):
    """A model's probabilities for every test picture of the current data: computed once, kept on disk."""
    test = loaded()[0]
    return _test_probabilities(str(choice.path), choice.path.stat().st_mtime, test.origin, len(test.y_test))
