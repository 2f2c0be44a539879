"""Quiz: you against the model, on the same test pictures. Big type and buttons, for a projector."""
import numpy as np
import streamlit as st

from app_pages import common
from app_pages.quiz_parts import KEYS_KEPT, KEYS_SWITCH, LESSON_S, game, keep, keep_keys, latest
from cifar_core import charts, evaluation
from cifar_core.data import CLASS_NAMES, with_article

HUMAN_ACCURACY = 0.94   # one person sorting about 400 CIFAR-10 test pictures by hand (Karpathy, 2011)


# On a screen touched, with nothing that can point (a phone, a tablet alone), the buttons' key hints and
# the switch for keys speak of a keyboard it does not have. A tablet with a trackpad or mouse keeps them.
st.html(f"""<style>
  .stMainBlockContainer button p {{ font-size: 1.4rem; }}
  .stMainBlockContainer [data-testid=stMetricValue] {{ font-size: 3rem; }}
  @media (any-hover: none) {{
    .stMainBlockContainer button kbd, .st-key-{KEYS_SWITCH} {{ display: none; }}
  }}
</style>""")
common.header("quiz")
test = common.dataset()
choice = common.active_choice()
probabilities = common.test_probabilities(choice, test)
guesses = probabilities.argmax(axis=1)
me = common.owner()
if "quiz" not in st.session_state:      # a new tab or a reload: this browser's latest game, if the server kept one
    kept = latest(me)
    if kept is not None:
        st.session_state["quiz"] = kept
if "quiz" in st.session_state:     # the switch shows the game's mode, not a new game in the other: Streamlit
    st.session_state.setdefault("quiz_hard", st.session_state["quiz"].against[2])   # forgets it on other pages
# Scores and the hard-mode switch share one row, so the picture and all ten answers fit a projector's 720 pixels;
# a row that wraps rather than stacks, so a phone keeps the scores side by side (columns put each on a line
# of its own there, and the picture a screen down).
scores = st.container(horizontal=True, wrap=True, vertical_alignment="center", gap="medium")
score_you, score_model, score_people = (scores.empty() for _ in range(3))    # filled once the game is known
mode = scores
hard = mode.toggle("Hard mode", key="quiz_hard",
                   help="A new game on pictures this model gets wrong, so it scores nothing on them: can you?")
# A picture is an index into the test pictures: a new data set (the sample's 1,000 replaced by a download)
# is a new game, as is a new model, and hard mode (its scores are not comparable with the others').
# The model the answers above came from, read once: a choice changed meanwhile in another tab of the browser
# (measuring can take a minute) must not label this game for one model and play it with the other's answers.
model_id, pictures = common.model_id(choice), (test.origin, len(test.y_test))
playing = (model_id, pictures, hard)
before = st.session_state.get("quiz")
# Each model, set of pictures and mode is a game of its own (your score starts from nothing, as the model's
# does), and the browser's games are kept: a stray flick of hard mode or of the model, and back, loses none.
quiz, new = game(me, playing, len(test.y_test))
st.session_state["quiz"] = quiz
if before is not None and before.against != playing:
    if before.against[0] != model_id:
        why = f"against {common.plain(choice.label)}"
    elif before.against[1] != pictures:
        why = "on new test pictures"
    else:
        why = "in hard mode" if hard else "on every test picture"
    st.toast(f"A new game {why}." if new else f"Back to your game {why}: you {quiz.people} / {quiz.rounds}.",
             icon=":material/restart_alt:")
elif before is not None and before.game != quiz.game:
    # This tab's own game gave way: to a new one, as it was the last lesson's (`Quiz.stale`), or to the one
    # another tab of the browser played or started again (its click, if any, was for a picture no longer on
    # screen, and the picture changes under it).
    if new:
        said = f"A new game: the last one here was played more than {LESSON_S // 3600} hours ago."
    elif quiz.rounds == 0 and before.rounds:     # "went on ... you 0 / 0" read as a score lost
        said = "Your game was started again in another tab of this browser: both scores are back to 0."
    else:
        said = f"Your game went on in another tab of this browser: here it is, you {quiz.people} / {quiz.rounds}."
    st.toast(said, icon=":material/restart_alt:" if new or quiz.rounds == 0 else ":material/tab:")
if note := st.session_state.pop("quiz_note", None):     # from the click before this rerun
    st.toast(note, icon=":material/replay:")

pool = np.flatnonzero(guesses != test.y_test) if hard else np.arange(len(test.y_test))
mistakes_only = hard and len(pool) > 0      # hard mode's pictures: the model's mistakes, where it has any
if not len(pool):
    st.info("The model gets every one of these pictures right, so there is no hard mode: here are all of them.")
    pool = np.arange(len(test.y_test))



# Hard mode is a new game (above), never a swap of the picture on screen: that would show whether the
# model gets it right.
if quiz.index < 0:
    quiz.move_on(pool)
keep(me, quiz)
# Read once: another tab of this browser may answer or move on while this page is drawn.
with quiz.lock:
    shown, answer, turn = quiz.index, quiz.answer, quiz.turn

score_you.metric("You", f"{quiz.people} / {quiz.rounds}", width="content")
score_model.metric("The model", f"{quiz.model} / {quiz.rounds}", width="content",
                   help=f"{common.plain(choice.label)}: the model chosen in the sidebar."
                        + (" In hard mode every picture is one it gets wrong." if mistakes_only else ""))
