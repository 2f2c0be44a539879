"""Chart builders: the data they draw, and that long runs stay light to send."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from cifar_core import charts, data
from cifar_core.data import CLASS_NAMES


def fake_metrics(epochs=30, steps=200):
    records = []
    for e in range(1, epochs + 1):
        for s in range(1, steps + 1):
            records.append({"kind": "batch", "epoch": e, "step": s, "elapsed_s": e * 10 + s / 20,
                            "loss": 2.0 / e, "accuracy": 1 - 1 / (e + 1)})
        records.append({"kind": "epoch", "epoch": e, "elapsed_s": e * 10 + 10, "loss": 2.0 / e,
                        "accuracy": 0.5, "test_loss": 1.0, "test_accuracy": 0.6, "images_per_s": 100.0})
    return records


def test_curves_of_a_long_run_are_downsampled_but_keep_every_epoch_and_the_last_point():
    metrics = fake_metrics()
    frame = charts.curve_frame(metrics, "run")
    training = frame[frame.series == "training (running)"]
    test = frame[frame.series == "test (whole test set)"]
    assert len(training) <= 2 * 401                   # 6,000 batch records -> at most ~400 points per curve
    assert len(test) == 2 * 30                        # every epoch's test loss and accuracy
    assert training.epoch.max() == 30.0               # the newest point is always drawn
    assert np.all(np.diff(training[training.quantity == "loss"].epoch) > 0)
    charts.training_curves(frame).to_dict()           # a valid Vega-Lite spec


def test_a_first_epoch_still_running_is_drawn_as_far_as_it_got():
    """40 steps of 160: a quarter of the way to epoch 1, not all of it (the trainer records the steps an
    epoch has with every step; a run recorded before that is stretched over its first epoch, as it was)."""
    metrics = [{"kind": "batch", "epoch": 1, "step": s, "steps": 160, "elapsed_s": s / 10, "loss": 2.0,
                "accuracy": 0.3} for s in (10, 20, 40)]
    assert charts.curve_frame(metrics, "run").epoch.max() == 0.25
    older = [{k: v for k, v in m.items() if k != "steps"} for m in metrics]
    assert charts.curve_frame(older, "run").epoch.max() == 1.0


def test_image_grid_marks_the_picked_picture():
    images = np.zeros((12, 32, 32, 3), np.uint8)
    spec = charts.image_grid(images, np.arange(12) % 10, np.arange(100, 112), selected=105).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [v["index"] for v in values] == list(range(100, 112))
    assert values[11]["position"] == 11
    assert all(v["image"].startswith("data:image/png;base64,") for v in values)
    assert [v["index"] for v in values if v["chosen"]] == [105]


def test_the_image_grids_look_is_the_same_for_any_pictures():
    """Explore draws a grid from a spec kept once (app_pages/chart_specs.py): the pictures, their classes,
    the chosen one's frame and how many there are must all come with the data, none in the spec."""
    from app_pages import chart_specs
    rng = np.random.default_rng(0)
    one = charts.image_grid(rng.integers(0, 255, (50, 32, 32, 3), np.uint8), np.arange(50) % 10, np.arange(50),
                            selected=7)
    other = charts.image_grid(np.zeros((50, 32, 32, 3), np.uint8), np.full(50, 3), np.arange(1000, 1050))
    def look(chart):    # Altair names each view anew; the name ties the selection to it within one spec
        return re.sub(r"view_[0-9a-f_]+", "view", json.dumps(chart_specs.template(chart), sort_keys=True))
    assert look(one) == look(other)
    shorter = charts.image_grid(np.zeros((12, 32, 32, 3), np.uint8), np.zeros(12, np.int64), np.arange(12))
    assert look(shorter) == look(other)
    # Its rows hold as many pictures as its width does, up to ten: five on a phone.
    spec = chart_specs.template(other)
    assert {"name": "fit", "expr": "max(1, min(10, floor(width / 64)))"} in spec["params"]


def test_upscale_is_nearest_neighbour():
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = charts.upscale(image, 3)
    assert big.shape == (6, 6, 3) and (big[:3, :3] == image[0, 0]).all() and (big[3:, 3:] == image[1, 1]).all()


def test_the_reliability_curve_is_a_visible_line_with_one_dot_per_bin():
    import numpy as np

    from cifar_core import charts, evaluation
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, 2000)
    rows = evaluation.calibration(probs, rng.integers(0, 10, 2000))
    spec = charts.reliability(rows).to_dict()
    marks = [layer["mark"] for layer in spec["layer"]]
    line = next(m for m in marks if m["type"] == "line" and "strokeDash" not in m)
    assert line["strokeWidth"] >= 2
    line_layer = next(layer for layer in spec["layer"] if layer["mark"] is line)
    assert "size" not in line_layer.get("encoding", {})          # a sized line draws as nearly nothing
    assert any(m["type"] == "circle" for m in marks)
    assert len(rows) >= 5


