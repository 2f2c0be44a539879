"""Metrics against values worked out by hand."""
import numpy as np
import pytest

from cifar_core import evaluation

# 6 images: true classes and predictions chosen so every figure below can be checked on paper.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def test_confusion_matrix_by_hand():
    counts = evaluation.confusion_matrix(Y_TRUE, Y_PRED)
    assert counts[:3, :3].tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert counts.sum() == 6


def test_class_report_by_hand():
    rows = {r["class"]: r for r in evaluation.class_report(Y_TRUE, Y_PRED)}
    # airplane: 2 right of 3 true, 2 predicted -> precision 1, recall 2/3, F1 0.8
    assert rows["airplane"]["precision"] == pytest.approx(1.0)
    assert rows["airplane"]["recall"] == pytest.approx(2 / 3)
    assert rows["airplane"]["f1"] == pytest.approx(0.8)
    # automobile: 1 right, 2 predicted, 2 true -> 0.5 each
    assert (rows["automobile"]["precision"], rows["automobile"]["recall"], rows["automobile"]["f1"]) == (0.5, 0.5, 0.5)
    # bird: 1 right, 2 predicted, 1 true -> precision 0.5, recall 1, F1 2/3
    assert rows["bird"]["f1"] == pytest.approx(2 / 3)
    assert np.isnan(rows["truck"]["precision"]) and rows["truck"]["images"] == 0


def test_a_class_never_named_has_no_precision_but_an_f1_of_nothing_found():
    """Every cat called a dog: no precision for cat (it named none), but F1 = 2 TP / (2 TP + FP + FN) = 0, the
    worst there is; a class neither in the pictures nor named has none at all."""
    y_true, y_pred = np.array([3, 3, 5, 5]), np.array([5, 5, 5, 5])
    rows = {r["class"]: r for r in evaluation.class_report(y_true, y_pred)}
    assert np.isnan(rows["cat"]["precision"]) and rows["cat"]["recall"] == 0 and rows["cat"]["f1"] == 0
    assert rows["dog"]["f1"] == pytest.approx(2 / 3)
    assert np.isnan(rows["frog"]["f1"])


def test_summary_and_per_class_accuracy():
    probs = np.eye(10)[Y_PRED]
    result = evaluation.summary(probs, Y_TRUE)
    assert result["accuracy"] == pytest.approx(4 / 6) and result["n"] == 6
    assert result["per_class"]["airplane"] == pytest.approx(2 / 3)
    assert result["per_class"]["bird"] == 1.0


def test_confident_mistakes_come_most_confident_first():
    probs = np.full((4, 10), 0.0)
    probs[0, 1], probs[0, 0] = 0.9, 0.1    # wrong, 90% sure
    probs[1, 0] = 1.0                      # right
    probs[2, 3], probs[2, 0] = 0.6, 0.4    # wrong, 60% sure
    probs[3, 5], probs[3, 0] = 0.99, 0.01  # wrong, 99% sure
    assert evaluation.confident_mistakes(probs, np.zeros(4, int)).tolist() == [3, 0, 2]


def test_calibration_by_hand():
    probs = np.zeros((4, 10))
    probs[:2, 0] = 0.95        # two answers at 95%: one right, one wrong
    probs[2:, 0] = 0.55        # two answers at 55%: both right
    rows = evaluation.calibration(probs, np.array([0, 1, 0, 0]))
    assert rows == [{"confidence": pytest.approx(0.55), "accuracy": 1.0, "answers": 2},
                    {"confidence": pytest.approx(0.95), "accuracy": 0.5, "answers": 2}]


def test_the_calibration_error_is_read_off_the_chart_s_own_groups():
    rng = np.random.default_rng(1)
    probs, labels = rng.dirichlet(np.ones(10) * 0.4, 3000), rng.integers(0, 10, 3000)
    rows = evaluation.calibration(probs, labels)
    from_chart = sum(r["answers"] * abs(r["confidence"] - r["accuracy"]) for r in rows) / 3000
    assert evaluation.expected_calibration_error(probs, labels) == pytest.approx(from_chart)
    assert sum(r["answers"] for r in rows) == 3000 and len(rows) > 10     # 15 groups, most of them used


