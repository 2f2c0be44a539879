"""The pieces of the Look inside page: which network, which picture, its maps, a closer look, its filters.

Another page hands a picture over with `link(picture)`: the (32, 32, 3) uint8 array goes under one
session key, PICTURE, and the browser moves to this page.
"""
from __future__ import annotations

import functools
import itertools
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import chart_specs, common, even_rows, model_shelf
from cifar_core import board, charts, explain, inference, inside, models
from cifar_core.data import CLASS_NAMES

PAGE = "app_pages/inside.py"
PICTURE = "inside_picture"
SHOWN = 16      # maps shown per block, strongest first
MAPS_OF = "inside_maps_of"      # session state: the network (its file) whose maps were picked in the boxes
TRAINING_PICTURES = 500     # test pictures the closer look searches in a checkpoint still training


def link(picture: np.ndarray, key: str) -> None:
    """A button that opens Look inside with this picture."""
    if st.button("Look inside the network", icon=":material/layers:", key=key,
                 help="See what each layer of the network finds in this picture"):
        st.session_state[PICTURE] = np.array(picture, np.uint8)
        st.switch_page(PAGE)


class Network(NamedTuple):
    path: Path
    modified: float | None      # the file's mtime when it was loaded
    model: object               # None (and a note on the page) if the file cannot be loaded
    training: bool              # the latest checkpoint of a run still training: replaced every epoch


NETWORK_BOX = "inside_network"
PICKED_OVER = "inside_network:over"     # session state: the sidebar's model a run training was picked over


def network() -> Network:
    """The sidebar's model, or the latest checkpoint of a run still training. A run picked here while it
    trained stays picked once it has finished (as the model it now is), until the sidebar's model is
    changed: that choice wins. Before, a pick held over a new sidebar choice, and a finished run gave way
    to the sidebar's model without a word."""
    choice = common.active_choice()
    if st.session_state.get(PICKED_OVER) != choice.key:
        st.session_state.pop(NETWORK_BOX + common.PICKED, None)
        st.session_state[PICKED_OVER] = choice.key
    running = [run for run in board.current().runs if run.state == "running" and run.model_path]
    names = [run.name for run in running]
    # Two runs of one name can train at once: then each is told apart by its id.
    training = [common.ModelChoice(f"Run {run.name}{f' [{run.id}]' if names.count(run.name) > 1 else ''}: "
                                   "training now, its latest checkpoint", run.model_path, run.id)
                for run in running]
    kept = st.session_state.get(NETWORK_BOX + common.PICKED)
    ended = [c for c in common.model_choices() if c.key == kept] \
        if kept not in (None, choice.key) and all(t.key != kept for t in training) else []
    if training or ended:
        choice = common.model_box("Network", NETWORK_BOX, [choice, *training, *ended], choice)
    checkpoint = any(choice is c for c in training)
    load = common._checkpoint if checkpoint else common._model
    try:
        modified = choice.path.stat().st_mtime     # what looks inside sees the model file's own layers
        return Network(choice.path, modified, load(str(choice.path), inference.model_version(choice.path)),
                       checkpoint)
    except (OSError, inference.ModelError) as e:
        common.cannot_open(choice, e if isinstance(e, OSError) else "its file is damaged")


def _pick(key: str) -> None:
    # The browser sends the picked picture's index; a script could send anything in its place.
    event = st.session_state.get(key)
    selection = event.get("selection") if isinstance(event, dict) else None
    picked = selection.get("picked") if isinstance(selection, dict) else None
    index = picked[0].get("index") if isinstance(picked, list) and picked and isinstance(picked[0], dict) else None
    _take(index)


def _take(index) -> None:
    pictures = common.loaded()[0].x_test
    if type(index) is int and 0 <= index < len(pictures):
        st.session_state[PICTURE] = pictures[index].copy()


