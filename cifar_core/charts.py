"""Altair chart builders shared by the pages: data in, chart out (no Streamlit here)."""
from __future__ import annotations

import base64
import io

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

from cifar_core import evaluation
from cifar_core.data import CLASS_NAMES

CLASS_SCALE = alt.Scale(domain=list(CLASS_NAMES), scheme="category10")


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a crisp factor x factor square."""
    return np.asarray(image).repeat(factor, axis=0).repeat(factor, axis=1)


def png(image: np.ndarray) -> bytes:
    """A uint8 image as PNG bytes, for st.image, which passes bytes on as they are (Streamlit's own
    encoding of an array compresses hard: three times the CPU for pictures that are fetched once)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def data_uri(image: np.ndarray) -> str:
    """A PNG data URI of a uint8 RGB image, for image marks and tooltips."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_grid_frame(images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                     selected: int | None = None, numbers: np.ndarray | None = None) -> pd.DataFrame:
    """image_grid's rows: each picture's place in the grid's order, its index (what a click picks), the
    number it is shown by (`numbers`, CIFAR-10's for the bundled sample; by default its index) and class,
    the picture as a PNG data URI, and whether it is the chosen one (framed); and what a screen reader says
    of it ("caption")."""
    numbers = np.asarray(indices if numbers is None else numbers, np.int64)
    names = [CLASS_NAMES[int(label)] for label in labels]
    return pd.DataFrame({"position": np.arange(len(indices)),
                         "index": np.asarray(indices, np.int64), "number": numbers, "label": names,
                         "caption": [f"picture #{n}, {name}" for n, name in zip(numbers, names)],
                         "image": [data_uri(image) for image in images],     # Vega enlarges it, crisp
                         # 1 or 0, not a boolean: Streamlit's browser side read a column of booleans
                         # sent as Arrow wrongly, framing a picture nobody chose
                         "chosen": (np.asarray(indices) == (selected if selected is not None else -1)).astype(np.int64)})


def image_grid(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, columns: int = 10,
               cell: int = 64, selected: int | None = None) -> alt.Chart:
    """A grid of pictures drawn crisp, `columns` to a row or as many as the chart's width holds (five on a
    phone, where a row of ten had to be slid sideways); clicking one selects it (selection parameter
    "picked"). Drawn as wide as its container (Streamlit gives the chart its container's width): its look
    is the same for any pictures, which come with the data with the chosen one's frame."""
    frame = image_grid_frame(images, labels, indices, selected)
    picked = alt.selection_point(name="picked", fields=["index"], on="click", clear=False)
    fit = alt.param(name="fit", expr=f"max(1, min({columns}, floor(width / {cell})))")
    # Pictures sit at the centres of equal cells, placed in pixels (no scale) row by row; the view is one
    # row high and grows to hold them all ("pad").
    base = alt.Chart(frame).encode(
        x=alt.X("x:Q", axis=None, scale=None), y=alt.Y("y:Q", axis=None, scale=None),
        tooltip=[alt.Tooltip("number:Q", title="picture"), alt.Tooltip("label:N", title="class")])
    # A screen reader is told of each picture once, by its frame, in words: a picture mark's own description
    # held its whole data URI (a grid of 50 read as 478 KB of text).
    pictures = base.mark_image(width=cell - 6, height=cell - 6, smooth=False, aria=False).encode(
        url="image:N").add_params(picked)
    # A frame around the chosen picture.
    frames = base.mark_square(size=(cell - 2) ** 2, filled=False, strokeWidth=3).encode(
        description=alt.Description("caption:N"),
        color=alt.condition(alt.datum.chosen == 1, alt.value("#ff4b4b"), alt.value("transparent")))
    # "pad": the cells keep their size. Streamlit's default ("fit") squeezes the padding into the given size,
    # which pulled the rows 7 pixels closer than the pictures are tall, so they ran together.
    return (frames + pictures).add_params(fit).transform_calculate(
        x=f"(datum.position % fit + 0.5) * {cell}", y=f"(floor(datum.position / fit) + 0.5) * {cell}",
    ).properties(width=columns * cell, height=cell, autosize="pad").configure_view(strokeWidth=0)


def class_counts(labels: np.ndarray, title: str = "Pictures per class") -> alt.Chart:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(CLASS_NAMES))
    frame = pd.DataFrame({"class": CLASS_NAMES, "pictures": counts})
    # Bars across, the classes down the side: upright, the class names were turned on end under them, and
    # took the plot 20 pixels of height the pixel values' chart beside it kept, so the two stood unlevel.
    return alt.Chart(frame, title=title).mark_bar().encode(
        y=alt.Y("class:N", sort=list(CLASS_NAMES), title=None),
        x=alt.X("pictures:Q", title="pictures"),
        color=alt.Color("class:N", scale=CLASS_SCALE, legend=None),
        tooltip=["class", "pictures"])