def test_probabilities_are_cached_beside_the_model(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"weights")
    calls = []

    def predict(images):
        calls.append(1)
        return np.ones((len(images), 10)) / 10

    first = evaluation.cached_probabilities(model, np.zeros((3, 32, 32, 3)), "test", predict)
    again = evaluation.cached_probabilities(model, np.zeros((3, 32, 32, 3)), "test", predict)
    assert len(calls) == 1 and np.array_equal(first, again)
    assert len(list(tmp_path.glob("m.eval-*.npy"))) == 1
    model.write_bytes(b"retrained")
    evaluation.cached_probabilities(model, np.zeros((3, 32, 32, 3)), "test", predict)
    assert len(calls) == 2


def test_answers_shipped_with_a_model_are_its_own_to_the_last_place(tmp_path):
    """The app reads a model's accuracy off the answers shipped with it: a near-tie of two classes must
    come back as it was answered, or that accuracy differs from the one in the model's name."""
    model = tmp_path / "m.keras"
    model.write_bytes(b"a model's bytes")
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (200, 32, 32, 3), np.uint8), rng.integers(0, 10, 200)
    answers = rng.dirichlet(np.ones(10), 200).astype(np.float32)
    answers[:, :2] = [0.49999, 0.50001]     # the second class, by a hair
    answers[:, 2:] = 0.0
    evaluation.save_test_probabilities(model, answers, images, labels)
    shipped = evaluation.shipped_probabilities(model, images, labels)
    np.testing.assert_array_equal(shipped, answers)
    assert (shipped.argmax(axis=1) == 1).all()


