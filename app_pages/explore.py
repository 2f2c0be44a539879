"""Explore: browse the pictures by class, their statistics, and a map of what the model sees."""
import numpy as np
import streamlit as st

from cifar_core import charts, embedding, inference
from cifar_core.data import CLASS_NAMES
from app_pages import chart_specs, common, inside_parts

PER_PAGE = 50
ALL = "All classes"


@st.cache_resource(show_spinner=False)
def class_means(origin: str, split: str) -> list[np.ndarray]:
    x, y = splits()[split]
    return [x[y == c].mean(axis=0).round().astype(np.uint8) for c in range(len(CLASS_NAMES))]


@st.cache_resource(show_spinner=False, max_entries=22)
def channel_histograms(origin: str, split: str, chosen_class: str):
    """Counting 50,000 pictures' pixels takes seconds: done once per server for each split and class
    (every student's click on the page reruns it)."""
    x, y = splits()[split]
    return charts.channel_histograms(x if chosen_class == ALL else x[y == CLASS_NAMES.index(chosen_class)])


@st.cache_resource(show_spinner="Placing 1,000 pictures on the map…", max_entries=8)
def feature_map(model_id: tuple[str, float], origin: str, split: str):
    """`model_id` (common.active_model_id: the file and its version) is the active model's, whose
    features place the pictures: a model saved again under the same name gets a new map."""
    x, y = splits()[split]
    keep = np.concatenate([np.flatnonzero(y == c)[:100] for c in range(len(CLASS_NAMES))])
    points = embedding.pca_2d(embedding.features(common.active_model(), x[keep]))
    return charts.embedding_map(points, y[keep], x[keep])


def splits() -> dict:
    d = common.loaded()[0]
    both = {"Training": (d.x_train, d.y_train), "Test": (d.x_test, d.y_test)}
    return {k: v for k, v in both.items() if len(v[1])}


common.header("explore")
dataset = common.dataset()
available = splits()
left, middle, right = st.columns([2, 2, 3], vertical_alignment="bottom")
split = left.segmented_control("Pictures from", list(available), default=list(available)[0], key="explore_split") \
    or list(available)[0]
chosen_class = middle.selectbox("Class", [ALL, *CLASS_NAMES], key="explore_class")
view = right.segmented_control("Show", ["Pictures", "Statistics", "Map"], default="Pictures", key="explore_view") \
    or "Pictures"
x, y = available[split]

if view == "Pictures":
    indices = np.arange(len(y)) if chosen_class == ALL else np.flatnonzero(y == CLASS_NAMES.index(chosen_class))
    controls = st.columns([1, 1, 4], vertical_alignment="bottom")
    if controls[0].button("Shuffle", icon=":material/shuffle:"):
        st.session_state["explore_seed"] = int(np.random.default_rng().integers(1 << 31))
    seed = st.session_state.get("explore_seed")
    order = np.random.default_rng(seed).permutation(indices) if seed is not None else indices
    n_pages = max(1, -(-len(order) // PER_PAGE))
    page = controls[1].number_input("Page", 1, n_pages, 1, key="explore_page")
    shown = order[(page - 1) * PER_PAGE: page * PER_PAGE]
    controls[2].caption(f"{len(order):,} pictures, page {page} of {n_pages:,}. Click a picture to look closer.")

    # The click is read before the grid is drawn, so that the frame is around the picture just clicked,
    # not the one before. The pick remembers its split: picture #5866 of the training set is not #5866
    # of the test set.
    grid = f"explore_grid_{split}"
    picked = (st.session_state.get(grid) or {}).get("selection", {}).get("picked")
    if picked:
        st.session_state["explore_pick"] = (split, int(picked[0]["index"]))
    pick = st.session_state.get("explore_pick")
    pick_split, index = pick if isinstance(pick, tuple) else (None, None)
    if pick_split != split:
        index = None
    chart_specs.image_grid(x[shown], y[shown], shown, selected=index, on_select="rerun", key=grid)
    if index is not None and index < len(y):
        st.subheader(f"{split} picture #{index}: {CLASS_NAMES[y[index]]}")
        big, predictions = st.columns([1, 2])
        big.image(charts.upscale(x[index], 8), caption="32 x 32 pixels, drawn 8 times larger")
        probabilities = inference.predict(common.active_model(), x[index])[0]
        predictions.markdown(f"**The model's top guesses** ({common.plain(common.active_choice().label)})")
        with predictions:
            chart_specs.probability_bars(probabilities, top=3)
            if split == "Training":
                # A trained model has learnt this very picture: its answer here flatters it.
                st.caption("A training picture: models here learn from these very pictures, so it is likely "
                           "surer and more often right here than on a picture it has never seen. Test pictures "
                           "show how it really does.")
            inside_parts.link(x[index], "explore_inside")

elif view == "Statistics":
    one, two = st.columns(2)
    one.altair_chart(charts.class_counts(y, f"{split} pictures per class"), width="stretch")
    two.altair_chart(channel_histograms(dataset.origin, split, chosen_class), width="stretch")
    st.markdown("**The average picture of each class**: the blur of everything the class has in common.")
    st.image([charts.upscale(m, 4) for m in class_means(dataset.origin, split)], caption=list(CLASS_NAMES), width=128)

else:
    st.markdown("Each dot is a picture, placed by the model's last layer of features (reduced to two dimensions "
                "with PCA). Pictures the model finds alike sit together. Hover to see one; click a class in the "
                "legend to pick it out.")
    st.altair_chart(feature_map(common.active_model_id(), dataset.origin, split), width="stretch")
