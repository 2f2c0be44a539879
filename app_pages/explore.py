"""Explore: browse the pictures by class, their statistics, and a map of what the model sees."""
import functools
import threading

import numpy as np
import streamlit as st
from streamlit import dataframe_util

from cifar_core import charts, embedding, evaluation
from cifar_core.data import CLASS_NAMES, with_article
from app_pages import chart_specs, closer_look, common, even_rows

PER_PAGE = 50
ALL = "All classes"


# Each cached function is given the very pictures the page read (`_x`, `_y`) and is keyed by their data set's
# `origin` and `held` (the split, its count and its labels' fingerprint): reading the data set again inside one
# could meet another (a download finished meanwhile, a file replaced) and keep its means or map under this
# one's name for every visitor.
# Both splits of two data sets, as many as are kept (common._dataset): a data file replaced left its means
# and map behind for good.
@st.cache_resource(show_spinner=False, max_entries=4)
def class_means(origin: str, held: str, _x: np.ndarray, _y: np.ndarray) -> list[np.ndarray | None]:
    """Each class's average picture; None for a class with no pictures (a small copy of the data set)."""
    return [_x[_y == c].mean(axis=0).round().astype(np.uint8) if (_y == c).any() else None
            for c in range(len(CLASS_NAMES))]


STATISTICS_HEIGHT = 350     # pixels, each statistics chart's whole height


@st.cache_resource(show_spinner=False, max_entries=22)
def channel_histograms(origin: str, held: str, split: str, chosen_class: str, _x: np.ndarray, _y: np.ndarray):
    """Counting 50,000 pictures' pixels takes seconds: done once per server for each split and class
    (every student's click on the page reruns it)."""
    if chosen_class == ALL:
        return charts.channel_histograms(_x, title=f"Pixel values per channel, all {split.lower()} pictures")
    return charts.channel_histograms(_x[_y == CLASS_NAMES.index(chosen_class)],
                                     title=f"Pixel values per channel, {split.lower()} pictures of {chosen_class}")


def _on_the_map(y: np.ndarray) -> np.ndarray:
    """The pictures the map places: the first 100 of each class (1,000 of CIFAR-10's)."""
    return np.concatenate([np.flatnonzero(y == c)[:100] for c in range(len(CLASS_NAMES))])