def test_temperature_recovers_a_known_distortion_and_fixes_calibration():
    """Labels drawn from known probabilities, shown to the fit softened by T=2.5: the fit finds 1/2.5
    (sharpening back), and the calibration error drops to sampling noise."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 10))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in truth])
    softened = evaluation.with_temperature(truth, 2.5)
    t = evaluation.fit_temperature(softened, labels)
    assert abs(t - 1 / 2.5) < 0.03
    fixed = evaluation.with_temperature(softened, t)
    assert evaluation.expected_calibration_error(softened, labels) > 0.1
    assert evaluation.expected_calibration_error(fixed, labels) < 0.015
    assert (fixed.argmax(1) == softened.argmax(1)).all()
    np.testing.assert_allclose(fixed.sum(1), 1, atol=1e-5)


def test_calibration_error_is_zero_for_honest_answers_and_large_for_overconfident_ones():
    probs = np.tile([[0.8, 0.2]], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    assert evaluation.expected_calibration_error(probs, labels) < 1e-9
    assert abs(evaluation.expected_calibration_error(probs, np.ones(10, int)) - 0.8) < 1e-9


def test_answers_kept_beside_a_model_stay_a_few_files_whatever_the_data_sets(tmp_path):
    model = tmp_path / "net[1].keras"
    model.write_bytes(b"weights")
    other = tmp_path / "other.eval-0000.npy"
    np.save(other, np.zeros(1))
    for i in range(evaluation.KEPT_ANSWERS + 3):
        images = np.full((2, 32, 32, 3), i, np.uint8)
        first = evaluation.cached_probabilities(model, images, f"data {i}", lambda x: x[:, 0, 0, :2] / 255.0)
        again = evaluation.cached_probabilities(model, images, f"data {i}", lambda x: 1 / 0)   # read, not worked out
        assert np.array_equal(first, again)
    assert len(list(tmp_path.glob("net[[]1].eval-*.npy"))) == evaluation.KEPT_ANSWERS
    assert other.exists()     # another model's answers are its own


@pytest.mark.parametrize("writer", ["keep_beside", "ship_beside"])
def test_answers_written_at_once_are_whole(tmp_path, monkeypatch, writer):
    """A class opening Evaluate together: sessions of one server write the same answers at once (cached, or
    shipped beside the model), each as slowly as a busy disk does; the file left is one of them whole, and
    no temporary file is left behind."""
    import io
    import threading
    import time
    write_array = np.lib.format.write_array

    def slowly(file, array, *args, **kwargs):     # half, a pause (the longer the sooner it began), the rest
        whole = io.BytesIO()
        write_array(whole, array, *args, **kwargs)
        half = whole.tell() // 2
        file.write(whole.getvalue()[:half])
        if array.dtype.kind == "f":         # the answers, not the fingerprints beside them
            time.sleep(0.02 * (6 - float(array.flat[0])))
        file.write(whole.getvalue()[half:])
    monkeypatch.setattr(np.lib.format, "write_array", slowly)
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    if writer == "keep_beside":
        written = tmp_path / "model.eval-abc.npy"
        write = lambda answers: evaluation.keep_beside(written, answers)
        read = lambda: np.load(written)
    else:
        written = tmp_path / "model.test.npz"
        write = lambda answers: evaluation.ship_beside(model, ".test.npz", "answers", [("data", answers)])
        read = lambda: evaluation.shipped_beside(model, ".test.npz", "answers", "data")
    returned = []       # a writer that raised never gets to add itself
    writers = [threading.Thread(target=lambda i=i: returned.append(write(np.full(100_000, i, np.float32))))
               for i in range(6)]
    for thread in writers:
        thread.start()
        time.sleep(0.005)
    for thread in writers:
        thread.join()
    kept = read()
    assert kept.shape == (100_000,) and len(np.unique(kept)) == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([model.name, written.name])
    assert len(returned) == 6


def test_a_percent_sure_never_rounds_to_certainty_or_to_nothing():
    assert [evaluation.sure(p) for p in (0.5045, 0.994, 0.995, 0.9999, 1.0, 0.004, 0.0, 0.005)] == \
        ["50%", "99%", "over 99%", "over 99%", "over 99%", "under 1%", "under 1%", "under 1%"]
    # Sharpened by a temperature, 0.9999 is 1.0 in float32: still not certain.
    sharpened = evaluation.with_temperature(np.array([[0.9999] + [0.0001 / 9] * 9]), 0.5288)[0, 0]
    assert sharpened == 1.0 and evaluation.sure(sharpened) == "over 99%"


def test_an_accuracy_never_rounds_to_all_or_nothing():
    """A run trained long on 5,000 pictures, right on 99.96% of them, read "100.0%" in its label."""
    assert [evaluation.percent(p) for p in (0.99961, 0.9994, 1.0, 0.00042, 0.0, 0.6945, None)] == \
        ["over 99.9%", "99.9%", "100.0%", "under 0.1%", "0.0%", "69.5%", "–"]


def test_two_accuracies_that_read_the_same_are_told_apart_where_they_differ():
    assert evaluation.told_apart(0.9206, 0.9214) == ("92.06%", "92.14%")
    assert evaluation.told_apart(0.9214, 0.9214) == ("92.1%", "92.1%")
    assert evaluation.told_apart(0.9206, 0.9314) == ("92.1%", "93.1%")
    assert evaluation.told_apart(0.99996, 0.99991) == ("over 99.99%", "99.99%")


def test_a_tables_percents_are_kept_off_certainty_at_the_places_it_prints():
    shown = evaluation.kept_off_certainty([99.7, 99.4, 100.0, 0.04, 0.0, 50.45, float("nan")], 0)
    assert [f"{p:.0f}" for p in shown[:6]] == ["99", "99", "100", "1", "0", "50"] and np.isnan(shown[6])
    assert [f"{p:.1f}" for p in evaluation.kept_off_certainty([99.97, 0.04, 12.34], 1)] == ["99.9", "0.1", "12.3"]
    # A model's probabilities are never certain, even at float32's 1.0 and 0.0: as "% sure" words them.
    answers = evaluation.kept_off_certainty([100.0, 0.0, 99.7, float("nan")], 1, probabilities=True)
    assert [f"{p:.1f}" for p in answers[:3]] == ["99.9", "0.1", "99.7"] and np.isnan(answers[3])


def test_counts_read_as_people_write_them():
    assert [evaluation.counted(n, "picture") for n in (0, 1, 2, 1204)] == \
        ["0 pictures", "1 picture", "2 pictures", "1,204 pictures"]
