"""What a teacher sees at once: test answers shipped with a model, Evaluate's one accuracy, its lazy
comparison and progress, the confusion matrix in counts or percentages."""
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cifar_core import charts, evaluation, inference, int8
from cifar_core.data import CLASS_NAMES
from conftest import ROOT, tiny_images
from test_app import app, visit  # noqa: F401 (app is a fixture)

APP = str(ROOT / "studio.py")


@pytest.fixture
def model_copy(tmp_path):
    """The bundled model at a path of its own, with nothing shipped beside it."""
    path = tmp_path / "copy.keras"
    shutil.copyfile(inference.DEFAULT_MODEL, path)
    return path


def test_shipped_answers_come_back_only_for_the_same_model_and_data(model_copy):
    x, y = tiny_images(30, 1)
    answers = np.random.default_rng(0).dirichlet(np.ones(10), len(y)).astype(np.float32)
    assert evaluation.shipped_probabilities(model_copy, x, y) is None          # nothing shipped yet
    target = evaluation.save_test_probabilities(model_copy, answers, x, y)
    assert target.name == "copy.test.npz"
    back = evaluation.shipped_probabilities(model_copy, x, y)
    assert back.dtype == np.float32 and np.allclose(back, answers, atol=1e-3)
    assert (back.argmax(1) == answers.argmax(1)).all()

    other_x = x.copy()
    other_x[0, 0, 0, 0] ^= 1                                                    # one pixel of one picture
    assert evaluation.shipped_probabilities(model_copy, other_x, y) is None
    assert evaluation.shipped_probabilities(model_copy, x, np.roll(y, 1)) is None
    assert evaluation.shipped_probabilities(model_copy, x[:20], y[:20]) is None
    with open(model_copy, "ab") as f:                                          # a retrained model in its place
        f.write(b"\0")
    assert evaluation.shipped_probabilities(model_copy, x, y) is None