def test_the_live_curves_are_the_altair_chart_with_its_points_sent_apart():
    """The Train page's live chart: one spec made once, and each change's points as Arrow bytes. Drawn,
    it must be exactly the chart Altair makes of the same records, data and all."""
    import io
    import json

    import pyarrow as pa

    from app_pages import chart_cache, chart_specs
    training = [{"kind": "batch", "epoch": e, "step": s, "elapsed_s": e * 10 + s, "loss": 2.0 / (e + s),
                 "accuracy": 0.1 * s} for e in (1, 2) for s in (1, 2, 3)]
    tests = [{"kind": "epoch", "epoch": e, "elapsed_s": e * 10.0, "test_loss": 1.5 / e, "test_accuracy": 0.3 * e}
             for e in (1, 2)]
    # Before its first test a run has only its running line, and the key names only that: "test" in it
    # pointed at nothing. The chart keeps its height, so that it does not jump when the first dot comes.
    for metrics, key in ((training[:3], [charts.TRAINING]), (training + tests, [charts.TRAINING, charts.TEST])):
        templates, name = chart_cache._curves_template(chart_cache._lines(metrics))
        points = chart_cache._curves_points("run-1", (len(metrics),), "my run", metrics)
        panels = charts.curve_panels(charts.curve_frame(metrics, "my run"))
        for template, part, panel, quantity in zip(templates, points, panels, charts.CURVE_QUANTITIES, strict=True):
            drawn = pa.ipc.open_stream(io.BytesIO(part)).read_all().to_pylist()
            altair_spec = chart_specs.vega_lite(panel)
            (altair_name, altair_rows), = altair_spec.pop("datasets").items()
            # Each panel is sent its own quantity's points, the only ones it draws: two send what one chart did.
            assert drawn == [row for row in altair_rows if row["quantity"] == quantity]
            assert len(drawn) == len(metrics)     # a point per record
            assert json.dumps(template, sort_keys=True) == json.dumps(altair_spec, sort_keys=True).replace(altair_name, name)
            assert template["layer"][0]["encoding"]["strokeDash"]["scale"]["domain"] == key
            assert template["height"] == charts.PANEL_HEIGHT + charts.PANEL_CHROME + charts.key_height(
                2 if quantity == "accuracy" else 0)


def test_the_curves_panels_fit_their_columns_and_share_out_the_keys():
    """Side by side in one chart, two fixed 330-pixel panels ran off a projector's 1024-pixel window beside
    the sidebar, and off a phone: two charts, each as wide as its column, the runs' key under the loss
    panel and the lines' under the accuracy one (both under one ran past its edge), each plot its height."""
    for colour_by, frame in (("series", charts.curve_frame(fake_metrics(2, 3), "a")),
                             ("run", pd.concat([charts.curve_frame(fake_metrics(2, 3), name) for name in "ab"]))):
        loss, accuracy = (panel.to_dict() for panel in charts.curve_panels(frame, colour_by=colour_by))
        assert loss["width"] == accuracy["width"] == "container" and "autosize" not in loss   # Streamlit's fit
        # Each as tall as its plot, its title and axis, and its key's lines: the two plots alike.
        lines = (2 if colour_by == "run" else 0, 2)
        assert [loss["height"], accuracy["height"]] == [charts.PANEL_HEIGHT + charts.PANEL_CHROME + charts.key_height(n)
                                                        for n in lines]
        assert [loss["title"], accuracy["title"]] == ["Loss (lower is better)", "Accuracy (higher is better)"]
        for spec, keyed in ((loss, {"color", "shape"}), (accuracy, {"strokeDash"})):
            shown = {channel for layer in spec["layer"][:2] for channel, encoding in layer["encoding"].items()
                     if channel in ("color", "strokeDash", "shape") and "field" in encoding
                     and encoding.get("legend", {}) is not None}
            assert shown == (keyed if colour_by == "run" else keyed - {"color", "shape"}), (colour_by, shown)