CHANNEL_DASHES = [[1, 0], [8, 4], [2, 2]]     # red solid, green dashed, blue dotted
HISTOGRAM_SLICE = 2000                         # pictures counted at once: 49 MB of int64 a channel at most


def channel_histograms(images: np.ndarray, bins: int = 64, title: str = "Pixel values per channel") -> alt.Chart:
    """How often each brightness occurs in the red, green and blue channels of uint8 `images`, in `bins`
    equal bins (a divisor of 256). Counted with bincount, 3-4 times as fast as np.histogram: the 50,000
    training pictures' 153 million values take about 1.5 s on one core. Counted a slice of pictures at a
    time: bincount copies a channel of them to int64 first, 410 MB for the whole training set at once."""
    pixels = np.asarray(images, dtype=np.uint8).reshape(len(images), -1, 3)
    width = 256 // bins
    every = np.zeros((3, 256), np.int64)
    for start in range(0, len(pixels), HISTOGRAM_SLICE):
        part = pixels[start:start + HISTOGRAM_SLICE]
        for channel in range(3):
            every[channel] += np.bincount(part[..., channel].ravel(), minlength=256)
    frames = []
    for channel, name in enumerate(("red", "green", "blue")):
        counts = every[channel].reshape(bins, width).sum(axis=1)
        shares = counts / max(1, counts.sum())
        starts = np.arange(bins) * width
        # One more point at 256, at the last bin's share, so the step of the last bin (252-255: a
        # saturated white) is drawn as wide as the others, not as a bare vertical edge.
        frames.append(pd.DataFrame({"value": [*starts, 256], "share": [*shares, shares[-1]], "channel": name,
                                    "values": [f"{v}-{v + width - 1}" if width > 1 else str(v)
                                               for v in [*starts, starts[-1]]]}))
    channels = ["red", "green", "blue"]
    # A dash of its own for each channel: to a red-green colour-blind eye the red and green lines are one
    # colour. Same field as the colour, so one key shows both, as lines long enough to show their dash.
    key = alt.Legend(symbolType="stroke", symbolSize=400, symbolStrokeWidth=2)
    return alt.Chart(pd.concat(frames), title=title).mark_line(interpolate="step-after", strokeWidth=2).encode(
        x=alt.X("value:Q", title="pixel value (0-255)", scale=alt.Scale(domain=[0, 256])),
        y=alt.Y("share:Q", title="share of pixels" + (f", per {width} values" if width > 1 else ""),
                axis=alt.Axis(format="%")),
        color=alt.Color("channel:N", scale=alt.Scale(domain=channels, range=["#e45756", "#54a24b", "#4c78a8"]),
                        legend=key),
        strokeDash=alt.StrokeDash("channel:N", scale=alt.Scale(domain=channels, range=CHANNEL_DASHES), legend=key),
        tooltip=["channel", alt.Tooltip("values:N", title="pixel values"),
                 alt.Tooltip("share:Q", title="share of pixels", format=".2%")])


def probability_frame(probs: np.ndarray, top: int | None = None) -> pd.DataFrame:
    """Class probabilities as rows (class, probability), most likely first, each as its tooltip
    prints it to a tenth of a percent ("shown"): never 100.0% or 0.0% short of exactly that, and as
    the words at its bar's end ("sure"), as every page writes a "% sure" (evaluation.sure)."""
    probs = np.asarray(probs, dtype=float)
    frame = pd.DataFrame({"class": CLASS_NAMES, "probability": probs,
                          "shown": evaluation.kept_off_certainty(100 * probs, 1, probabilities=True) / 100,
                          "sure": [evaluation.sure(p) for p in probs]})
    return frame.sort_values("probability", ascending=False).head(top or len(CLASS_NAMES))