# A line beside the scores, not a score of its own: as a third big figure it read as a third player, and on
# a phone it pushed the picture a screen down.
score_people.caption(f"For comparison, one careful person: about {HUMAN_ACCURACY:.0%} right"
                     + (" on pictures of every kind, not only these" if mistakes_only else ""), width="content",
                     help="Andrej Karpathy sorted about 400 CIFAR-10 test pictures himself in 2011 and got about 94% "
                          "of them right: one careful person, not people in general, on pictures of every kind."
                          + (" Hard mode's pictures are the model's mistakes, often hard for people too."
                             if mistakes_only else ""))

picture, buttons = st.columns([1, 1])
image = test.x_test[shown]
# As PNG, so the picture is the very pixels the model is shown (Streamlit sends arrays as JPEG).
# Its alt text asks, as the caption does, and never names the class: that would give the answer away.
picture.image(charts.png(charts.upscale(image, 10)), caption="What is it?", output_format="PNG",
              alt="the quiz picture, drawn 10 times larger: which of the ten classes is it?")
# The real-size picture and its words side by side: as the picture's caption they would wrap to its 32 pixels.
real_size = picture.container(horizontal=True, vertical_alignment="center")
real_size.image(charts.png(image), width=32, output_format="PNG", alt="")   # the same picture again: decorative
real_size.caption("The real size: 32 x 32 pixels")
if mistakes_only and len(pool) < 10:
    # Its classes not named: of a handful, they would all but give the answer away.
    picture.caption("Hard mode: the one picture this model gets wrong." if len(pool) == 1 else
                    f"Hard mode: the {len(pool)} pictures this model gets wrong.")
elif mistakes_only:
    # The model's mistakes lean to a few classes (cats and dogs, mostly): a class guessing those should know.
    classes, counts = np.unique(test.y_test[pool], return_counts=True)
    most = [f"{CLASS_NAMES[c]} ({n:,})" for c, n in sorted(zip(classes, counts), key=lambda cn: -cn[1])[:3]]
    picture.caption(f"Hard mode: the {len(pool):,} pictures this model gets wrong. The classes most among them: "
                    f"{', '.join(most)}.")

# Keys answer unless switched off (below): a key pressed by chance, or speech input, must be able not to.
keys = st.session_state.get(KEYS_KEPT, True)
if answer is None:
    buttons.markdown("**Pick one**")
    # Two columns of five, in order down each (Airplane to Deer, Dog to Truck): the keyboard goes down a
    # column before the next, and across the rows it went Airplane, Bird, Deer. Side by side on a phone too.
    # Each has a key, shown on it (1 to 9, then 0): an answer from the keyboard leaves no button focused,
    # so Tab would start again from the top of the page. Streamlit leaves a key pressed while a box or a
    # switch has the focus to it (after the hard-mode switch, the page is clicked or Tab pressed first).
    grid = buttons.columns(2, wrap=False)
    for i, name in enumerate(CLASS_NAMES):
        if grid[i // 5].button(name.capitalize(), key=f"quiz_{quiz.game}_{turn}_{name}", width="stretch",
                               shortcut=str((i + 1) % 10) if keys else None):
            quiz.take(shown, i, int(test.y_test[shown]), int(guesses[shown]))
            st.rerun()
else:
    truth, guess = int(test.y_test[shown]), int(guesses[shown])
    you = "right" if answer == truth else f"wrong (you said {CLASS_NAMES[answer]})"
    it = "right" if guess == truth else f"wrong: it said {CLASS_NAMES[guess]}"
    article, name = with_article(CLASS_NAMES[truth]).split(" ", 1)
    # Headings without their link icon: the pointer rests on them after an answer, and it showed on the projector.
    buttons.header(f"It is {article} **{name}**", anchor=False)
    buttons.subheader(f"You were {you}.", anchor=False)
    buttons.subheader(f"The model was {it} ({evaluation.sure(probabilities[shown, guess])} sure).", anchor=False)
    # N, not Enter: Enter on a focused button (Start again) also ran Next, and the popover stayed shut.
    if buttons.button("Next picture", type="primary", icon=":material/arrow_forward:", width="stretch",
                      shortcut="N" if keys else None):
        if quiz.move_on(pool, after=shown):
            st.session_state["quiz_note"] = ("That was the only one of these pictures: it comes round again."
                                             if len(pool) == 1 else
                                             f"That was every one of these {len(pool):,} pictures: they come round again.")
        st.rerun()
settings_row = st.container(horizontal=True, vertical_alignment="center", gap="medium")
# Asked twice: one stray click at the projector would wipe a whole class's score.
with settings_row.popover("Start again", icon=":material/restart_alt:"):
    if st.button("Yes: both scores back to 0", key="quiz_restart"):
        fresh = quiz.started_again()
        st.session_state["quiz"] = fresh
        keep(me, fresh, started_again=True)     # in the played one's place: every tab of this browser starts again
        st.rerun()
st.session_state[KEYS_SWITCH] = keys      # a switch's own state is forgotten on other pages; this is kept
settings_row.toggle("Answer with keys", key=KEYS_SWITCH, on_change=keep_keys,
                    help="1 to 9 and 0 answer, and N shows the next picture (each key is on its button). Switch it "
                         "off where a key pressed by chance, or speech input, should not answer.")