def test_compared_curves_are_the_chart_altair_makes_built_once_per_set_of_names(monkeypatch):
    """A live board with runs compared built the whole chart every refresh (0.19 s of CPU), as a training
    run's points change every second: the spec is made once per set of names, only the points per change.
    A continued run's epochs count on from those of the run it continues."""
    import io
    import json

    import pyarrow as pa

    from app_pages import chart_cache, chart_specs
    built = []
    real = charts.curve_panels
    monkeypatch.setattr(charts, "curve_panels", lambda *a, **k: built.append(1) or real(*a, **k))
    parent, child = fake_metrics(3, 4), fake_metrics(2, 4)
    named = [("parent", parent, 0), ("child", child, 3)]
    templates, name = chart_cache._compared_template(("parent", "child"), (True, True))
    points = [chart_cache._compared_points(("p", stamp, "c", stamp), named) for stamp in (1, 2)]
    assert len(built) == 1 and points[0] == points[1]
    frame = pd.concat([charts.curve_frame(parent, "parent"), charts.curve_frame(child, "child", 3)])
    for template, part, panel, quantity in zip(templates, points[1], real(frame, colour_by="run"),
                                               charts.CURVE_QUANTITIES, strict=True):
        drawn = pa.ipc.open_stream(io.BytesIO(part)).read_all().to_pylist()
        altair_spec = chart_specs.vega_lite(panel)
        (altair_name, altair_rows), = altair_spec.pop("datasets").items()
        assert drawn == [row for row in altair_rows if row["quantity"] == quantity]
        assert json.dumps(template, sort_keys=True) == json.dumps(altair_spec, sort_keys=True).replace(altair_name, name)
        assert min(r["epoch"] for r in drawn if r["run"] == "child") > 3       # after the parent's three epochs


def test_curves_of_one_measurement_are_not_drawn_as_empty_axes():
    """A run stopped in its first batch, or diverged at its second, has one training record: a line of one
    point draws nothing, and the page drew bare axes under a caption about lines."""
    one = [{"kind": "batch", "epoch": 1, "step": 1, "elapsed_s": 0.5, "loss": 2.3, "accuracy": 0.1}]
    assert not charts.drawable(one) and not charts.drawable([])
    assert charts.drawable(one * 2) and charts.drawable([{"kind": "epoch", "epoch": 1}])
    from app_pages import train_parts
    assert train_parts.picked_rows(7, 3) == [] and train_parts.picked_rows(None, 3) == []   # a script's selection


def test_a_kept_spec_comes_out_of_a_drawing_as_it_went_in():
    import json

    from app_pages import chart_cache, chart_specs
    records = [{"kind": "epoch", "epoch": 1, "elapsed_s": 5.0, "test_loss": 1.5, "test_accuracy": 0.3}]
    (template, _), name = chart_cache._curves_template(chart_cache._lines(records))
    points, _ = chart_cache._curves_points("run-2", (3, 4), "my run", records)
    kept = {**template, "datasets": {name: points}}
    before = json.dumps({**kept, "datasets": None}, sort_keys=True)
    for _ in range(2):
        chart_specs.draw(kept, width="stretch")
        assert kept["datasets"] == {name: points}
        assert json.dumps({**kept, "datasets": None}, sort_keys=True) == before


def test_channel_histograms_count_as_numpy_histogram_does():
    images = np.random.default_rng(3).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = 255                         # the top bin's right edge belongs to it
    frame = charts.channel_histograms(images).data
    edges = np.linspace(0, 256, 65)
    for channel, name in enumerate(("red", "green", "blue")):
        counts, _ = np.histogram(images[..., channel], bins=edges)
        shown = frame[frame["channel"] == name]
        np.testing.assert_allclose(shown["share"][:-1], counts / counts.sum())
        np.testing.assert_array_equal(shown["value"], edges)    # the last bin closed at 256, drawn as wide
        assert shown["share"].iloc[-1] == shown["share"].iloc[-2]
        assert list(shown["values"][:2]) == ["0-3", "4-7"]       # each point is 4 values' share, and says so
    assert charts.channel_histograms(images).to_dict()["encoding"]["y"]["title"] == "share of pixels, per 4 values"


def test_channel_histograms_count_a_slice_of_pictures_at_a_time(monkeypatch):
    """bincount copies what it counts to int64: the 50,000 training pictures' channel at once was 410 MB."""
    import tracemalloc
    images = np.random.default_rng(4).integers(0, 256, (5000, 32, 32, 3), dtype=np.uint8)
    whole = charts.channel_histograms(images).data
    monkeypatch.setattr(charts, "HISTOGRAM_SLICE", 7)          # slices that do not divide the pictures
    pd.testing.assert_frame_equal(charts.channel_histograms(images).data, whole)
    monkeypatch.setattr(charts, "HISTOGRAM_SLICE", 1000)
    tracemalloc.start()
    charts.channel_histograms(images)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 15 << 20        # a channel of all 5,000 at once: 41 MB


