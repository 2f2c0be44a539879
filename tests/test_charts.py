"""Chart builders: the data they draw, and that long runs stay light to send."""
import json
import re

import numpy as np

from cifar_core import charts
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
    assert values[11]["row"] == 1 and values[11]["column"] == 1
    assert all(v["image"].startswith("data:image/png;base64,") for v in values)
    assert [v["index"] for v in values if v["chosen"]] == [105]


def test_the_image_grids_look_depends_only_on_its_rows():
    """Explore draws a grid from a spec kept per grid height (app_pages/chart_specs.py): the pictures,
    their classes and the chosen one's frame must all come with the data, none in the spec."""
    from app_pages import chart_specs
    rng = np.random.default_rng(0)
    one = charts.image_grid(rng.integers(0, 255, (50, 32, 32, 3), np.uint8), np.arange(50) % 10, np.arange(50),
                            selected=7)
    other = charts.image_grid(np.zeros((50, 32, 32, 3), np.uint8), np.full(50, 3), np.arange(1000, 1050))
    def look(chart):    # Altair names each view anew; the name ties the selection to it within one spec
        return re.sub(r"view_[0-9a-f_]+", "view", json.dumps(chart_specs.template(chart), sort_keys=True))
    assert look(one) == look(other)
    shorter = charts.image_grid(np.zeros((12, 32, 32, 3), np.uint8), np.zeros(12, np.int64), np.arange(12))
    assert look(shorter) != look(other)


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
    metrics = [{"kind": "batch", "epoch": e, "step": s, "elapsed_s": e * 10 + s, "loss": 2.0 / (e + s),
                "accuracy": 0.1 * s} for e in (1, 2) for s in (1, 2, 3)]
    metrics += [{"kind": "epoch", "epoch": e, "elapsed_s": e * 10.0, "test_loss": 1.5 / e, "test_accuracy": 0.3 * e}
                for e in (1, 2)]
    template, name = chart_cache._curves_template()
    points = chart_cache._curves_points("run-1", (1, 2), "my run", metrics)
    drawn = pa.ipc.open_stream(io.BytesIO(points)).read_all().to_pylist()

    altair_spec = chart_specs.vega_lite(charts.training_curves(charts.curve_frame(metrics, "my run")))
    (altair_name, altair_rows), = altair_spec.pop("datasets").items()
    assert drawn == altair_rows and len(drawn) == 2 * (6 + 2)
    assert json.dumps(template, sort_keys=True) == json.dumps(altair_spec, sort_keys=True).replace(altair_name, name)


def test_a_kept_spec_comes_out_of_a_drawing_as_it_went_in():
    import json

    from app_pages import chart_cache, chart_specs
    template, name = chart_cache._curves_template()
    points = chart_cache._curves_points("run-2", (3, 4), "my run", [
        {"kind": "epoch", "epoch": 1, "elapsed_s": 5.0, "test_loss": 1.5, "test_accuracy": 0.3}])
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
        np.testing.assert_allclose(shown["share"], counts / counts.sum())
        np.testing.assert_array_equal(shown["value"], edges[:-1])


def test_the_feature_map_shows_each_picture_by_its_thumbnail_made_once():
    rng = np.random.default_rng(0)
    images, labels, points = rng.integers(0, 256, (6, 32, 32, 3), np.uint8), np.arange(6) % 10, rng.normal(size=(6, 2))
    thumbnails = [charts.data_uri(i) for i in images]
    rows = next(iter(charts.embedding_map(points, labels, thumbnails).to_dict()["datasets"].values()))
    assert len(rows) == 6 and [r["image"] for r in rows] == thumbnails
    assert [r["class"] for r in rows] == [CLASS_NAMES[i] for i in labels]


def test_a_probability_bars_tooltip_never_reads_certain_short_of_certainty():
    probs = np.array([0.9997, 0.0003] + [0.0] * 8)
    frame = charts.probability_frame(probs)
    shown = dict(zip(frame["class"], frame["shown"]))
    assert f"{shown[CLASS_NAMES[0]]:.1%}" == "99.9%" and f"{shown[CLASS_NAMES[1]]:.1%}" == "0.1%"
    assert shown[CLASS_NAMES[2]] == 0 and list(frame["probability"])[:2] == [0.9997, 0.0003]
    tooltip = charts.probabilities(probs).to_dict()["encoding"]["tooltip"]
    assert {"field": "shown", "type": "quantitative", "title": "probability", "format": ".1%"} in tooltip