# The bars' axis runs on to 125%, so that the longest words at a bar's end ("over 99%", about 55 pixels)
# fit: the last fifth of the plot is 80 pixels in Explore's narrower chart at 1280 pixels wide.
PROBABILITY_ROOM = 1.25


def probabilities(probs: np.ndarray, top: int | None = None) -> alt.Chart:
    """Class probabilities as bars, most likely first, each with its "% sure" written at its end (not
    only in a tooltip: a projector has no mouse, and a screen reader no hover)."""
    base = alt.Chart(probability_frame(probs, top)).encode(
        x=alt.X("probability:Q", title="probability", scale=alt.Scale(domain=[0, PROBABILITY_ROOM], nice=False),
                # no ticks past 100%, nor in what a screen reader says of the axis
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1], description="probability, 0% to 100%")),
        # "max", not the default "sum": Vega-Lite drops any other sort from a domain two layers share.
        y=alt.Y("class:N", sort=alt.EncodingSortField("probability", op="max", order="descending"), title=None),
        tooltip=["class", alt.Tooltip("shown:Q", title="probability", format=".1%")])
    # Unseen by a screen reader, which is read the chart's own alt text: each bar read its unrounded figure
    # ("probability: 88.468909%"), beside the app's words for it.
    bars = base.mark_bar(aria=False).encode(color=alt.Color("class:N", scale=CLASS_SCALE, legend=None))
    words = base.mark_text(align="left", dx=4, fontSize=13, aria=False).encode(text="sure:N")
    return bars + words


# Vega has eight solid shapes; a star and a hexagon (SVG paths on the unit square) make ten.
STAR = "M0,-1L0.22,-0.31L0.95,-0.31L0.36,0.12L0.59,0.81L0,0.38L-0.59,0.81L-0.36,0.12L-0.95,-0.31L-0.22,-0.31Z"
HEXAGON = "M0.87,0.5L0,1L-0.87,0.5L-0.87,-0.5L0,-1L0.87,-0.5Z"
CLASS_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", STAR, "triangle-right",
                HEXAGON, "triangle-left"]


def embedding_frame(points: np.ndarray, labels: np.ndarray, thumbnails: list[str],
                    chosen: str | None = None) -> pd.DataFrame:
    """`embedding_map`'s dots: place, class and picture, the `chosen` class's last."""
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1],
                          "class": [CLASS_NAMES[int(i)] for i in labels], "image": thumbnails})
    if chosen is not None:     # Vega draws the dots in the data's order: the chosen class's last, on top
        frame = frame.iloc[np.argsort(frame["class"].eq(chosen).to_numpy(), kind="stable")].reset_index(drop=True)
    return frame


MAP_SCALE = alt.Scale(zero=False, nice=False, padding=10)   # pixels round the outermost dots


def embedding_map(points: np.ndarray, labels: np.ndarray, thumbnails: list[str],
                  chosen: str | None = None) -> alt.Chart:
    """Pictures as dots on a 2-D map of the network's features; hover shows the picture (`thumbnails`,
    their `data_uri`s, made once for every model's map).

    A `chosen` class (the page's Class box) stands out: its dots larger and solid, drawn over the rest,
    every other class faded. Ten hues are too many to tell apart for a colour-blind eye or at the back
    of a room, and a box works from the keyboard. Without one, clicking a class in the legend does it."""
    frame = embedding_frame(points, labels, thumbnails, chosen)
    # A shape for each class as well as a hue, so that no class is told by colour alone (the legend shows both).
    # In two lines: in one, a phone's screen cut it at "land cl…".
    # Its dots unseen by a screen reader (the page's alt text says what the map shows): each was an item of
    # its own, read with its thumbnail's whole data URI, 3.75 MB of text for 1,000 dots.
    chart = alt.Chart(frame, title=["The network's view:", "similar pictures land close together"]).mark_point(
        filled=True, aria=False).encode(
        # Room round the dots: the outermost sat on the plot's edge, which cuts them (it can be dragged and
        # zoomed), half a dot drawn.
        x=alt.X("x:Q", axis=None, scale=MAP_SCALE), y=alt.Y("y:Q", axis=None, scale=MAP_SCALE),
        color=alt.Color("class:N", scale=CLASS_SCALE),
        shape=alt.Shape("class:N", scale=alt.Scale(domain=list(CLASS_NAMES), range=CLASS_SHAPES)),
        tooltip=["class", "image"])
    if chosen is not None:
        mine = alt.datum["class"] == chosen
        # A dark rim too: some classes' hues (ship's olive, truck's cyan) are pale against white.
        return chart.encode(opacity=alt.condition(mine, alt.value(0.95), alt.value(0.08)),
                            size=alt.condition(mine, alt.value(70), alt.value(30)),
                            stroke=alt.condition(mine, alt.value("#1c1f26"), alt.value(None)),
                            strokeWidth=alt.value(0.8)).interactive()
    pick = alt.selection_point(fields=["class"], bind="legend")
    return chart.encode(opacity=alt.condition(pick, alt.value(0.8), alt.value(0.08)),
                        size=alt.value(40)).add_params(pick).interactive()