def test_the_feature_map_shows_each_picture_by_its_thumbnail_made_once():
    rng = np.random.default_rng(0)
    images, labels, points = rng.integers(0, 256, (6, 32, 32, 3), np.uint8), np.arange(6) % 10, rng.normal(size=(6, 2))
    thumbnails = [charts.data_uri(i) for i in images]
    rows = next(iter(charts.embedding_map(points, labels, thumbnails).to_dict()["datasets"].values()))
    assert len(rows) == 6 and [r["image"] for r in rows] == thumbnails
    assert [r["class"] for r in rows] == [CLASS_NAMES[i] for i in labels]
    # A shape for each class as well as a colour, ten different ones: no class told by colour alone.
    shape = charts.embedding_map(points, labels, thumbnails).to_dict()["encoding"]["shape"]
    assert shape["field"] == "class" and shape["scale"]["domain"] == list(CLASS_NAMES)
    assert len(set(shape["scale"]["range"])) == len(CLASS_NAMES)


def test_a_probability_bars_tooltip_never_reads_certain_short_of_certainty():
    probs = np.array([0.9997, 0.0003] + [0.0] * 8)
    frame = charts.probability_frame(probs)
    shown = dict(zip(frame["class"], frame["shown"]))
    assert f"{shown[CLASS_NAMES[0]]:.1%}" == "99.9%" and f"{shown[CLASS_NAMES[1]]:.1%}" == "0.1%"
    # Even a float32 0.0 (a softmax is never certain, either way), as the bar's words say "under 1%".
    assert f"{shown[CLASS_NAMES[2]]:.1%}" == "0.1%" and list(frame["probability"])[:2] == [0.9997, 0.0003]
    for layer in charts.probabilities(probs).to_dict()["layer"]:      # over the bar and over its words
        assert {"field": "shown", "type": "quantitative", "title": "probability", "format": ".1%"} \
            in layer["encoding"]["tooltip"]


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two colours, #rrggbb or a name Vega knows here."""
    def luminance(colour):
        colour = {"white": "#ffffff", "black": "#000000"}.get(colour, colour)
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        return float(np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4) @ [0.2126, 0.7152, 0.0722])
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_each_probability_is_written_at_its_bars_end_as_the_app_writes_a_sure():
    """On a projector there is no hover: the figures are drawn, worded as every "% sure" (never 100% short
    of certainty), and the axis runs on past 100% so that the words fit."""
    from cifar_core import evaluation
    probs = np.array([0.9997, 0.0003] + [0.0] * 8)
    frame = charts.probability_frame(probs)
    assert list(frame["sure"])[:3] == ["over 99%", "under 1%", "under 1%"]
    assert list(frame["sure"]) == [evaluation.sure(p) for p in frame["probability"]]
    spec = charts.probabilities(probs).to_dict()
    words = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "text")
    assert words["encoding"]["text"]["field"] == "sure" and words["mark"]["align"] == "left"
    x = words["encoding"]["x"]
    assert x["field"] == "probability" and x["scale"]["domain"][1] >= 1.2
    assert max(x["axis"]["values"]) == 1                      # the axis itself stops at 100%
    assert list(charts.probability_frame(probs, top=3)["sure"]) == ["over 99%", "under 1%", "under 1%"]