def test_a_damaged_shipped_file_is_ignored(model_copy):
    x, y = tiny_images(10, 1)
    model_copy.with_name("copy.test.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert evaluation.shipped_probabilities(model_copy, x, y) is None


def test_the_bundled_model_ships_its_answers_for_the_bundled_sample():
    """Offline, a laptop's first Evaluate and Quiz use the sample: their answers need no waiting either."""
    from cifar_core import data
    sample = data.load_sample()
    shipped = evaluation.shipped_probabilities(inference.DEFAULT_MODEL, sample.x_test, sample.y_test)
    assert shipped is not None
    # The bundled answers were worked out as the app answers: its networks in int8 (`int8`), the first
    # network alone where that one is sure (`inference.predict`).
    from cifar_core import fast_inference
    model = inference.load_model()
    served = inference.predict(model, sample.x_test[:200], calibrated=False)
    assert fast_inference.precision(model) == "int8"
    assert np.allclose(shipped[:200], served, atol=2e-3)       # stored as float16
    # Served otherwise (the folded copy in bfloat16 or float32, where TensorFlow Lite could not run them),
    # a rounding away, and now and then it tips a picture across evaluation.SURE_ENOUGH: then it is
    # answered differently in one and the other.
    fast_inference.serve(model)
    served = inference.predict(model, sample.x_test[:200], calibrated=False)
    # The int8 networks' own roundings move a probability by a point or two (on the 10,000 test pictures,
    # the answers' "% sure" moved by 1.2 points on average, the class for 1.0% of them).
    apart = np.abs(shipped[:200] - served).max(axis=1)
    assert apart.mean() < 0.03 and (apart > 0.1).mean() <= 0.03
    assert (shipped[:200].argmax(1) == served.argmax(1)).mean() >= 0.95


def test_the_bundled_model_ships_its_answers_for_the_offline_test_set(real_archive):
    """The figure Evaluate shows from the shipped answers is the model card's, which the sidebar shows."""
    from cifar_core import data
    test = data.read(real_archive)
    shipped = evaluation.shipped_probabilities(inference.DEFAULT_MODEL, test.x_test, test.y_test)
    assert shipped is not None, "default.test.npz is missing or was made for other pictures or another model"
    accuracy = evaluation.summary(shipped, test.y_test)["accuracy"]
    assert evaluation.percent(accuracy) == evaluation.percent(inference.model_card()["test_accuracy"])
    assert accuracy == pytest.approx(inference.model_card()["test_accuracy"], abs=1e-4)
    assert inference.DEFAULT_MODEL.with_name("default.test.npz").stat().st_size < 400_000


def test_an_exported_model_ships_its_test_answers(tiny_env, tiny_archive):
    from cifar_core import data, training
    run = other_model("exported")
    test = data.read(tiny_archive)
    card = training.export(run.path, tiny_env / "out" / "mine.keras", dataset=test)
    shipped = evaluation.shipped_probabilities(tiny_env / "out" / "mine.keras", test.x_test, test.y_test)
    assert shipped is not None and shipped.shape == (40, 10)
    assert evaluation.summary(shipped, test.y_test)["accuracy"] == card["test_accuracy"]
    fresh = inference.predict(inference.load_model(tiny_env / "out" / "mine.keras"), test.x_test, calibrated=False)
    assert np.allclose(shipped, fresh, atol=2e-3)


def test_confusion_matrix_squares_show_counts_or_percent_of_the_true_class():
    counts = np.zeros((10, 10), int)
    counts[0, 0], counts[0, 1] = 3, 1           # 4 airplanes: 75% right, 25% called automobile
    counts[1, 1] = 996
    counts[1, 2] = 4                            # 1,000 automobiles: 0.4% called bird
    counts[2, 2], counts[2, 3] = 995, 5         # 1,000 birds: 99.5% right, 0.5% called cat
    as_counts = charts.confusion(counts).to_dict()
    as_share = charts.confusion(counts, as_share=True).to_dict()
    values = {(v["true"], v["predicted"]): v for v in next(iter(as_share["datasets"].values()))}
    assert values["airplane", "airplane"]["label"] == "75%" and values["airplane", "automobile"]["label"] == "25%"
    assert values["automobile", "bird"]["label"] == "<1%" and values["automobile", "truck"]["label"] == "0%"
    # Half a percent is not rounded to 0% (to even), nor 99.5% to a certain 100%.
    assert values["bird", "cat"]["label"] == "<1%" and values["bird", "bird"]["label"] == ">99%"
    text = [layer for layer in as_share["layer"] if layer["mark"]["type"] == "text"][0]
    assert text["encoding"]["text"]["field"] == "label"
    text = [layer for layer in as_counts["layer"] if layer["mark"]["type"] == "text"][0]
    assert text["encoding"]["text"]["field"] == "images"


def other_model(name: str):
    """A finished run whose checkpoint is a copy of the bundled model, with its temperature (which also
    decides which pictures it answers mirrored): a second model to compare."""
    from cifar_core import board, rundir, runs
    from cifar_core.config import TrainConfig
    # Made running under this process, never queued: the app's watcher ticks every second, and a queued
    # run seen while its model is copied in would be handed to a real trainer, which overwrites it.
    run = runs.create(TrainConfig(arch="airbench_tiny", epochs=1, name=name), trained_here=True)
    shutil.copyfile(inference.DEFAULT_MODEL, run.path / rundir.MODEL)
    shutil.copyfile(int8.companion(inference.DEFAULT_MODEL), int8.companion(run.path / rundir.MODEL))   # served alike
    rundir.update_status(run.path, state="finished", temperature=inference.temperature_for(inference.DEFAULT_MODEL))
    board.refresh()     # the pages' list of runs, now, not at the watcher's next tick
    return run


def test_evaluate_tests_the_second_model_only_when_the_comparison_is_opened(app, monkeypatch):
    from app_pages import common
    other_model("second")
    pictures_tested = []
    real_predict = inference.predict

    def counting_predict(model, images, *args, **kwargs):
        pictures_tested.append(len(images))
        return real_predict(model, images, *args, **kwargs)
    monkeypatch.setattr(inference, "predict", counting_predict)
    monkeypatch.setattr(common, "TEST_STEP", 16)      # 40 tiny test pictures: three steps of the progress bar
    common._test_probabilities.clear()

    visit(app, "app_pages/evaluate.py")              # the bundled model: measured, or found in the disk cache
    assert app.metric[0].help == evaluation.ACCURACY_DEFINITION
    pictures_tested.clear()
    app.run()
    assert pictures_tested == []                       # kept, not measured again; the run's model not at all

    app.session_state["evaluate_tab"] = "Compare two models"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    # The run's model, once the tab is open: loading it traces its forward pass on one blank picture
    # (common._model), then the test pictures go through in steps.
    assert pictures_tested == [1, 16, 16, 8]
    # Labels are Markdown: each model's name as typed, escaped, without the accuracy measured when it was saved
    # (beside the figure measured here it read as a second accuracy of the same model).
    assert [m.label for m in app.metric][1:] == ["Bundled model", common.plain("Run second")]
    assert app.selectbox(key="evaluate_model").value.startswith("Bundled model (")
    assert all(m.value == app.metric[0].value for m in app.metric)   # the same model twice: the same figure
    assert any(c.value.endswith("On these test pictures they are equally good.") for c in app.caption)


def test_two_models_gap_is_called_chance_or_not_as_mcnemar_says():
    """On the same pictures, only those one model gets right and the other not tell them apart."""
    assert not evaluation.beyond_chance(0, 0)
    assert not evaluation.beyond_chance(55, 45)          # 100 pictures told apart, 55 to 45: a coin does that
    assert evaluation.beyond_chance(65, 35)              # 65 to 35: seldom by chance (about 1 in 400)
    assert evaluation.beyond_chance(35, 65) and not evaluation.beyond_chance(520, 480)
    # A few pictures apart, as between a run and its continuation: the exact test, not the normal approximation
    # (which called 4 to 0 beyond chance where a coin does it one time in eight)
    assert not evaluation.beyond_chance(4, 0) and not evaluation.beyond_chance(0, 5)     # p = 1/8, 1/16
    assert evaluation.beyond_chance(6, 0) and not evaluation.beyond_chance(7, 1)         # p = 1/32, 0.070
    assert evaluation.beyond_chance(8, 1)                                                # p = 0.039


def test_evaluate_says_when_it_measures_on_the_bundled_sample(monkeypatch, tmp_path):
    from app_pages import common
    monkeypatch.chdir(ROOT)
    pictures_tested = []
    real_predict = inference.predict
    monkeypatch.setattr(inference, "predict", lambda model, images, *a, **k: pictures_tested.append(len(images))
                        or real_predict(model, images, *a, **k))
    common._test_probabilities.clear()
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    visit(at, "app_pages/evaluate.py")
    assert at.metric[0].label == "Right on 1,000 test pictures"
    assert at.metric[0].value == evaluation.percent(float(at.metric[0].value.rstrip("%")) / 100)
    assert any("bundled sample of 1,000 test pictures, not on the whole test set" in c.value for c in at.caption)
    assert pictures_tested == []                       # the answers shipped with the model: no waiting


def test_evaluate_confusion_matrix_in_percent(app):
    visit(app, "app_pages/evaluate.py")
    app.session_state["evaluate_tab"] = "Confusion matrix"
    app.run()
    app.button_group(key="evaluate_confusion_as").set_value("% of each true class").run()
    assert not app.exception, [e.value for e in app.exception]


def test_evaluate_builds_the_confusion_matrix_chart_once_and_draws_each_square_chosen_from_it(app, monkeypatch):
    """Building and checking the Altair chart was 0.1 s of a core on every rerun of the matrix; drawn from its
    Vega-Lite made once per server, with the page's own squares, the one chosen framed."""
    import json
    import re

    import pyarrow as pa

    from app_pages import chart_specs
    from test_app import charts_drawn
    chart_specs._confusion.clear()
    built = []
    real = charts.confusion
    monkeypatch.setattr(charts, "confusion", lambda *a, **k: built.append(1) or real(*a, **k))
    visit(app, "app_pages/evaluate.py")
    app.session_state["evaluate_tab"] = "Confusion matrix"
    app.run()
    for square in (12, 45, 99):             # squares chosen in the box, each a rerun with a new one framed
        app.selectbox(key="evaluate_box").set_value(square).run()
        assert not app.exception, [e.value for e in app.exception]
    assert len(built) == 1
    (drawn,) = [c for c in charts_drawn(app) if c.alt.startswith("Confusion matrix")]
    def views_unnamed(spec: str) -> dict:         # Altair numbers each chart's view, Streamlit names it again
        return json.loads(re.sub(r"\"view\w*\"", "\"view\"", spec))
    assert views_unnamed(drawn.spec) == views_unnamed(json.dumps(chart_specs.template(real(np.zeros((10, 10), int)))))
    rows = pa.ipc.open_stream(drawn.data.data).read_all().to_pylist()
    assert [r["chosen"] for r in rows] == [int(i == 99) for i in range(100)]         # truck called truck, framed
    pictures = int(app.metric[0].label.split()[2].replace(",", ""))                  # "Right on 40 test pictures"
    assert sum(r["images"] for r in rows) == pictures and [r["true"] for r in rows[::10]] == list(CLASS_NAMES)


def test_evaluate_says_when_a_models_percent_sure_was_never_calibrated(app):
    """Trained with no pictures kept aside, a model has no temperature: Predict said so, Evaluate's
    Confidence tab did not, and the glossary called every model calibrated."""
    from cifar_core import rundir
    run = other_model("untempered")
    rundir.update_status(run.path, temperature=None)
    visit(app, "app_pages/evaluate.py")
    app.session_state["evaluate_tab"] = "Confidence"
    app.run()
    assert not any("has no temperature fitted" in c.value for c in app.caption)     # the bundled model is
    label = next(o for o in app.selectbox(key="evaluate_model").options if "untempered" in o)
    app.selectbox(key="evaluate_model").select(label).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("has no temperature fitted" in c.value for c in app.caption)


def test_evaluate_a_damaged_checkpoint_gets_a_sentence(app):
    from cifar_core import rundir
    run = other_model("damaged")
    (run.path / rundir.MODEL).write_bytes(b"not a model at all")
    visit(app, "app_pages/evaluate.py")
    damaged = next(o for o in app.selectbox(key="evaluate_model").options if "damaged" in o)
    app.selectbox(key="evaluate_model").select(damaged).run()
    assert not app.exception, [e.value for e in app.exception]
    assert "is not a CIFAR-10 Studio model we can load" in app.error[0].value
