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
    card = json.loads(inference.DEFAULT_CARD.read_text())
    result = evaluation.summary(inference.predict(inference.load_model(), cifar.x_test), cifar.y_test)
    assert result["n"] == 10_000
    assert abs(result["accuracy"] - card["test_accuracy"]) <= 0.005
    for name, accuracy in card["per_class_accuracy"].items():
        assert abs(result["per_class"][name] - accuracy) <= 0.005


def test_the_bundled_sample_is_drawn_from_the_test_set(cifar):
    with np.load(data.SAMPLE_PATH) as sample:
        np.testing.assert_array_equal(cifar.x_test[sample["index"]], sample["x"])
        np.testing.assert_array_equal(cifar.y_test[sample["index"]], sample["y"])