def test_the_probability_bars_are_drawn_most_likely_first():
    """Drawn by Vega itself (vl_convert): the bars and their words share a class axis, and Vega-Lite drops
    a sort from such a shared axis unless it can union it, leaving the classes in alphabetical order."""
    import vl_convert
    probs = np.array([0.01, 0.02, 0.9, 0.03, 0.04] + [0.0] * 5)
    svg = vl_convert.vegalite_to_svg(charts.probabilities(probs).to_dict())
    words = re.search(r'<g class="mark-text role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S).group(1)
    # Each class's words, top to bottom: bird 90%, deer 4%, cat 3%, automobile 2%, airplane 1%.
    drawn = sorted((float(y), said) for y, said in
                   re.findall(r'transform="translate\([^,]+,([^)]+)\)"[^>]*>([^<]*)</text>', words))
    assert [said for _, said in drawn][:5] == ["90%", "4%", "3%", "2%", "1%"]


def test_the_channels_are_told_apart_by_dash_as_well_as_by_colour():
    """Red and green are one colour to a red-green colour-blind eye: each channel has a dash of its own."""
    encoding = charts.channel_histograms(np.zeros((2, 32, 32, 3), np.uint8)).to_dict()["encoding"]
    dash = encoding["strokeDash"]
    assert dash["field"] == encoding["color"]["field"] == "channel"
    assert dash["scale"]["domain"] == ["red", "green", "blue"]
    assert len({tuple(d) for d in dash["scale"]["range"]}) == 3


def test_the_map_picks_out_the_chosen_class_without_relying_on_its_colour():
    rng = np.random.default_rng(0)
    labels, points = np.arange(30) % 10, rng.normal(size=(30, 2))
    thumbnails = [f"data:image/png;base64,{i}" for i in range(30)]
    spec = charts.embedding_map(points, labels, thumbnails, chosen="cat").to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert [r["class"] for r in rows[-3:]] == ["cat"] * 3          # drawn last: on top of the others
    assert sorted(r["image"] for r in rows) == sorted(thumbnails)
    encoding = spec["encoding"]
    for channel in ("opacity", "size"):       # the chosen class solid and larger, the rest faded and smaller
        condition = encoding[channel]["condition"]
        assert "'cat'" in condition["test"] and condition["value"] > encoding[channel]["value"]
    assert encoding["opacity"]["value"] <= 0.1
    def legend_picks(spec):
        return [p for p in spec.get("params", []) if p.get("bind") == "legend"]
    assert not legend_picks(spec)              # the legend does not pick another class over the box's
    everything = charts.embedding_map(points, labels, thumbnails).to_dict()
    assert legend_picks(everything)            # with none chosen, clicking the legend picks one


def test_the_confusion_matrix_text_is_large_and_white_only_where_white_reads_better():
    """Drawn by Vega itself (vl_convert): in every square, the colour of its number is whichever of white
    and the dark text has the greater contrast with the square's shade, give or take the one step of the
    scheme at the crossing."""
    import vl_convert
    counts = np.array([[100 - k if p == t else (k if p == (t + 1) % 10 else 0) for p in range(10)]
                       for t, k in enumerate(range(0, 100, 10))])      # rows of 100%, 90%, ... 10% right
    spec = charts.confusion(counts).to_dict()
    svg = vl_convert.vegalite_to_svg(spec)
    assert set(re.findall(r'<text[^>]*font-size="(\d+)px"[^>]*>\d+</text>', svg)) == {"14"}   # the squares' numbers

    def colours(role):
        mark = re.search(rf'<g class="mark-{role} role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S).group(1)
        return [rgb(c) for c in re.findall(r'fill="([^"]+)"', mark)]

    def rgb(colour):
        if colour.startswith("rgb("):
            return "#" + "".join(f"{round(float(v)):02x}" for v in re.findall(r"[\d.]+", colour))
        return colour
    squares, texts = colours("rect"), colours("text")
    assert len(squares) == len(texts) == 100
    shares = [counts[t, p] / counts[t].sum() for t in range(10) for p in range(10)]
    for share, square, text in zip(shares, squares, texts):
        better = max(("white", "#1c1f26"), key=lambda c: contrast(c, square))
        if abs(share - charts.WHITE_TEXT_FROM) > 0.02:
            assert text.lower() in (better, "#ffffff" if better == "white" else better), (share, square, text)


def test_the_confusion_matrix_rounds_a_half_percent_up_every_time():
    """825 and 815 of 1,000 were both "82%" (formatting rounds a half to even), beside 82.5% and 81.5% elsewhere."""
    counts = np.zeros((10, 10), int)
    for t, right in enumerate([825, 815, 995, 5, 1000, 0, 505, 515, 125, 135]):
        counts[t, t], counts[t, (t + 1) % 10] = right, 1000 - right
    spec = charts.confusion(counts).to_dict()
    labels = {(r["true"], r["predicted"]): r["label"] for rows in spec["datasets"].values() for r in rows}
    diagonal = [labels[(name, name)] for name in CLASS_NAMES]
    assert diagonal == ["83%", "82%", ">99%", "<1%", "100%", "0%", "51%", "52%", "13%", "14%"]


@pytest.mark.parametrize("width", [358, 1000])
def test_the_confusion_matrix_fits_its_width_up_to_its_full_size(width):
    """Drawn by Vega itself at a phone's column (358 pixels) and a laptop's: the ten columns of squares fit
    the width (on a phone the matrix was slid sideways inside itself), at most 48 pixels a square, with
    smaller text in smaller squares (that it fits them is measured in a browser, test_browser_screens.py)."""
    import vl_convert
    spec = charts.confusion(np.full((10, 10), 1000)).to_dict()
    spec["width"] = width           # as Streamlit gives it its container's width
    svg = vl_convert.vegalite_to_svg(spec)
    assert float(re.search(r'<svg[^>]*width="([\d.]+)"', svg).group(1)) <= width
    left = float(re.search(r'<g [^>]*transform="translate\(([\d.]+),', svg).group(1))     # the class names
    squares = [tuple(map(float, m)) for m in re.findall(r'aria-roledescription="rect mark" d="M([\d.]+),([\d.]+)h([\d.]+)v', svg)]
    sides = {round(side, 1) for _, _, side in squares}
    assert len(squares) == 100 and len(sides) == 1, sides
    (side,) = sides
    assert left + max(x for x, _, _ in squares) + side <= width        # the tenth column in sight
    assert side == 48 if width == 1000 else 20 < side < 48
    (size,) = {int(size) for size in re.findall(r'<text[^>]*font-size="(\d+)px"[^>]*>1000</text>', svg)}
    assert size == 14 if width == 1000 else 8 <= size < 14


def test_the_chosen_square_of_the_confusion_matrix_is_framed_however_it_was_chosen():
    counts = np.arange(100).reshape(10, 10)
    rows = next(iter(charts.confusion(counts, chosen=(3, 5)).to_dict()["datasets"].values()))
    assert [(r["true"], r["predicted"]) for r in rows if r["chosen"]] == [(CLASS_NAMES[3], CLASS_NAMES[5])]
    assert not any(r["chosen"] for r in next(iter(charts.confusion(counts).to_dict()["datasets"].values())))


def test_compared_runs_are_dark_told_apart_by_shape_and_training_by_dash():
    """A projector washes pale lines out: every run's colour is at least 4.5:1 against white, training is
    dashed and test solid (not a lighter and a darker shade), and each run's test dots have a shape."""
    import pandas as pd
    assert all(contrast(c, "white") >= 4.5 for c in charts.RUN_COLOURS)
    assert len(set(charts.RUN_COLOURS)) == len(set(charts.RUN_SHAPES)) == len(charts.RUN_COLOURS)
    metrics = fake_metrics(3, 5)
    frame = pd.concat([charts.curve_frame(metrics, name) for name in ("a", "b", "c")])
    for panel in charts.training_curves(frame, colour_by="run").to_dict()["hconcat"]:
        line, dots = panel["layer"][:2]           # (accuracy has a third: its unseen bounds)
        assert line["encoding"]["color"]["field"] == dots["encoding"]["color"]["field"] == "run"
        assert line["encoding"]["color"]["scale"] == {"domain": ["a", "b", "c"], "range": charts.RUN_COLOURS}
        dash = line["encoding"]["strokeDash"]
        assert dash["field"] == "series" and dash["scale"]["domain"] == [charts.TRAINING, charts.TEST]
        training, test = dash["scale"]["range"]
        assert len(training) == 2 and training[1] > 0 and test[1] == 0         # dashed, and solid
        assert dots["encoding"]["shape"]["field"] == "run"
        assert dots["encoding"]["shape"]["scale"]["range"] == charts.RUN_SHAPES


def test_one_runs_training_curve_is_the_dashed_one_as_the_page_says():
    from app_pages import train_parts
    assert "the dashed line is the training" in train_parts.SAW_TOOTH
    for panel in charts.training_curves(charts.curve_frame(fake_metrics(3, 5), "a")).to_dict()["hconcat"]:
        line, dots = panel["layer"][:2]           # (accuracy has a third: its unseen bounds)
        assert line["encoding"]["strokeDash"]["field"] == "series"
        assert line["encoding"]["strokeDash"]["scale"]["range"][0] == charts.SERIES_DASHES[0] != [1, 0]
        assert contrast(line["encoding"]["color"]["value"], "white") >= 4.5


def test_the_kept_probability_bars_draw_any_probabilities_with_every_field_they_use():
    """Predict and Explore draw the bars from a spec made once per server (app_pages/chart_specs.py): it
    must be the chart for any probabilities, and its data must hold every field it reads (the words too)."""
    from app_pages import chart_specs
    kept = chart_specs._probability_bars()
    other = chart_specs.template(charts.probabilities(np.array([0.9997, 0.0003] + [0.0] * 8), top=3))
    assert json.dumps(kept, sort_keys=True) == json.dumps(other, sort_keys=True)
    fields = set(re.findall(r'"field": "(\w+)"', json.dumps(kept)))
    columns = set(charts.probability_frame(np.full(10, 0.1)).columns)
    assert {"probability", "class", "shown", "sure"} <= fields <= columns


def test_the_curves_keep_a_test_dot_above_every_training_point_inside_the_chart():
    """A one-epoch run's test dot above its whole training curve sat on the chart's top edge, half outside:
    the axis ends at a round figure past it, with room for the dot."""
    import vl_convert
    metrics = [{"kind": "batch", "epoch": 1, "step": s, "steps": 10, "elapsed_s": s, "loss": 2 - 0.1 * s,
                "accuracy": 0.1 + 0.05 * s} for s in range(1, 11)]
    metrics.append({"kind": "epoch", "epoch": 1, "elapsed_s": 10, "loss": 1.0, "accuracy": 0.6, "test_loss": 0.9,
                    "test_accuracy": 0.645})
    svg = vl_convert.vegalite_to_svg(charts.training_curves(charts.curve_frame(metrics, "x")).to_dict())
    assert ">70%<" in svg                      # the accuracy axis goes past the 64.5% dot to a round figure


def test_a_point_close_to_a_round_figure_is_not_drawn_on_the_axiss_edge():
    """A training point at 10.02% ended the axis at 10%: the dashed line ran along the chart's bottom edge,
    half cut off. A point within a tenth of a step of the round figure gets the next one."""
    import vl_convert
    metrics = [{"kind": "batch", "epoch": 1, "step": s, "steps": 4, "elapsed_s": s, "loss": 2.0,
                "accuracy": a} for s, a in enumerate((0.25, 0.1002, 0.16, 0.2), start=1)]
    metrics.append({"kind": "epoch", "epoch": 1, "elapsed_s": 4, "loss": 1.9, "accuracy": 0.2, "test_loss": 1.8,
                    "test_accuracy": 0.2748})
    svg = vl_convert.vegalite_to_svg(charts.training_curves(charts.curve_frame(metrics, "x")).to_dict())
    ticks = sorted(int(t) for t in re.findall(r">(\d+)%<", svg))
    assert (ticks[0], ticks[-1]) == (5, 30), ticks


def test_the_accuracy_axis_never_goes_past_100_percent():
    """A small training set over many epochs reaches 100% training accuracy: Vega's rounding, past the
    padding left for a dot, took the axis to 110%. Through the kept spec too, which is made once from a
    made-up point and drawn with every run's own (app_pages/chart_cache.py)."""
    import vl_convert
    from app_pages import chart_cache
    (_, template), name = chart_cache._curves_template((True, True))      # the accuracy panel
    for top in (0.97, 0.985, 0.99, 1.0):
        metrics = [{"kind": "batch", "epoch": e, "step": s, "steps": 10, "elapsed_s": 10 * e + s, "loss": 1 / (e + s),
                    "accuracy": min(1.0, 0.5 + (top - 0.5) * (10 * (e - 1) + s) / 40)} for e in (1, 2, 3, 4) for s in range(1, 11)]
        metrics += [{"kind": "epoch", "epoch": e, "elapsed_s": 10 * e + 10, "loss": 0.1, "accuracy": top, "test_loss": 0.5,
                     "test_accuracy": 0.8 + 0.01 * e} for e in (1, 2, 3, 4)]
        frame = charts.curve_frame(metrics, "small set")
        kept = {**template, "width": 330, "datasets": {name: frame.to_dict("records")}}    # drawn in a column
        for spec in (charts.training_curves(frame).to_dict(), kept):
            ticks = [int(t) for t in re.findall(r">(\d+)%<", vl_convert.vegalite_to_svg(spec))]
            assert max(ticks) == 100 and ticks[0] == 50, (top, ticks)


def test_the_maps_outermost_dots_are_drawn_whole_inside_it():
    """The map clips its dots at its edge (it can be dragged and zoomed), and the outermost sat on it: half a
    dot drawn. Every dot's centre now stands clear of the edge by more than its size."""
    import vl_convert
    points = np.array([[0, 0], [1, 1], [0.5, 0.2], [1, 0], [0, 1], [-3, 7]], float)
    spec = charts.embedding_map(points, np.arange(6), [""] * 6).properties(width=300, height=300).to_dict()
    svg = vl_convert.vegalite_to_svg(spec)
    dots = svg[svg.index("mark-symbol role-mark"):svg.index("role-legend")]
    centres = [(float(x), float(y)) for x, y in re.findall(r'translate\(([-\d.]+),([-\d.]+)\)', dots)]
    assert len(centres) == len(points)
    assert all(6 <= c <= 294 for centre in centres for c in centre), centres


def test_the_map_says_how_much_of_the_features_spread_its_two_directions_keep():
    """A map of 512 features in two kept 28% of their spread for the bundled model, and said nothing of it:
    cat, dog, deer and horse in one heap read as a model that cannot tell them apart."""
    from cifar_core import embedding
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 4)) * [3.0, 2.0, 1.0, 1.0]        # variances 9, 4, 1, 1 of 15 in all
    placed = embedding.pca_2d(points)
    assert placed.shape == (1000, 3) and np.ptp(placed[:, 2]) == 0
    assert abs(placed[0, 2] - 13 / 15) < 0.03
    assert np.allclose(placed[:, :2].var(axis=0), [9, 4], rtol=0.15)