def downsample(records: list[dict], limit: int = 400) -> list[dict]:
    """At most about `limit` records, evenly spaced, always keeping the last: charts stay fast."""
    if len(records) <= limit:
        return records
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)] + [records[-1]]


CURVE_QUANTITIES = ("loss", "accuracy")     # what training curves draw, in their panels' order


def curve_frame(metrics: list[dict], run: str = "", earlier: int = 0) -> pd.DataFrame:
    """Long-form points for training curves: one row per (time, quantity, series). `earlier`: epochs to
    count before the run's own (a continued run's, beside the run it continues)."""
    rows = []
    batches = [m for m in metrics if m.get("kind") == "batch"]
    # Steps per epoch, as the trainer records them with every step; for runs recorded before it did, the
    # first epoch's last step (always recorded), which stretches a first epoch still running over a whole one.
    first = max((m["step"] for m in batches if m["epoch"] == 1), default=1)
    for m in downsample(batches):
        steps = m.get("steps") or first
        for quantity in CURVE_QUANTITIES:
            rows.append({"run": run, "epoch": earlier + m["epoch"] - 1 + m["step"] / steps,
                         "seconds": m["elapsed_s"], "quantity": quantity, "series": "training (running)",
                         "value": m[quantity]})
    for m in (m for m in metrics if m.get("kind") == "epoch"):
        for quantity in CURVE_QUANTITIES:
            rows.append({"run": run, "epoch": earlier + m["epoch"], "seconds": m["elapsed_s"], "quantity": quantity,
                         "series": "test (whole test set)", "value": m[f"test_{quantity}"]})
    return pd.DataFrame(rows, columns=["run", "epoch", "seconds", "quantity", "series", "value"])


def drawable(metrics: list[dict]) -> bool:
    """Whether training curves of `metrics` draw anything: a test dot, or a line of at least two points."""
    return (any(m.get("kind") == "epoch" for m in metrics)
            or sum(m.get("kind") == "batch" for m in metrics) >= 2)


TRAINING, TEST = "training (running)", "test (whole test set)"
# Side-by-side panels cannot stretch to their container (Vega-Lite sizes each part of a concatenation
# on its own), so each gets a fixed width: both, with their axes, fit the main column of a 1280-pixel
# window beside the sidebar (about 820 px).
PANEL_WIDTH = 330
PANEL_HEIGHT = 260     # a panel's plot
# Measured in Chromium, from each plot's frame in the page (tests/test_browser_train.py checks them). A plot
# whose top label stands inside it, not half above its top edge (the loss's, now and then), is 2 pixels taller.
PANEL_CHROME = 111     # its title, x axis and padding
KEY_GAP = 28           # between the x axis and a key, where a panel has one: without one, its plot grew by it
KEY_LINE = 26          # a line of a key, one entry a line
# One colour per compared run, each at least 4.5:1 against white (a pale line vanishes on a projector)
# and apart from the others to every kind of colour-blind eye: Paul Tol's blue, rose, indigo and olive
# (darkened) and black. Training and test are told apart by dash, not by shade.
RUN_COLOURS = ["#4477aa", "#bb5566", "#787828", "#332288", "#000000"]
# And a shape for each run's test dots, so that not even the runs depend on colour alone.
RUN_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross"]
# Dashed for the running training figures, solid for the test.
SERIES_DASHES = [[6, 4], [1, 0]]


