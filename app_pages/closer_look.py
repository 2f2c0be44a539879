"""A closer look, in a dialog, at what a visitor picks in a chart: a picture of Explore's grid, a square
of Evaluate's confusion matrix.

Below the chart, the closer look was out of sight on a laptop or a projector (720 pixels high): a click
seemed to do nothing. A dialog opens where the visitor is looking, wherever the page is scrolled to.

It opens when something is picked, by a click in the chart or a choice in the box beside it, and stays
open until it is closed; what was picked stays framed in the chart, so a visitor sees what they looked
at. Leaving the page closes it (studio.py): a visitor back from Look inside does not meet it again.

Everything here is a module's function, given only small values: a dialog stays in the visitor's session
while it is open, and a widget's callback once the widget is drawn; one of a page's script would hold that
run's every variable with it (chart_specs.in_split)."""
import functools

import numpy as np
import streamlit as st

from cifar_core import charts, inference
from cifar_core.data import CLASS_NAMES, with_article
from app_pages import chart_specs, common, even_rows, inside_parts

EXPLORE = "explore_pick"        # session state: (place, index) of the picture picked in Explore's grid
EVALUATE = "evaluate_pick"      # session state: (true class, class said) of Evaluate's square picked
PAGES = {"explore": EXPLORE, "evaluate": EVALUATE}


def take_click(chart: str, selection: str, pick: str, as_pick) -> str:
    """The key to draw clickable chart `chart` under. Its last click, if `as_pick` takes its first point
    (ValueError if not: the browser sends the point, and a script could send anything in its place),
    becomes `pick` and opens its dialog; the chart is then drawn afresh without the click, which is so taken
    once: closing the dialog closes it, and the same thing clicked again is a new click."""
    key, points = chart_specs.clicked(chart, selection)
    try:
        chosen = as_pick(points[0]) if points else None
    except ValueError:
        chosen = None
    if chosen is None:
        return key
    st.session_state[pick] = chosen
    st.session_state[_open(pick)] = True
    return chart_specs.afresh(chart)


def box_chosen(box: str, chart: str, pick: str, as_pick) -> None:
    """A box's `on_change`: its choice, `as_pick(value)`, becomes the pick and opens its dialog, as a click
    does (chart_specs.chosen_in_box)."""
    if chart_specs.chosen_in_box(box, chart, pick, as_pick):
        st.session_state[_open(pick)] = True


def is_open(pick: str) -> bool:
    return bool(st.session_state.get(_open(pick)))


def close(pick: str) -> None:
    """The dialog closed; what was picked stays picked, framed in its chart."""
    st.session_state.pop(_open(pick), None)


def close_all_but(page: str) -> None:
    """Every page's dialog but `page`'s closed: the visitor is on `page`."""
    for other, pick in PAGES.items():
        if other != page:
            close(pick)


def _open(pick: str) -> str:
    return f"{pick}:open"


def place(origin: str, split: str, labels: np.ndarray, pictures: np.ndarray) -> tuple[str, str]:
    """Where Explore's pictures are, as its pick and its kept figures name it: the data set (its `origin`
    names its test pictures) and the split, by its name, count, labels and every 781st picture (64 of
    50,000: a fraction of a millisecond a rerun). A file replaced by one with other training pictures kept
    the old one's means and map, and a picture picked there past the new ones' end ended the page."""
    from cifar_core import evaluation
    every = max(1, len(labels) // 64)
    return origin, f"{split}:{len(labels)}:{evaluation.fingerprint(labels, pictures[::every])[:12]}"


def picture(point: dict, where, count: int) -> tuple:
    """A click on Explore's grid as its pick: where the picture is (its data set and split, as the page
    names them) and its index, one of the `count` there."""
    index = point.get("index")
    if type(index) is not int:      # the browser sends a number; a text such as "7" is a script's
        raise ValueError(index)
    return chart_specs.in_split(where, count, index)


def square(point: dict) -> tuple[int, int]:
    """A click on Evaluate's matrix as its pick: the square's true class and the class said."""
    true, said = point.get("true"), point.get("predicted")
    if true not in CLASS_NAMES or said not in CLASS_NAMES:
        raise ValueError(point)
    return CLASS_NAMES.index(true), CLASS_NAMES.index(said)


def show_picture(split: str, number: int, picture: np.ndarray, label: int) -> None:
    """Explore's dialog: the picture large, the model's top guesses and a way to look inside the network."""
    title = f"{split} picture #{number}: {CLASS_NAMES[label]}"
    st.dialog(title, width="medium", on_dismiss=functools.partial(close, EXPLORE))(_picture)(split, number, picture, label)


def _picture(split: str, number: int, picture: np.ndarray, label: int) -> None:
    big, predictions = st.columns([1, 2])
    big.image(charts.upscale(picture, 8), caption="32 x 32 pixels, drawn 8 times larger",
              alt=f"{split} picture #{number}, {with_article(CLASS_NAMES[label])}, drawn large")
    choice, _, model = common.active_model_choice_and_id()      # one reading: the label is the model's
    probabilities = inference.predict(model, picture)[0]
    # The model's name without its accuracy beside it: read above "% sure" bars, "(92.1%)" looked like one.
    predictions.markdown(f"**The model's top guesses** ({common.plain(choice.name)})")
    with predictions:
        chart_specs.probability_bars(probabilities, top=3)
        if split == "Training":
            # A trained model has learnt this very picture: its answer here flatters it.
            st.caption("A training picture: the model may have learnt from this very picture, so it is "
                       "likely surer and more often right here than on a picture it has never seen. Test "
                       "pictures show how it really does. (The bundled model learnt from nearly all the "
                       "training pictures; a run trained here, from as many as its settings say: two in five "
                       "for the recipe for a whole class.)")
        inside_parts.link(picture, "explore_inside")


def show_pictures(title: str, pictures: np.ndarray, captions: list[str], alts: list[str], scale: int) -> None:
    """Evaluate's dialog: the pictures of the square picked, each drawn `scale` times larger with its
    caption. Kept in the session while it is open, so given small: 40 pictures are 120 KB, 1.1 MB drawn."""
    st.dialog(title, width="large", on_dismiss=functools.partial(close, EVALUATE))(_pictures)(
        pictures, captions, alts, scale)


def _pictures(pictures: np.ndarray, captions: list[str], alts: list[str], scale: int) -> None:
    if not len(pictures):
        st.caption("No test picture is in this square: the model never gave this answer for this class.")
        return
    row(pictures, captions, alts, scale, key="closer_pictures")


def row(pictures: np.ndarray, captions: list[str], alts: list[str], scale: int, key: str) -> None:
    """Pictures in even rows (app_pages/even_rows.py) under `key`, each drawn `scale` times larger at one
    size: a long caption wraps under its picture instead of enlarging it."""
    size = pictures.shape[2] * scale
    with even_rows.rows(key, len(pictures), size):
        st.image([charts.upscale(p, scale) for p in pictures], caption=list(captions), width=size, alt=alts)
