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
    digest = np.array(int8.digest(path))
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


def _first_network():
    return fast_inference.network(inference.load_model()).networks[0]


def test_a_long_call_runs_in_pieces_so_no_interpreter_grows_past_one(test_pictures):
    network = _first_network()
    whole = network.scores(test_pictures[:300].astype(np.float32))
    pieces = np.concatenate([network.scores(test_pictures[i:i + 100].astype(np.float32)) for i in (0, 100, 200)])
    np.testing.assert_allclose(whole, pieces, atol=1e-5)
    idle = [network._idle.get() for _ in range(network._made)]
    assert all(interpreter.get_input_details()[0]["shape"][0] <= int8.PICTURES_PER_CALL for interpreter in idle)
    for interpreter in idle:
        network._idle.put(interpreter)


def test_an_interpreter_that_fails_is_let_go_and_another_made(monkeypatch, test_pictures):
    monkeypatch.setattr(int8, "AT_ONCE", 1)
    network = _first_network()
    while network._made > 1:            # earlier calls made more: keep one
        network._idle.get()
        network._made -= 1
    broken = network._idle.get()

    def out_of_memory():
        raise RuntimeError("out of memory")
    broken.allocate_tensors = out_of_memory       # resized, then never allocated
    network._idle.put(broken)
    pictures = test_pictures[:3].astype(np.float32)
    with pytest.raises(RuntimeError):
        network.scores(pictures)
    assert network.scores(pictures).shape == (3, 10) and network._made == 1


def test_a_call_waiting_for_a_busy_interpreter_goes_on_when_that_one_fails(monkeypatch, test_pictures):
    monkeypatch.setattr(int8, "AT_ONCE", 1)
    network = _first_network()
    taken = [network._idle.get() for _ in range(network._made)]     # every interpreter busy
    network._made = 1
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(network.scores(test_pictures[:2].astype(np.float32))))
    waiting.start()
    waiting.join(1)
    assert waiting.is_alive() and not answers
    with network._making:               # the busy one fails, as `_features` lets it go
        network._made -= 1
    waiting.join(10)
    assert not waiting.is_alive() and answers[0].shape == (2, 10) and taken


def test_a_model_the_converter_cannot_take_is_served_as_saved_and_nothing_written(monkeypatch, tmp_path, test_pictures):
    import keras
    path = _bundled_copy(tmp_path)
    int8.companion(path).unlink()
    model = keras.models.load_model(path, compile=False)

    def unconvertible(network, pictures):
        raise ValueError("an op TensorFlow Lite does not know")
    monkeypatch.setattr(int8, "_flatbuffer", unconvertible)
    assert not int8.save(model, test_pictures[:50], path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.keras"]


def test_where_a_gpu_answers_the_networks_are_served_as_saved(monkeypatch, tmp_path):
    path = _bundled_copy(tmp_path)
    monkeypatch.setattr(int8, "_gpu_here", lambda: True)
    assert fast_inference.precision(inference.load_model(path)) != "int8"


def test_a_new_companion_or_card_is_a_new_version_of_the_model(tmp_path):
    import os
    path = _bundled_copy(tmp_path)
    for beside in (path, path.with_suffix(".json"), int8.companion(path)):
        os.utime(beside, (1_000_000, 1_000_000))
    assert inference.model_version(path) == 1_000_000
    for beside in (int8.companion(path), path.with_suffix(".json")):
        version = inference.model_version(path)
        os.utime(beside, (version + 10, version + 10))
        assert inference.model_version(path) == version + 10


def test_a_runs_status_is_part_of_its_checkpoints_version(tmp_path):
    """A run writes its temperature into status.json after its last checkpoint: a model loaded between
    the two (Look inside shows a run still training) must not be served, uncalibrated, once it ends."""
    import json
    import os
    run = tmp_path / "run"
    run.mkdir()
    path = run / "model.keras"
    path.write_bytes(_bundled_copy(tmp_path).read_bytes())
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    for beside in (path, run / "status.json"):
        os.utime(beside, (1_000_000, 1_000_000))
    before = inference.model_version(path)
    (run / "status.json").write_text(json.dumps({"state": "finished", "temperature": 0.6}))
    os.utime(run / "status.json", (1_000_050, 1_000_050))
    assert inference.model_version(path) == before + 50
    assert inference.load_model(path).calibration_temperature == 0.6