# A point within a tenth of a step of a round figure gets the next one: at 10.02% the axis ended at 10%,
# and the training line ran along its bottom edge, half cut off.
SHARE_MARGIN = 0.1


def _share_bounds(frame: pd.DataFrame) -> alt.Chart:
    """An unseen rule over the accuracy panel's span, from the round figure below its lowest point to the
    one above its highest (steps of 10%, of 5% over a span of 25% or less), within 0% to 100%: the axis
    reaches both, computed by Vega from whatever points the chart is drawn with (a kept spec's too)."""
    return alt.Chart(frame).transform_filter(alt.datum.quantity == "accuracy").transform_joinaggregate(
        high="max(value)", low="min(value)").transform_calculate(
        step="datum.high - datum.low > 0.25 ? 0.1 : 0.05").transform_calculate(
        top=f"min(1, (floor(datum.high / datum.step + {SHARE_MARGIN}) + 1) * datum.step)",
        bottom=f"max(0, (ceil(datum.low / datum.step - {SHARE_MARGIN}) - 1) * datum.step)").mark_rule(opacity=0).encode(
        y="top:Q", y2="bottom:Q")


def training_curves(frame: pd.DataFrame, colour_by: str = "series") -> alt.Chart:
    """Loss and accuracy (in %) against epochs, side by side, training and test on the same axes, in one
    chart of fixed size (a report's picture); `curve_panels` for a page.

    Training is a dashed line, test a solid one with a dot for each epoch it was measured. Colour tells
    runs apart, never training from test: one run's two lines are both the first run's colour (once a
    colour each, the Train page's watched run was blue and rose for training and test, and the compared
    runs below it blue and rose for two runs); compared runs (`colour_by="run"`) get a colour each, and
    their dots a shape each.
    """
    return alt.hconcat(*_panels(frame, colour_by, PANEL_WIDTH)).resolve_scale(color="shared")


def key_height(lines: int) -> int:
    """What a key of so many lines adds to a panel's height: none without one."""
    return KEY_GAP + KEY_LINE * lines if lines else 0


def curve_panels(frame: pd.DataFrame, colour_by: str = "series") -> list[alt.Chart]:
    """`training_curves` as two charts, loss then accuracy, each as wide as its container: side by side, two
    fixed panels ran off a projector's 1024-pixel window beside the sidebar, and off a phone; a page puts
    them in two columns, which a phone stacks. The runs' key (colour and shape) is under the loss panel, the
    lines' (dashed, solid) under the accuracy one: both under one, they ran past its edge. Streamlit fits
    each chart whole, title, axes and key, into its height (a fullscreen one into the screen's): each is
    as tall as its plot, PANEL_CHROME and its key (`key_height`), so the two plots come out alike."""
    key_lines = (len(set(frame["run"])) if colour_by == "run" else 0, len(SERIES_DASHES))
    # Room on the right for the last epoch's dot, which sits on the plot's edge: a chart is cut at its box.
    return [panel.properties(height=PANEL_HEIGHT + PANEL_CHROME + key_height(lines),
                             padding={"left": 5, "top": 5, "right": 12, "bottom": 5})
            for panel, lines in zip(_panels(frame, colour_by, "container", keys=({"run"}, {"series"})), key_lines)]