def picture() -> np.ndarray | None:
    """The chosen picture, shown small with a way to change it; or test pictures to choose from."""
    chosen = st.session_state.get(PICTURE)
    if chosen is not None:
        left, right = st.columns([1, 5], vertical_alignment="center")
        left.image(charts.upscale(chosen, 3), caption="The picture", alt="the chosen picture, drawn 3 times larger")
        if right.button("Choose another picture", icon=":material/swap_horiz:"):
            del st.session_state[PICTURE]
            st.rerun()
        return np.asarray(chosen, np.uint8)
    test = common.dataset()
    name = st.selectbox("Test pictures of", CLASS_NAMES, key="inside_class")
    shown = np.flatnonzero(test.y_test == CLASS_NAMES.index(name))[:20]
    st.caption("Click a picture to look inside the network with it, or choose it in the box below (or use the "
               "button on Predict or Explore).")
    grid, _ = chart_specs.clicked("inside_grid", "picked")     # a script's oversized click let go
    chart_specs.image_grid(test.x_test[shown], test.y_test[shown], shown, key=grid, on_select=functools.partial(_pick, grid),
                           numbers=[test.test_number(i) for i in shown],
                           alt=f"{len(shown)} test pictures of {name} in a grid. Click one, or choose it in the box "
                               "below, to look inside the network with it.")
    # The same choice from the keyboard: the grid's pictures, left to right and row by row.
    st.selectbox("Look inside with", shown.tolist(), index=None, key="inside_box", placeholder="Choose a picture",
                 format_func=lambda i: f"test picture #{test.test_number(i)}: {name}",
                 on_change=lambda: _take(st.session_state.get("inside_box")))
    return None


def _seen(field: inside.Field, places: int) -> str:
    """What one place of a map sees of the picture: its field clipped to the picture, which a place near
    an edge sees less of (a field past the picture's edges reads padding there, not picture)."""
    fewest, most = field.seen(places)
    seen = "the whole picture" if most >= 32 else f"{most} x {most} pixels of the picture"
    return f"each seeing {seen}" if fewest == most else \
        f"the middle ones seeing {seen}, those at the edges as little as {fewest} x {fewest}"


def _most_at(feature_map: np.ndarray) -> str:
    """Where a map responds most, in words for its alt text (its colours say it to the eye alone)."""
    place = explain.hottest_place(feature_map)
    return f"most in {place} of the picture" if place else "nowhere more than elsewhere"


def maps(model, image: np.ndarray) -> list[np.ndarray]:
    """Every block's strongest maps for the picture; returns all the maps."""
    found = inside.feature_maps(model, image)
    networks = models.members_of(model)
    if networks > 1:
        st.caption("The model is two networks side by side: in every block, the first half of the maps are "
                   "one network's and the second half the other's, each found by that network alone."
                   if networks == 2 else f"The model is {networks} networks side by side: in every block, the "
                   f"maps come in {networks} equal runs, one network's each, in turn.")
    for i, (block, block_maps) in enumerate(zip(inside.blocks(model), found)):
        order = inside.strongest(block_maps)[:SHOWN]
        height, width, channels = block.shape
        # A map's places, not the picture's pixels: each place sees a square of the picture (its field).
        st.markdown(f"**{block.title}**: {height} x {width} places, {_seen(block.field, height)}; "
                    f"the {len(order)} strongest of its {channels} maps")
        images = inside.map_images(block_maps, order)
        # In even rows: at a 1920-pixel projector 15 stood over 1, on a phone 3 to a row over 1.
        with even_rows.rows(f"inside_maps_{i}", len(images), images[0].shape[1]):
            st.image(images, caption=[f"map {c}" for c in order], width=images[0].shape[1],
                     alt=[f"{block.title}, map {c}: bright where it responds to the picture, "
                          + _most_at(block_maps[:, :, c]) for c in order])
    return found


SEARCHING = "Finding the test pictures each map responds to most (once per network)…"


def _search(path: str, modified: float, origin: str, n: int, model) -> list[np.ndarray]:
    test = common.loaded()[0]
    return inside.cached_top_activations(path, model, test.x_test[:n], f"{origin}:{n}", modified=modified)


# As many as the models kept loaded (common._model), kept the same way (app_pages/model_shelf.py): thirty
# students on thirty runs kept missing 8, each miss read and hashed the model file again, and one visitor
# flicking through runs here pushed out the class's. An entry is about 170 KB. Searches made one at a time.
@st.cache_resource
def searches_kept() -> model_shelf.Shelf:
    return model_shelf.Shelf(common.MODEL_PLACES, common.RECENTLY_S, threading.Lock())     # one per server


def _top(path: str, modified: float, origin: str, n: int, model) -> list[np.ndarray]:
    return common.from_shelf(searches_kept(), (path, modified, origin, n),
                             lambda: _search(path, modified, origin, n, model), SEARCHING)