@st.cache_resource(show_spinner=False, max_entries=4)
def map_pictures(origin: str, held: str, _x: np.ndarray, _y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The map's pictures, labels and thumbnails (2-4 MB of them), once per server: every model's map
    shows the same ones."""
    keep = _on_the_map(_y)
    return _y[keep], [charts.data_uri(picture) for picture in _x[keep]]


@st.cache_resource(show_spinner=False)
def _placing() -> threading.Lock:
    """One map placed at a time on this server, whoever asked for whichever model's: thirty students
    opening the map of each one's own run placed thirty at once, every one of them slower, and every photo
    answered meanwhile too."""
    return threading.Lock()


def _placed(model, pictures: np.ndarray) -> np.ndarray:
    with _placing():
        return embedding.pca_2d(embedding.features(model, pictures))


@st.cache_resource(show_spinner="Placing the pictures on the map (one map at a time on this server)…",
                   max_entries=64)
def map_points(model_id: tuple[str, float], origin: str, held: str, _model, _x: np.ndarray,
               _y: np.ndarray) -> np.ndarray:
    """Where `_model`'s features place the map's pictures, 16 KB: kept for as many models as a class uses
    (each placing is seconds of the server's CPU, 9 s for the bundled pair). `model_id` (the file and its
    version, `common.active_model_and_id`) is `_model`'s, read once with it, so that a choice changed
    meanwhile in another tab never stores one model's map under another's name; a model saved again under
    the same name gets a new map."""
    on_the_map = _x[_on_the_map(_y)]
    # Kept on disk beside the model as well, under its bytes and these pictures: a restarted server, or
    # another process of it, does not place them again.
    return evaluation.cached_probabilities(model_id[0], on_the_map, "map2:" + evaluation.fingerprint(on_the_map),
                                           functools.partial(_placed, _model))


@st.cache_resource(show_spinner=False, max_entries=8)
def map_dots(model_id: tuple[str, float], origin: str, held: str, chosen: str | None, _placed: np.ndarray,
             _labels: np.ndarray, _thumbnails: list[str]) -> bytes:
    """The map's dots as the chart's Arrow bytes (3 MB of thumbnails), once for everyone looking at one
    model's map with one class picked out."""
    return dataframe_util.convert_anything_to_arrow_bytes(
        charts.embedding_frame(_placed[:, :2], _labels, _thumbnails, chosen))


def feature_map(origin: str, held: str, chosen: str | None, x: np.ndarray, y: np.ndarray):
    """The map's dots (`map_dots`), the share of the features' variance its two directions keep, and its
    pictures' classes."""
    labels, thumbnails = map_pictures(origin, held, x, y)
    choice, model_id, model = common.active_model_choice_and_id()
    try:
        placed = map_points(model_id, origin, held, model, x, y)
    except OSError as e:                  # its run deleted meanwhile: its file is gone
        common.cannot_open(choice, e)
    return map_dots(model_id, origin, held, chosen, placed, labels, thumbnails), float(placed[0, 2]), labels


def splits(d) -> dict:
    """The data set's splits that hold any pictures (the bundled sample has no training pictures)."""
    both = {"Training": (d.x_train, d.y_train), "Test": (d.x_test, d.y_test)}
    return {k: v for k, v in both.items() if len(v[1])}


common.header("explore")
dataset = common.dataset()
available = splits(dataset)
left, middle, right = st.columns([2, 2, 3], vertical_alignment="bottom")
# Required: a click on the one chosen chose none, and the page fell back to the first with no button lit.
split = left.segmented_control("Pictures from", list(available), default=list(available)[0], required=True,
                               key="explore_split") or list(available)[0]
view = right.segmented_control("Show", ["Pictures", "Statistics", "Map"], default="Pictures", required=True,
                               key="explore_view") or "Pictures"
# The map places every class and picks the chosen one out. The counts and average pictures are of every class.
chosen_class = middle.selectbox("Class", [ALL, *CLASS_NAMES], key="explore_class",
                                help="Which pictures to list, whose pixel values to count under Statistics, and "
                                     "which class to pick out on the Map (the others fade).")
x, y = available[split]
where = closer_look.place(dataset.origin, split, y, x)     # what the split's figures and pick are kept under
held = where[1]
missing = [name for c, name in enumerate(CLASS_NAMES) if not (y == c).any()]     # a small copy of the data

if view == "Pictures":
    indices = np.arange(len(y)) if chosen_class == ALL else np.flatnonzero(y == CLASS_NAMES.index(chosen_class))
    controls = st.columns([1, 1, 2, 2], vertical_alignment="bottom")
    if controls[0].button("Shuffle", icon=":material/shuffle:"):
        st.session_state["explore_seed"] = int(np.random.default_rng().integers(1 << 31))
    seed = st.session_state.get("explore_seed")
    order = np.random.default_rng(seed).permutation(indices) if seed is not None else indices
    n_pages = max(1, -(-len(order) // PER_PAGE))
    page = controls[1].number_input("Page", 1, n_pages, 1, key="explore_page")
    shown = order[(page - 1) * PER_PAGE: page * PER_PAGE]
    controls[3].caption(f"{len(order):,} pictures, page {page} of {n_pages:,}. Click a picture, or choose it in "
                        "the box, to look closer." if len(order) else
                        f"This data set has no {split.lower()} pictures of {chosen_class}.")

    # The click is read before the grid is drawn, so that the frame is around the picture just clicked,
    # not the one before.
    chart = f"explore_grid_{split}"
    # The pick remembers its split and data set: picture #5866 of the training set is not #5866 of the test
    # set, nor test picture #900 of the bundled sample the download's #900 (a download finished meanwhile).
    grid = closer_look.take_click(chart, "picked", closer_look.EXPLORE,
                                  functools.partial(closer_look.picture, where=where, count=len(y)))
    pick = st.session_state.get(closer_look.EXPLORE)
    index = pick[1] if isinstance(pick, tuple) and pick[0] == where else None
    if index is None:
        closer_look.close(closer_look.EXPLORE)
    looking = index is not None and closer_look.is_open(closer_look.EXPLORE)
    # The same pick from the keyboard: a box of this page's pictures, showing the one looked at however it
    # was picked; empty once its dialog is closed, so that choosing it again opens it again.
    box = f"explore_box_{split}"
    st.session_state[box] = index if looking and index in shown.tolist() else None
    # Its labels as a dict, and its callback a module's: what a widget keeps in the session holds nothing of
    # this run's variables (chart_specs.in_split).
    # Numbered as CIFAR-10 numbers them: the bundled sample's test picture #900 is the download's #900 too.
    number = dataset.test_number if split == "Test" else int
    labels = {i: f"#{number(i)}: {CLASS_NAMES[y[i]]}" for i in shown.tolist()}
    controls[2].selectbox("Look closer at", list(labels), index=None, key=box, placeholder="Choose a picture",
                          format_func=labels.get, on_change=closer_look.box_chosen,
                          args=(box, chart, closer_look.EXPLORE, functools.partial(chart_specs.in_split, where, len(y))),
                          help="The pictures of this page in the grid's order, left to right and row by row; or "
                               "click one in the grid.")
    if len(shown):
        chart_specs.image_grid(x[shown], y[shown], shown, selected=index, on_select="rerun", key=grid,
                               numbers=[number(i) for i in shown],
                               alt=f"{len(shown)} {split.lower()} pictures"
                                   + ("" if chosen_class == ALL else f" of {chosen_class}")
                                   + " in a grid, up to 10 to a row. Click one, or choose it in the box above, to "
                                     "look closer.")
    if looking:
        closer_look.show_picture(split, number(index), x[index].copy(), int(y[index]))   # not a view of the split

elif view == "Statistics":
    one, two = st.columns(2)
    counts = np.bincount(y, minlength=len(CLASS_NAMES))
    # One height for both, each fitted whole into it (title, axes and all): side by side, their plots level.
    one.altair_chart(charts.class_counts(y, f"{split} pictures per class"), width="stretch", height=STATISTICS_HEIGHT,
                     alt=f"Bar chart of the {split.lower()} pictures per class: "
                         + ", ".join(f"{name} {n:,}" for name, n in zip(CLASS_NAMES, counts)) + ".")
    of = "all " + split.lower() + " pictures" if chosen_class == ALL else f"{split.lower()} pictures of {chosen_class}"
    if chosen_class in missing:
        two.caption(f"This data set has no {split.lower()} pictures of {chosen_class}, so there are no pixel values "
                    "to count.")
    else:
        two.altair_chart(channel_histograms(dataset.origin, held, split, chosen_class, x, y), width="stretch",
                         height=STATISTICS_HEIGHT,
                         alt=f"Line chart of how often pixel values, 0 to 255 in steps of 4, occur in the red (solid), "
                             f"green (dashed) and blue (dotted) channels of {of}.")
    st.markdown("**The average picture of each class**: the blur of everything the class has in common.")
    means = class_means(dataset.origin, held, x, y)
    present = [c for c, name in enumerate(CLASS_NAMES) if name not in missing]      # an average of none is black
    with even_rows.rows("explore_means", len(present), 128):
        st.image([charts.upscale(means[c], 4) for c in present], caption=[CLASS_NAMES[c] for c in present],
                 width=128, alt=[f"the average of every {split.lower()} picture of {with_article(CLASS_NAMES[c])}: a "
                                 "blur of its usual colours" for c in present])
    if missing:
        st.caption(f"No average for {', '.join(missing)}: this data set has no {split.lower()} pictures of "
                   + ("it." if len(missing) == 1 else "them."))

else:
    st.markdown("Each dot is a picture, placed by the model's last layer of features (reduced to two dimensions "
                "with PCA). Pictures the model finds alike sit together. Hover over a dot (or tap it) to see its "
                "picture; choose a class in the Class box above" + (" (or click one in the legend)" if chosen_class == ALL else "")
                + " to pick it out."
                # As a training picture's answer does, a map of them flatters the model.
                + (" These are training pictures, which the model has learnt: its classes sit apart more "
                   "neatly here than they would for pictures it never saw (choose Test to see those)."
                   if split == "Training" else ""))
    picked = None if chosen_class in (ALL, *missing) else chosen_class
    if chosen_class in missing:
        st.caption(f"This data set has no {split.lower()} pictures of {chosen_class}: the map shows every class.")
    dots, kept, placed = feature_map(dataset.origin, held, picked, x, y)
    each = set(np.bincount(placed, minlength=len(CLASS_NAMES)).tolist())
    chart_specs.embedding_map(dots, picked, width="stretch",
                              alt=f"Scatter plot of {len(placed):,} {split.lower()} pictures, "
                                  + (f"{each.pop():,} of each class" if len(each) == 1 else "up to 100 of each class")
                                  + ", as dots coloured by class and placed by the model's features: pictures it "
                                    "finds alike sit together."
                                  + ("" if picked is None else f" The {picked} pictures stand out; the rest are faded."))
    # Two directions of hundreds: cat, dog, deer and horse in one heap read as "it cannot tell them apart",
    # and the model is right on most of them.
    st.caption(f"These two directions keep {kept:.0%} of how the model's features vary from picture to picture: "
               "classes that overlap here can be well apart in the rest, and the model can tell most of them "
               "apart (Evaluate says how often).")