def _panels(frame: pd.DataFrame, colour_by: str, width, keys: tuple[set, set] = ({"run", "series"},) * 2
            ) -> list[alt.Chart]:
    """The loss and accuracy panels of `training_curves`, `width` wide, each with the keys named in `keys`
    ("run": colour and shape, "series": dashed or solid)."""
    # In a column of a page, the keys one entry a line, each within the panel's width: side by side, or a
    # long run name at 320 px, they ran past a narrow panel's edge (the tooltip names it whole).
    legend = {"orient": "bottom", "labelLimit": 320} if width != "container" else {
        "orient": "bottom", "direction": "vertical", "labelLimit": alt.ExprRef("max(80, width - 40)")}
    # The dashes' key: lines long enough to show their dash, in the one run's colour; compared runs have a
    # key of their own for colour and shape, and the dashes' is dark grey.
    lines = {**legend, "symbolType": "stroke", "symbolSize": 600, "symbolStrokeWidth": 2}
    if colour_by == "run":
        runs = list(dict.fromkeys(frame["run"]))
        # Rows as tall as the dashes' key's (KEY_LINE): with Vega's 2 pixels between them, two runs' plot
        # came out 4 pixels shorter than the accuracy one beside it.
        colour = alt.Color("run:N", title=None, scale=alt.Scale(domain=runs, range=RUN_COLOURS),
                           legend=alt.Legend(**legend, rowPadding=0))
        marker = {"shape": alt.Shape("run:N", title=None, scale=alt.Scale(domain=runs, range=RUN_SHAPES))}
        lines["symbolStrokeColor"] = "#1c1f26"
    else:
        colour = alt.value(RUN_COLOURS[0])
        marker = {}
        lines["symbolStrokeColor"] = RUN_COLOURS[0]
    # The dashes' key names only the lines drawn: before a run's first test, "test" in it pointed at nothing.
    drawn = [(series, dashes) for series, dashes in zip((TRAINING, TEST), SERIES_DASHES)
             if (frame["series"] == series).any()] or list(zip((TRAINING, TEST), SERIES_DASHES))
    dash_scale = alt.Scale(domain=[series for series, _ in drawn], range=[dashes for _, dashes in drawn])
    charts = []
    # Each axis ends at a round figure past its highest point, so a test dot above the whole training curve
    # sits inside the chart: Vega's own rounding for the loss; for accuracy, whose rounding went on to 110%,
    # an unseen rule from the round figures just outside its points, never past 100% or below 0%.
    for keyed, (quantity, title, axis, number, scale) in zip(keys, (
            ("loss", "Loss (lower is better)", alt.Axis(), ".3f", alt.Scale(zero=False, nice=True, padding=8)),
            ("accuracy", "Accuracy (higher is better)", alt.Axis(format=".0%"), ".1%",
             alt.Scale(zero=False, nice=False)))):
        dash = alt.StrokeDash("series:N", title=None, scale=dash_scale,
                              legend=alt.Legend(**lines) if "series" in keyed else None)
        base = alt.Chart(frame).transform_filter(alt.datum.quantity == quantity).encode(
            x=alt.X("epoch:Q", title="epoch", scale=alt.Scale(nice=False)),
            y=alt.Y("value:Q", title=None, scale=scale, axis=axis),
            color=colour if "run" in keyed or colour_by != "run" else colour.legend(None),
            tooltip=["run", "series", alt.Tooltip("epoch:Q", format=".2f"),
                     alt.Tooltip("seconds:Q", format=".0f", title="training seconds"),
                     alt.Tooltip("value:Q", format=number, title=quantity)])
        line = base.mark_line(clip=True, strokeWidth=2).encode(strokeDash=dash)
        shapes = marker if "run" in keyed or not marker else {"shape": marker["shape"].legend(None)}
        dots = base.mark_point(filled=True, size=60, opacity=1).encode(**shapes) \
            .transform_filter(alt.datum.series == TEST)
        layers = [line, dots] if quantity == "loss" else [line, dots, _share_bounds(frame)]
        charts.append(alt.layer(*layers).properties(title=title, height=PANEL_HEIGHT, width=width))
    return charts


# The confusion matrix's share from which its squares' text is white: 69% of the way along its shading,
# which runs by the share's square root (below).
WHITE_TEXT_FROM = 0.69 ** 2


CONFUSION_SIDE = 480     # pixels: the confusion matrix's squares, all ten by ten, where its width allows
CONFUSION_NAMES = 120    # pixels beside them for the class names and the axis title, where a width is not given
# What a page keeps for the matrix while Vega draws it (app_pages/chart_specs.hold_place), in the column's
# width (100cqw): the squares' side, the column less the 105 pixels of class names beside them, and the
# 105 pixels of class names above them (measured in Chromium; the 28 below are let go).
CONFUSION_HELD = f"calc(min({CONFUSION_SIDE}px, 100cqw - 105px) + 105px)"


