"""Train: start a run, watch it learn live, stop it, compare runs."""
import time

import streamlit as st

from app_pages import common, train_parts
from cifar_core import data, runs, settings
from cifar_core.config import PRESETS, ConfigError, TrainConfig

train_parts.follow_try()
paused = runs.starts_on_hold() and not common.is_teacher()
common.header("train", paused=paused)
owner = common.owner()
limits = settings.get()
can_train = data.locate() is not None
if not can_train:
    st.warning("Training needs the full CIFAR-10 data set: download it in the sidebar first.")

first = "class" if common.class_shared() else "quick"
preset = st.segmented_control("Recipe", list(PRESETS), default=first, required=True, key="train_preset",
                              format_func=train_parts.recipe_label) or first
st.caption(train_parts.recipe_said(preset))
defaults = TrainConfig.from_preset(preset)
if paused:
    st.info("The teacher has paused new runs for now: you can watch and compare the runs below, and start "
            "one when they allow it again.", icon=":material/pause_circle:")
with st.form("new_run", enter_to_submit=False):
    fields = train_parts.ConfigFields(defaults, preset, limits.max_epochs)
    started = st.form_submit_button("Start training", type="primary", disabled=not can_train)
DOUBLE_PRESS_S = 5     # the same settings started again this soon is a double click, not a second run
if started:
    try:
        pressed, last = fields.values(), st.session_state.get("train_last_start")
        # Compared before a seed is drawn: a double click draws two seeds for one press.
        config = TrainConfig.from_preset(preset, **train_parts.with_seed(pressed)).validate()
        if last and last[0] == pressed and time.monotonic() - last[1] < DOUBLE_PRESS_S:
            # Two runs of one double click took both of a student's places and queued a duplicate for the class.
            st.toast("Already started: a second press within a moment is not a second run.")
        else:
            run = runs.start(config, owner, admin=common.is_teacher())
            st.session_state["train_watch"] = run.id
            st.session_state["train_last_start"] = (pressed, time.monotonic())
            # Said where it is seen: at a projector's 720 pixels the run's progress and its Stop button are
            # below the form, and the screen looked the same for the whole run (pressed again, a second run).
            # Short, what matters first: a toast shows three lines of about 30 letters before "view more".
            # A run that failed at once says so below, where it would be watched.
            if run.state in ("queued", "running"):
                st.toast(("Started" if run.state == "running" else "Waiting its turn")
                         + ": its progress and Stop button are below the form.",
                         icon=":material/play_circle:", duration="long")
    except (ConfigError, runs.RunError) as e:
        fields.show_error(e)        # under the setting to blame, where one is

watched = train_parts.watched_run(owner)
if watched:
    train_parts.live(watched.id, owner)

st.header("All runs on this server")
train_parts.board(owner, shown_above=watched.id if watched else None)
if common.is_teacher():
    train_parts.teacher_tools()