def test_evaluates_two_models_are_told_apart_in_dark_colours_in_the_order_given():
    """Streamlit's own dark and light blue (1.8:1 on white), in the names' alphabetical order."""
    scores = {name: 0.5 for name in CLASS_NAMES}
    spec = charts.compare_classes({"Run zebra (80.0%)": scores, "Bundled model (92.1%)": scores}).to_dict()
    colour = spec["encoding"]["color"]["scale"]
    assert colour["domain"] == ["Run zebra (80.0%)", "Bundled model (92.1%)"] == spec["encoding"]["xOffset"]["sort"]
    assert all(contrast(c, "white") >= 4.5 for c in colour["range"]) and len(set(colour["range"])) == 2
    # One name a line, whole: side by side, a phone's screen cut the second.
    assert spec["encoding"]["color"]["legend"] == {"direction": "vertical", "labelLimit": 0, "orient": "bottom",
                                                   "title": None}


def test_the_maps_title_fits_a_phone():
    """In one line, a phone cut it at "similar pictures land cl…"."""
    rng = np.random.default_rng(0)
    spec = charts.embedding_map(rng.normal(size=(10, 2)), np.arange(10), ["x"] * 10).to_dict()
    title = spec.get("title") or spec["layer"][0]["title"]
    lines = title["text"] if isinstance(title, dict) else title
    assert lines == ["The network's view:", "similar pictures land close together"]