def confusion_frame(counts: np.ndarray, chosen: tuple[int, int] | None = None) -> pd.DataFrame:
    """The confusion matrix's squares, row by row, as `confusion` draws them."""
    rows = [{"true": CLASS_NAMES[t], "predicted": CLASS_NAMES[p], "images": int(counts[t, p]),
             "share": float(counts[t, p] / max(1, counts[t].sum())), "chosen": int((t, p) == chosen)}
            for t in range(len(CLASS_NAMES)) for p in range(len(CLASS_NAMES))]
    for row, total in zip(rows, np.repeat(np.maximum(1, counts.sum(axis=1)), len(CLASS_NAMES))):
        # A square's text: whole percentages, never 0% for a few pictures nor 100% short of all; halves up,
        # in whole numbers (formatting rounds a half to even: 825 and 815 of 1,000 were both "82%").
        share = row["share"] * 100
        whole = (200 * row["images"] + int(total)) // (2 * int(total))
        row["label"] = "<1%" if 0 < share < 1 else ">99%" if 99 < share < 100 else f"{whole}%"
    return pd.DataFrame(rows)


def confusion(counts: np.ndarray, as_share: bool = False, chosen: tuple[int, int] | None = None) -> alt.Chart:
    """The confusion matrix as a heat map; clicking a cell selects it (selection parameter "cell").

    Each square is written as its number of pictures, or with `as_share` as the
    percentage of its row (of the pictures of that true class): with classes of
    different sizes, only the percentages compare across rows. The shading is
    always the percentage, so both views look alike, by its square root: shaded
    in proportion, every mix-up (76 of a class's 1,000 pictures, 8%) was the
    same pale blue as none at all. The `chosen` square (true and predicted
    class), however it was chosen, click or keyboard, is framed.

    Drawn as wide as its container (Streamlit gives the chart its container's width), the squares take
    CONFUSION_SIDE pixels or, where the width is less, the width beside the class names: on a phone all ten
    columns show, where a 480-pixel matrix had to be slid sideways inside itself.
    """
    cell = alt.selection_point(name="cell", fields=["true", "predicted"], on="click", clear=False, empty=False)
    # The squares' side: Vega's width is the view's, the chart's width less the class names ("fit-x").
    side = alt.param(name="side", expr=f"min({CONFUSION_SIDE}, width)")
    squared = alt.Scale(range=[0, alt.ExprRef("side")])
    # The view is one pixel high and grows to hold the squares ("pad" down the page), so the classes the
    # model said head the columns: along the bottom they were drawn at the view's full height, however
    # small the squares.
    base = alt.Chart(confusion_frame(counts, chosen)).encode(
        x=alt.X("predicted:N", sort=list(CLASS_NAMES), title="the model said", scale=squared,
                axis=alt.Axis(orient="top")),
        y=alt.Y("true:N", sort=list(CLASS_NAMES), title="the picture really is", scale=squared))
    squares = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1], type="sqrt"), legend=None),
        stroke=alt.condition(alt.datum.chosen == 1, alt.value("#ff4b4b"), alt.value(None)), strokeWidth=alt.value(3),
        tooltip=["true", "predicted", alt.Tooltip("images:Q", title="pictures"),
                 alt.Tooltip("share:Q", format=".1%", title="% of the row")]
    ).add_params(cell)
    # 14 px, legible at the back of a room: "1000" is about 28 pixels of a 48-pixel square (a digit is half
    # the text's size, measured in Chromium). Smaller squares (a phone's 25 pixels) get the largest text in
    # which "1000" still fits, with a tenth to spare and 3 pixels of margin.
    # White text only where it reads better than dark: on the "blues" scheme that is from 69% of the way
    # (#3383be, 4.1:1 against white and 4.0:1 against the dark text); below that, dark text has the greater
    # contrast.
    # Squares under 16 pixels (a column under 265) go without: even 8-pixel text spilled out of them.
    numbers = base.mark_text(fontSize=alt.ExprRef("clamp(floor((side / 10 - 3) / 2.2), 8, 14)"),
                             opacity=alt.ExprRef("side < 160 ? 0 : 1")).encode(
        text="label:N" if as_share else "images:Q",
        color=alt.condition(alt.datum.share >= WHITE_TEXT_FROM, alt.value("white"), alt.value("#1c1f26")))
    # `resize`: the height is worked out again whenever the width changes. Without it Vega kept the height of
    # the first width it was given, wider than a phone's column: 95 blank pixels under the squares there.
    return (squares + numbers).add_params(side).properties(
        width=CONFUSION_SIDE + CONFUSION_NAMES, height=1,
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding", resize=True))


FEW_ANSWERS = 100     # a confidence group holding fewer is drawn faint: its share right is mostly chance


def reliability(rows: list[dict]) -> alt.Chart:
    """Confidence against accuracy: on the diagonal, the model is as sure as it deserves to be."""
    frame = pd.DataFrame(rows, columns=["confidence", "accuracy", "answers"]).sort_values("confidence")
    frame["stretch"] = (frame["answers"] < FEW_ANSWERS).cumsum()
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(strokeDash=[4, 4], color="grey").encode(
        x="x:Q", y="y:Q")
    base = alt.Chart(frame).encode(
        x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="how sure it was"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="how often it was right"),
        # Titled as the axes are: "accuracy" here is one group's share right, not the model's accuracy.
        tooltip=[alt.Tooltip("confidence:Q", format=".1%", title="how sure it was"),
                 alt.Tooltip("accuracy:Q", format=".1%", title="how often it was right"),
                 alt.Tooltip("answers:Q", title="answers in this group")])
    # A line of fixed width through the bins, and a dot per bin sized by its answers: a size encoding on
    # the line itself would thin it to nothing.
    # A group of a few dozen answers is mostly chance (the bundled model's 38 answers at 31% sure, right
    # 21% of the time, read as over-confidence): faint, as the page's caption says, and so is the line to
    # it; the line through the groups that hold enough answers is drawn over that one in full.
    faint_line = base.mark_line(strokeWidth=2.5, opacity=0.3)
    # Broken at a faint group, not drawn straight across it to the next full one: a path of its own for each
    # stretch of full groups between faint ones.
    line = base.transform_filter(alt.datum.answers >= FEW_ANSWERS).mark_line(strokeWidth=2.5).encode(
        detail="stretch:N")
    dots = base.mark_circle().encode(
        size=alt.Size("answers:Q", legend=None, scale=alt.Scale(range=[40, 400])),
        opacity=alt.condition(alt.datum.answers < FEW_ANSWERS, alt.value(0.3), alt.value(0.9)))
    return (diagonal + faint_line + line + dots).properties(title="Is it as sure as it should be?", height=320)


