"""Checks against the whole CIFAR-10 data set (the offline copy), where this machine has it."""
import json

import numpy as np
import pytest

from cifar_core import data, evaluation, inference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cifar(real_archive):
    return data.read(real_archive)


def test_the_whole_data_set_loads(cifar):
    assert cifar.x_train.shape == (50_000, 32, 32, 3) and cifar.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(cifar.y_train).tolist() == [5000] * 10
    assert np.bincount(cifar.y_test).tolist() == [1000] * 10


def test_the_bundled_model_scores_what_its_card_says(cifar):
    """The card's figures are those of the answers shipped beside the model, on all 10,000 test pictures,
    and the model as the app serves it gives those answers: checked on 2,000 of them drawn at random, as
    answering all 10,000 again took a minute of the suite's two cores."""
    card = json.loads(inference.DEFAULT_CARD.read_text())
    shipped = evaluation.shipped_probabilities(inference.DEFAULT_MODEL, cifar.x_test, cifar.y_test)
    assert shipped is not None, "default.test.npz is missing or was made for other pictures or another model"
    result = evaluation.summary(shipped, cifar.y_test)
    assert result["n"] == 10_000
    assert result["accuracy"] == pytest.approx(card["test_accuracy"], abs=1e-4)
    for name, accuracy in card["per_class_accuracy"].items():
        assert result["per_class"][name] == pytest.approx(accuracy, abs=1e-4)
    some = np.random.default_rng(0).choice(10_000, 2_000, replace=False)
    served = inference.predict(inference.load_model(), cifar.x_test[some], calibrated=False)
    assert np.allclose(served, shipped[some], atol=2e-3)      # shipped as float16


def test_the_bundled_sample_is_drawn_from_the_test_set(cifar):
    with np.load(data.SAMPLE_PATH) as sample:
        np.testing.assert_array_equal(cifar.x_test[sample["index"]], sample["x"])
        np.testing.assert_array_equal(cifar.y_test[sample["index"]], sample["y"])