def test_a_mix_up_is_shaded_apart_from_none():
    """Shaded in proportion, 76 of 1,000 (8%) was the same pale blue as 0."""
    scale = charts.confusion(np.eye(10, dtype=int) * 100).to_dict()["layer"][0]["encoding"]["color"]["scale"]
    assert scale["type"] == "sqrt" and scale["domain"] == [0, 1]       # 8% drawn 28% of the way, 1% 10%


def test_a_confidence_group_of_a_few_answers_is_drawn_faint():
    """On the full test set the bundled model's lowest groups hold 7 and 38 answers: their dots read as
    over-confidence and are mostly chance."""
    rows = [{"confidence": 0.31, "accuracy": 0.21, "answers": 38}, {"confidence": 0.95, "accuracy": 0.96,
                                                                     "answers": 8000}]
    diagonal, faint_line, line, dots = charts.reliability(rows).to_dict()["layer"]
    opacity = dots["encoding"]["opacity"]
    assert opacity["condition"]["test"] == f"(datum.answers < {charts.FEW_ANSWERS})" and opacity["value"] == 0.9
    # The line to a faint dot is faint too: drawn in full, it joined the chance group to the rest as one curve.
    assert faint_line["mark"]["opacity"] == 0.3 and "transform" not in faint_line
    assert line["transform"] == [{"filter": f"(datum.answers >= {charts.FEW_ANSWERS})"}] and "opacity" not in line["mark"]
    # A path of its own for each stretch of full groups: broken at a faint one, not drawn across it.
    rows = [{"confidence": c, "accuracy": c, "answers": n} for c, n in ((0.7, 600), (0.5, 500), (0.8, 900), (0.6, 40))]
    spec = charts.reliability(rows).to_dict()
    assert spec["layer"][2]["encoding"]["detail"]["field"] == "stretch"
    (data,) = [d for d in spec["datasets"].values() if "stretch" in d[0]]
    assert [r["stretch"] for r in data if r["answers"] >= charts.FEW_ANSWERS] == [0, 1, 1]     # in order of confidence
    charts.reliability([]).to_dict()          # no answers at all: empty axes, not an error