def compare_classes(per_class: dict[str, dict[str, float]]) -> alt.Chart:
    """Each class's accuracy (its recall: the share of its test pictures named right) for several
    models, side by side; named as Evaluate's table and Look inside's heat map name it."""
    frame = pd.DataFrame([{"model": model, "class": name, "right": value}
                          for model, scores in per_class.items() for name, value in scores.items()])
    # In the order given (the page's model first, on the left of each pair), in the runs' colours: dark
    # enough to read on white, apart to every colour-blind eye (Streamlit's own two blues were 1.8:1).
    models = list(per_class)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("class:N", sort=list(CLASS_NAMES), title=None),
        xOffset=alt.XOffset("model:N", sort=models),
        y=alt.Y("right:Q", title="right", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", scale=alt.Scale(domain=models, range=RUN_COLOURS[:len(models)]),
                        # Names whole, one a line: side by side, a phone cut the second one's name.
                        legend=alt.Legend(orient="bottom", title=None, labelLimit=0, direction="vertical")),
        tooltip=["model", "class", alt.Tooltip("right:Q", format=".1%", title="pictures right")]
    ).properties(height=300)


def heat_key(colours: tuple[str, ...]) -> alt.Chart:
    """The colour key of a heat map: a bar running through `colours` from "not at all" to "the most".

    No title in the chart (the page puts one above it): a chart stretched to its column is fitted,
    title and axis included, into its height, and a title would leave the bar no room."""
    frame = pd.DataFrame({"share": np.linspace(0, 1, 51)})
    bar = alt.Chart(frame).mark_rect(aria=False).encode(      # 51 slices, each read as numbers otherwise
        x=alt.X("share:Q", scale=alt.Scale(domain=[0, 1.02], nice=False),
                axis=alt.Axis(values=[0, 0.5, 1], labelExpr="datum.value == 0 ? 'not at all' : "
                              "datum.value == 1 ? 'the most' : 'half as much'", title=None, grid=False,
                              labelFlush=True)),   # end labels inside the bar, never cut off
        x2=alt.X2("end:Q"),
        color=alt.Color("share:Q", legend=None,
                        scale=alt.Scale(domain=[0, 1], range=list(colours), interpolate="rgb")))
    return bar.transform_calculate(end="datum.share + 0.02").properties(height=80).configure_view(strokeWidth=0)
