"""A saved model's networks in int8 (`int8`), saved beside it: the bundled model answers with them as its
float32 networks do, from many threads at once, and a companion that is not this very model's, or is
damaged, is never used."""
import shutil
import threading

import numpy as np
import pytest

from cifar_core import data, fast_inference, inference, int8

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def test_pictures(real_archive):
    return data.load(real_archive).x_test[:1000]


def _as_saved():
    """The bundled model as saved (float32, no copy), with the temperatures the app answers it with."""
    import keras
    served = inference.load_model()
    saved = keras.models.load_model(inference.DEFAULT_MODEL, compile=False)
    saved.calibration_temperature = served.calibration_temperature
    return served, saved


def test_the_bundled_model_answers_in_int8_as_its_float32_networks_do(test_pictures):
    served, saved = _as_saved()
    assert fast_inference.precision(served) == "int8" and len(fast_inference.networks(served)) == 2
    got = inference.predict(served, test_pictures, calibrated=False, sure_enough=None)
    exact = inference.predict(saved, test_pictures, calibrated=False, sure_enough=None)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)
    assert np.abs(got - exact).mean() < 0.01 and (got.argmax(1) == exact.argmax(1)).mean() >= 0.98
    # Each network alone, as `predict` first looks, answers as the same float32 network does.
    first = fast_inference.networks(served)[0]
    alone = inference.predict(first, test_pictures, mirror=False, calibrated=False)
    from cifar_core import models
    exact_first = inference.predict(models.apart(saved)[0], test_pictures, mirror=False, calibrated=False)
    assert (alone.argmax(1) == exact_first.argmax(1)).mean() >= 0.98
    # What looks inside sees the model's own float32 layers.
    assert served.get_layer("whiten").dtype_policy.compute_dtype == "float32"


def test_many_threads_at_once_get_the_answers_one_gets(test_pictures):
    served = inference.load_model()
    alone = [inference.predict(served, test_pictures[i::8][:60]) for i in range(8)]
    answers, failures = {}, []

    def ask(i):
        try:
            answers[i] = inference.predict(served, test_pictures[i::8][:60])
        except Exception as e:       # a failure on a thread would be lost otherwise
            failures.append(e)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for i in range(8):
        np.testing.assert_allclose(answers[i], alone[i], atol=1e-6)
    assert fast_inference.network(served).networks[0]._made <= int8.AT_ONCE


def _bundled_copy(tmp_path):
    for suffix in (".keras", ".json", int8.SUFFIX):
        shutil.copyfile(inference.DEFAULT_MODEL.with_suffix(suffix), (tmp_path / "model").with_suffix(suffix))
    return tmp_path / "model.keras"


def test_a_companion_not_made_from_this_very_model_is_never_used(tmp_path):
    import keras
    path = _bundled_copy(tmp_path)
    assert fast_inference.precision(inference.load_model(path)) == "int8"
    # Another model saved over it: the int8 networks left beside it are the old one's.
    model = keras.models.load_model(path, compile=False)
    dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    dense.set_weights([w + 0.5 for w in dense.get_weights()])
    model.save(path)
    assert fast_inference.precision(inference.load_model(path)) != "int8"
    assert int8.load(model, tmp_path / "nowhere.keras") == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flatbuffer", "too many", "too big"])
def test_a_damaged_companion_is_ignored_and_the_model_served_as_saved(tmp_path, damage, test_pictures):
    path = _bundled_copy(tmp_path)
    beside = int8.companion(path)
    digest = np.array(int8._digest(path))
    if damage == "garbage":
        beside.write_bytes(b"\x93NUMPY not really" * 50)
    elif damage == "truncated":
        beside.write_bytes(beside.read_bytes()[:100_000])
    elif damage == "flatbuffer":
        with open(beside, "wb") as file:
            np.savez(file, made_from=digest, network0=np.frombuffer(b"TFL3" * 1000, np.uint8),
                     network1=np.frombuffer(b"\0" * 4000, np.uint8))
    elif damage == "too many":
        with np.load(inference.DEFAULT_MODEL.with_suffix(int8.SUFFIX)) as saved:
            networks = {name: saved[name] for name in saved.files if name != "made_from"}
        with open(beside, "wb") as file:
            np.savez(file, made_from=digest, network2=networks["network0"], **networks)
    else:
        with open(beside, "ab") as file:
            file.truncate(int8.MAX_BYTES + 1)
    model = inference.load_model(path)
    assert fast_inference.precision(model) != "int8"
    probabilities = inference.predict(model, test_pictures[:20])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