def test_a_screen_reader_is_told_of_pictures_in_words_and_spared_each_dot_and_slice():
    """Vega names every mark for a screen reader from its fields: the map's 1,000 dots were read with their
    thumbnails' data URIs (3.75 MB of text), the grid's pictures likewise, each bar by its unrounded figure
    and the heat key by 51 slices. Those marks are left out (each chart has its alt text); the grid's
    pictures are each told once, in words, by their frames."""
    sample = data.load_sample()
    def marks(spec):
        return [layer["mark"] for layer in spec.get("layer", [spec])]
    grid = charts.image_grid(sample.x_test[:12], sample.y_test[:12], np.arange(12)).to_dict()
    pictures, = [m for m in marks(grid) if m["type"] == "image"]
    frames, = [layer for layer in grid["layer"] if layer["mark"]["type"] == "square"]
    assert pictures["aria"] is False and frames["encoding"]["description"]["field"] == "caption"
    frame = charts.image_grid_frame(sample.x_test[:2], sample.y_test[:2], np.arange(2), numbers=np.array([7, 9]))
    assert list(frame["caption"]) == [f"picture #7, {CLASS_NAMES[sample.y_test[0]]}",
                                      f"picture #9, {CLASS_NAMES[sample.y_test[1]]}"]
    bars = charts.probabilities(np.full(10, 0.1)).to_dict()
    assert all(m["aria"] is False for m in marks(bars))
    key = charts.heat_key(("#000000", "#ffffff")).to_dict()
    assert all(m.get("aria") is False for m in marks(key) if m["type"] == "rect")
    points = np.random.default_rng(0).normal(size=(20, 2))
    placed = charts.embedding_map(points, sample.y_test[:20], ["data:image/png;base64,AAAA"] * 20).to_dict()
    assert all(m["aria"] is False for m in marks(placed) if m["type"] == "point")