# A training run's checkpoint is a new network every epoch: kept apart, in two places, as common._checkpoint
# keeps the checkpoints themselves, so that a page left open on a run does not push the class's finished
# models' searches out of `_top`.
@st.cache_resource(show_spinner=SEARCHING, max_entries=2)
def _top_of_checkpoint(path: str, modified: float, origin: str, n: int, _model) -> list[np.ndarray]:
    return _search(path, modified, origin, n, _model)


def closer_look(network: Network, found: list[np.ndarray]) -> None:
    """One map, large, next to the test-picture patches that excite it most."""
    model = network.model
    shown = inside.blocks(model)
    titles = [b.title for b in shown]
    pick, which = st.columns(2)
    title = pick.selectbox("Layer", titles, index=next((i for i, t in enumerate(titles) if t != "Whitening"), 0),
                           key="inside_block")
    i = titles.index(title)
    block_maps = found[i]
    # A map picked in one network is no pick in another: the picks go when the network changes (a run's
    # next checkpoint is the same network, its maps the same maps).
    if st.session_state.get(MAPS_OF) != str(network.path):
        for key in [k for k in st.session_state if str(k).startswith("inside_channel_")]:
            del st.session_state[key]
        st.session_state[MAPS_OF] = str(network.path)
    channel = which.selectbox("Map", inside.strongest(block_maps).tolist(), key=f"inside_channel_{i}",
                              format_func=lambda c: f"map {c} (responds {block_maps[:, :, c].mean():.2f} on average)",
                              help="The block's maps for this picture, the strongest first. The number is how "
                                   "strongly the map responds, averaged over the picture: 0 is not at all, and "
                                   "below 0 (down to -0.17, in networks whose blocks end in GELU) a little "
                                   "less than nothing, which the next layer reads as almost nothing.")
    test = common.loaded()[0]
    # A training run's checkpoint is a new network every epoch, searched again by whoever looks: a quarter
    # of the pictures (the `best` network's search of 2,000 took 6.7 s of the server's CPU an epoch).
    n = min(TRAINING_PICTURES if network.training else inside.TOP_PICTURES, len(test.y_test))
    top = _top_of_checkpoint if network.training else _top
    records = top(str(network.path), network.modified, test.origin, n, model)[i][channel]
    # A map that never fires (its strongest response is none) has no pattern to show: the search's
    # places would be the first pictures' corners, shown as "what excites it most".
    records = records[records[:, 3] > 0] if records.ndim == 2 and records.shape[1] > 3 else records
    if not len(records):
        st.info(f"Map {channel} of {title} responds to none of the first {n:,} test pictures: it has no "
                "pattern to show.")
        return
    crops = inside.patches(test.x_test, shown[i].field, records)
    big, best = st.columns(2)
    large = inside.map_images(block_maps, [channel], 320)[0]
    big.image(large, width=large.shape[1],
              caption=f"Map {channel} of {title}: yellow where the block's maps respond most, dark purple where "
                      "least (one scale for the whole block, so a weak map stays dark)",
              alt=f"map {channel} of {title}, large: bright where it responds to the picture, "
                  + _most_at(block_maps[:, :, channel]))
    classes = ", ".join(CLASS_NAMES[test.y_test[int(r[0])]] for r in records[:len(crops)])
    grid = inside.mosaic(crops, size=96)
    best.image(grid, width=grid.shape[1], caption=f"The parts of test pictures that excite it most (of the first "
               f"{n:,}; grey: what it cannot see): {classes}",
               alt=f"{len(crops)} parts of test pictures that excite map {channel} most, side by side")


# A phone (Streamlit stacks columns below 640 pixels) gets the layers as a list: the table showed three of
# its seven columns there, and each row stood as tall as "what it does" wrapped in its narrow column, out
# of sight (a page 4,000 pixels long). Both are sent; the screen shows one (at any width, a fraction of a
# pixel over 640 too), and a screen reader reads that one.
LAYERS_ON_A_PHONE = """<style>
  @media (max-width: 640px) { .st-key-layers_table { display: none; } }
  @media not all and (max-width: 640px) { .st-key-layers_list { display: none; } }
</style>"""


def layers(model) -> None:
    table, pair = pd.DataFrame(inside.layer_table(model)), groups_said(model)
    st.html(LAYERS_ON_A_PHONE)
    with st.container(key="layers_table"):
        st.caption("The picture passes down this column one layer at a time, and each row says what that layer "
                   "does. The \"part\" column names the blocks as What it sees does, and in each block the row "
                   "marked yes under \"maps shown\", its last, is the layer whose maps it shows. Weights are the "
                   "numbers inside a layer, most of them learned in training." + pair)
        # A static table, not a data grid: "what it does" wraps onto a second line on a projector's narrow
        # page instead of being cut off at a fixed column width.
        first_of_part = table["part"].ne(table["part"].shift())     # each part named once, on its first row
        shown = table.assign(part=table["part"].where(first_of_part, ""),
                             weights=table["weights"].map("{:,}".format),
                             shown=table["shown"].map({True: "yes", False: ""}))
        st.table(shown[["part", "layer", "type", "output", "weights", "shown", "does"]]
                 .rename(columns={"shown": "maps shown", "does": "what it does"}), hide_index=True)
    with st.container(key="layers_list"):
        st.caption("The picture passes down these layers one at a time. Each says what it does, the shape of "
                   "what it hands on and how many weights it has: the numbers inside a layer, most of them "
                   "learned in training. In each block, the layer marked \"maps shown\", its last, is the one "
                   "whose maps What it sees shows." + pair)
        st.markdown(layers_listed(table))
    st.caption(f"{int(table['weights'].sum()):,} weights in all.")


def layers_listed(table: pd.DataFrame) -> str:
    """`inside.layer_table`'s rows as Markdown: each part in bold, a line for each of its layers."""
    lines = []
    for part, rows in itertools.groupby(table.itertuples(), key=lambda row: row.part):    # in order, as the table
        lines.append(f"**{common.plain(part)}**\n")
        lines += [f"- **{common.plain(row.layer)}** ({common.plain(row.type)}): {common.plain(row.does)}. "
                  f"Hands on {common.plain(row.output)}; {f'{row.weights:,}' if row.weights else 'no'} weights"
                  + ("; maps shown" if row.shown else "") for row in rows]
        lines.append("")
    return "\n".join(lines)


def _whose(model, count: int) -> str:
    """Which filters belong to which network, for networks side by side (`models.side_by_side`)."""
    networks = models.members_of(model)
    if networks == 1:
        return ""
    each = count // networks
    spans = [f"{n * each}-{(n + 1) * each - 1}" for n in range(networks)]
    whose = ", ".join(f"{span} network {n + 1}'s" if n else f"filters {span} are network 1's"
                      for n, span in enumerate(spans))
    return f" The model is {networks} networks side by side: {whose}."


def groups_said(model) -> str:
    """For the layers' table of networks side by side: what its layers' "groups" are."""
    networks = models.members_of(model)
    return (f" The model is {networks} networks side by side, built as one: a layer \"in {networks} groups\" is "
            "each network's own layer, next to the others'." if networks > 1 else "")


def filters(model) -> None:
    names = inside.shown_names(model)
    for i, found in enumerate(inside.first_filters(model)):
        size, count = found.kernel.shape[0], found.kernel.shape[-1]
        if found.fixed:
            st.header(f"The fixed first layer ({names[found.layer]})")
            networks = models.members_of(model)
            halves = (" In each one's share, the second half are the first half turned negative."
                      if networks > 1 else " The second half are the first half turned negative.")
            shares = np.split(found.kernel, networks, axis=-1) if networks > 1 else []
            if shares and all(np.allclose(share, shares[0]) for share in shares):
                # A class asks why the pair's filters come round twice: each was set from the same pictures.
                halves += " The shares are alike: each network's was set from the same training pictures."
            st.caption("These filters were set from the data before training, not learned: they make neighbouring "
                       "pixels less alike, which helps the next layers learn fast." + _whose(model, count) + halves)
        else:
            st.header(f"The first learned layer ({names[found.layer]})")
            st.caption("Each square is the colour pattern that makes one filter respond most." + (
                f" Seen through the fixed layer, so {size} x {size} pixels: that layer strengthens fine detail, "
                "which is why many look speckled." if found.seen_through else "") + _whose(model, count))
        patches = [inside.enlarge(p, 64) for p in found.patches]
        # Framed: a filter that weighs the three colours alike is drawn near white, and vanished into the page.
        with even_rows.rows(f"inside_filters_{i}", len(patches), patches[0].shape[1], framed=True):
            st.image(patches, caption=[str(c) for c in range(len(patches))], width=patches[0].shape[1],
                     alt=[f"the colour pattern filter {c} responds to most" for c in range(len(patches))])
