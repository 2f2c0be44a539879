import json
import threading
import time

import numpy as np
import pytest

from cifar_core import data, distill, evaluation, inference, models, recipe, rundir, training
from cifar_core.config import PRECISIONS, PRESETS, ConfigError, TrainConfig, batches_per_epoch, pictures_per_epoch


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "Epochs must be a whole number from 1 to"),
    ({"epochs": 10**6}, "Epochs must be a whole number from 1 to"),
    ({"learning_rate": -0.1}, "Learning rate must be a number above 0"),
    ({"learning_rate": float("nan")}, "Learning rate must be a number above 0"),
    ({"arch": "resnet9000"}, "Unknown architecture 'resnet9000'"),
    ({"batch_size": 0}, "Batch size"),
    ({"optimizer": "lbfgs"}, "Unknown optimizer"),
    ({"train_subset": -5}, "Training subset"),
    ({"whiten_bias_epochs": -1}, "Whitening bias epochs must be a whole number from 0 to"),
    ({"whiten_bias_epochs": 1.5}, "Whitening bias epochs must be a whole number from 0 to"),
    ({"zoom": 0.2, "augment": False}, "Zoom only resizes pictures with augmentation on"),
    # Names every visitor reads on the board and the projector, and a spreadsheet may open.
    ({"name": "Zalgo" + "\u0301" * 3}, "The run name must show letters or digits"),
    ({"name": "\u3164" * 60}, "The run name must show letters or digits"),
    ({"name": "!!!"}, "The run name must show letters or digits"),
    ({"name": '=HYPERLINK("http://example.org")'}, "The run name cannot start with =, +, - or @"),
    ({"name": "@SUM(1)"}, "The run name cannot start with =, +, - or @"),
    # The board's mark for a browser's own runs: a name starting with it would be marked for everyone.
    ({"name": "● Alice's run"}, "The run name cannot start with ● or a dot like it"),
    ({"name": " ⬤ mine"}, "The run name cannot start with ● or a dot like it"),
])
def test_bad_settings_give_one_line(changes, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**changes).validate()
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_names_people_write_are_taken():
    for name in ("", "Class 7B's first try", "café au lait", "jalapeño", "Élodie (2)", "学生 1", "Zürich e\u0301"):
        TrainConfig(name=name).validate()


def test_zoom_is_part_of_the_augmentation():
    with pytest.raises(ConfigError) as e:
        TrainConfig(augment=False, zoom=0.25).validate()
    assert e.value.field == "zoom"
    TrainConfig(augment=True, zoom=0.25).validate()
    TrainConfig(augment=False, zoom=0.0).validate()


def test_a_server_must_accept_at_least_one_waiting_run(monkeypatch):
    from cifar_core import settings
    monkeypatch.setenv("CIFAR_MAX_QUEUED_RUNS", "0")     # every Start would be refused
    with pytest.raises(ValueError, match="^CIFAR_MAX_QUEUED_RUNS must be at least 1, not 0.$"):
        settings.get()
    monkeypatch.setenv("CIFAR_MAX_QUEUED_RUNS", "1")
    assert settings.get().max_queued_runs == 1


def test_the_training_subset_is_as_its_help_says():
    from cifar_core.config import FIELD_HELP
    y = np.arange(50_000) % 10
    x = np.arange(50_000)
    assert "in whole tens (0: all but the calibration images)" in FIELD_HELP["train_subset"]
    (_, trained), _ = recipe.split(x, y, TrainConfig().train_subset, TrainConfig().calibration_images)
    assert len(trained) == 48_000       # all 50,000 less the 2,000 kept out to calibrate
    (_, trained), _ = recipe.split(x, y, 1_234, TrainConfig().calibration_images)
    assert len(trained) == 1_230 and np.bincount(trained).tolist() == [123] * 10


def test_a_damaged_config_file_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"epochs": 2,')
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'config.json'} is damaged: it does not hold a run's"):
        training.load_config(tmp_path)
    (tmp_path / "config.json").write_text('{"colour": "red"}')
    with pytest.raises(ConfigError, match="is damaged: Unknown training setting 'colour'.$"):
        training.load_config(tmp_path)
    (tmp_path / "config.json").write_text('{"epochs": 3}')
    assert training.load_config(tmp_path).epochs == 3


def test_presets_are_valid_and_unknown_ones_refused():
    for name in PRESETS:
        config = TrainConfig.from_preset(name).validate()
        assert config.preset == name
    with pytest.raises(ConfigError, match="Unknown preset 'fastest'"):
        TrainConfig.from_preset("fastest")
    with pytest.raises(ConfigError, match="Unknown training setting 'colour'"):
        TrainConfig.from_dict({"colour": "red"})


def test_a_training_subset_leaves_room_for_the_calibration_images():
    """--train-subset 50000 trained on 48,000: the 2,000 calibration images come out of the 50,000 first."""
    with pytest.raises(ConfigError, match=r"^Training subset can be at most 48,000 here: the 2,000 calibration"):
        TrainConfig(train_subset=50_000).validate()
    TrainConfig(train_subset=48_000).validate()
    TrainConfig(train_subset=50_000, calibration_images=0).validate()


def test_triangle_schedule_warms_up_then_decays_to_zero():
    config = TrainConfig(learning_rate=2.0, schedule="triangle", warmup=0.25, final_lr=0.0)
    rate = [float(recipe.learning_rate_at(step, 100, config)) for step in range(101)]
    assert rate[0] == pytest.approx(0.4)            # starts at a fifth of the peak
    assert rate[25] == pytest.approx(2.0)           # peaks after a quarter of the steps
    assert max(rate) == pytest.approx(2.0)
    assert rate[100] == pytest.approx(0.0, abs=1e-6)
    assert all(a <= b for a, b in zip(rate[:25], rate[1:26]))
    assert all(a >= b for a, b in zip(rate[25:], rate[26:]))
    assert rate[50] == pytest.approx(2.0 * 50 / 75)
    airbench = TrainConfig(learning_rate=1.5, warmup=0.23, final_lr=0.07)
    assert float(recipe.learning_rate_at(0, 1000, airbench)) == pytest.approx(0.3)
    assert float(recipe.learning_rate_at(230, 1000, airbench)) == pytest.approx(1.5)
    assert float(recipe.learning_rate_at(1000, 1000, airbench)) == pytest.approx(1.5 * 0.07)
    constant = TrainConfig(learning_rate=0.01, schedule="constant")
    assert float(recipe.learning_rate_at(77, 100, constant)) == pytest.approx(0.01)
    straight_down = TrainConfig(learning_rate=0.24, warmup=0.0, final_lr=0.0)     # airbench94_muon's
    assert [float(recipe.learning_rate_at(s, 200, straight_down)) for s in (0, 50, 200)] == \
        pytest.approx([0.24, 0.18, 0.0], abs=1e-7)


@pytest.mark.parametrize("shape", [(3, 3, 24, 64), (3, 3, 256, 256), (3, 3, 2, 64), (256, 10)])
def test_a_muon_update_has_every_singular_value_near_one_whatever_the_gradients_scale(shape):
    gradient = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    gradient[..., 0] *= 10            # one direction far larger than the rest: Muon moves them all alike
    update = np.asarray(recipe.orthogonalised(gradient))
    assert update.shape == shape
    singular = np.linalg.svd(update.reshape(-1, shape[-1]), compute_uv=False)
    assert 0.5 < singular.min() and singular.max() < 1.5
    np.testing.assert_allclose(recipe.orthogonalised(gradient * 1e-3), update, atol=1e-4)


def test_muon_steps_the_last_layer_as_sgd_at_its_rate(tiny):
    """One step from the same weights on the same batch: the last layer moves exactly as SGD's at
    MUON_SGD_RATE times the rate."""
    import keras
    labels = np.eye(10, dtype="float32")[tiny.y_train[:32]]
    stepped = {}
    for optimizer, rate in (("muon", 0.2), ("sgd", 0.2 * recipe.MUON_SGD_RATE)):
        config = TrainConfig(arch="airbench_tiny", optimizer=optimizer, learning_rate=rate, schedule="constant",
                             momentum=0.85, weight_decay=0.0, precision="float32", seed=0)
        keras.utils.set_random_seed(0)
        model = training.build_model(config, tiny.x_train, "float32")
        before = [v.numpy() for v in model.trainable_variables]
        model.compile(optimizer=recipe.make_optimizer(config, 10, model), loss=keras.losses.CategoricalCrossentropy())
        model.train_on_batch(tiny.x_train[:32], labels)
        stepped[optimizer] = before, [v.numpy() for v in model.trainable_variables]
    (before, muon), (_, sgd) = stepped["muon"], stepped["sgd"]
    dense = [i for i, value in enumerate(before) if value.ndim == 2]
    assert len(dense) == 1
    np.testing.assert_allclose(muon[dense[0]], sgd[dense[0]], rtol=1e-5, atol=1e-7)
    assert not np.allclose(muon[dense[0]], before[dense[0]])


@pytest.mark.parametrize("momentum", [0.85, 0.0])
def test_muon_steps_each_kernel_from_a_fixed_size_by_its_orthogonalised_nesterov_momentum(tiny, momentum):
    """Two steps: each kernel is scaled to norm sqrt(output channels) (which also leaves weight decay, on
    here, nothing to do), then moved by the rate times `orthogonalised(g + 0.6 v)`, v = 0.6 v + g; Muon keeps
    that momentum whatever the SGD parts' (none, in the second case)."""
    import keras
    import tensorflow as tf
    config = TrainConfig(arch="airbench_tiny", optimizer="muon", learning_rate=0.2, schedule="constant",
                         momentum=momentum, weight_decay=0.1, precision="float32", seed=0)
    model = training.build_model(config, tiny.x_train, "float32")
    loss = keras.losses.CategoricalCrossentropy()
    model.compile(optimizer=recipe.make_optimizer(config, 10, model), loss=loss)
    kernels = [v for v in model.trainable_variables if len(v.shape) == 4]
    assert kernels
    velocity = [np.zeros(v.shape, np.float32) for v in kernels]
    for step in range(2):
        batch = slice(step * 32, (step + 1) * 32)
        x, labels = tiny.x_train[batch], np.eye(10, dtype="float32")[tiny.y_train[batch]]
        weights = model.get_weights()
        with tf.GradientTape() as tape:
            value = loss(labels, model(x, training=True))
        gradients = [g.numpy() for g in tape.gradient(value, kernels)]
        model.set_weights(weights)          # the taped pass moved the BatchNorm statistics: put them back
        before = [v.numpy() for v in kernels]
        model.train_on_batch(x, labels)
        for i, (kernel, gradient) in enumerate(zip(kernels, gradients)):
            velocity[i] = recipe.MUON_MOMENTUM * velocity[i] + gradient
            sized = before[i] * before[i].shape[-1] ** 0.5 / np.linalg.norm(before[i])
            expected = sized - 0.2 * np.asarray(recipe.orthogonalised(gradient + recipe.MUON_MOMENTUM * velocity[i]))
            np.testing.assert_allclose(kernel.numpy(), expected, atol=2e-4)


def test_muon_is_refused_for_a_network_without_batchnorm():
    with pytest.raises(ConfigError, match="Muon needs a network with BatchNorm"):
        TrainConfig(arch="tutorial", optimizer="muon").validate()


def test_a_whitening_layer_whose_bias_learns_trains_in_float32():
    import keras
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        built = [models.build("airbench", for_training=True, whitening_learns=True),
                 models.build("airbench", for_training=True), models.build("airbench", whitening_learns=True)]
    finally:
        keras.config.set_dtype_policy("float32")
    assert [model.get_layer("whiten").compute_dtype for model in built] == ["float32", "bfloat16", "bfloat16"]


def test_augment_flips_and_shifts_but_keeps_the_picture():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 32, 32, 3)).astype(np.uint8)
    out = recipe.augment(images, rng)
    assert out.shape == images.shape and out.dtype == np.uint8
    changed = [not np.array_equal(a, b) for a, b in zip(images, out)]
    assert 0.8 < np.mean(changed) < 1.0          # 1 in 50 draws no flip and no shift
    # The centre of each image survives, possibly mirrored and moved by at most 2 pixels.
    for original, augmented in zip(images[:20], out[:20]):
        centre = augmented[8:24, 8:24]
        candidates = [src[8 + dy:24 + dy, 8 + dx:24 + dx] for src in (original, original[:, ::-1])
                      for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(np.array_equal(centre, c) for c in candidates)


def test_zoom_magnifies_each_picture_about_its_centre():
    square = np.zeros((1, 32, 32, 3), np.uint8)
    square[:, 12:20, 12:20] = 200                  # an 8x8 subject in the middle
    assert np.array_equal(recipe.zoomed(square, np.array([1.0])), square)
    larger = recipe.zoomed(square, np.array([2.0]))[0, :, :, 0]
    assert (larger > 100).sum() == 16 * 16 and (larger[8:24, 8:24] > 100).all()
    smaller = recipe.zoomed(square, np.array([0.5]))[0, :, :, 0]
    assert (smaller[14:18, 14:18] > 100).all() and (smaller[10:22, 10:22] > 100).sum() == 4 * 4


def test_zoom_draws_sizes_both_ways_and_leaves_recipes_without_it_as_they_were():
    rng_images = np.random.default_rng(2)
    x = rng_images.integers(0, 256, (300, 32, 32, 3)).astype(np.uint8)
    y = np.arange(300) % 10
    plain = [images[:] for images, _ in recipe.epochs_of(x, y, TrainConfig(epochs=2, batch_size=100))]
    again = [images[:] for images, _ in recipe.epochs_of(x, y, TrainConfig(epochs=2, batch_size=100, zoom=0.0))]
    assert all(np.array_equal(a, b) for a, b in zip(plain, again))
    epoch = next(recipe.epochs_of(x, y, TrainConfig(epochs=1, zoom=0.25, batch_size=100)))[0]
    assert epoch.scales.min() >= 1 / 1.25 and epoch.scales.max() <= 1.25
    assert (epoch.scales < 0.95).mean() > 0.3 and (epoch.scales > 1.05).mean() > 0.3
    assert epoch[:].shape == x.shape and epoch[:].dtype == np.uint8
    assert plain[0].shape == x.shape and not np.array_equal(epoch[:], plain[0])


def test_each_picture_is_mirrored_every_other_epoch():
    # Pictures that are left-right asymmetric and unique, so each output can be traced to its source.
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
    y = np.arange(64) % 10
    config = TrainConfig(epochs=4, augment=True)
    mirrored = []
    for images, _ in recipe.epochs_of(x, y, config):
        seen = {}
        for picture in images:
            centre = picture[8:24, 8:24]
            for i, source in enumerate(x):
                for flipped, src in ((False, source), (True, source[:, ::-1])):
                    if any(np.array_equal(centre, src[8 + dy:24 + dy, 8 + dx:24 + dx])
                           for dy in range(-2, 3) for dx in range(-2, 3)):
                        seen[i] = flipped
        assert sorted(seen) == list(range(64))     # every picture once per epoch
        mirrored.append(np.array([seen[i] for i in range(64)]))
    assert 0.2 < mirrored[0].mean() < 0.8
    for before, after in zip(mirrored, mirrored[1:]):
        assert np.all(before != after)             # the other way round, the next epoch


def test_batch_records_are_running_means_over_the_epoch():
    # What each training step reports: 3.0 then 1.0 loss, on batches of 20 and then 10 pictures.
    class Model:
        stop_training = False
        steps = iter([{"loss": 3.0, "categorical_accuracy": 0.0}, {"loss": 1.0, "categorical_accuracy": 1.0}])

        def train_on_batch(self, x, y, return_dict):
            return next(self.steps)

    class Listener:
        batches, epoch_logs = [], None

        def on_epoch_begin(self, epoch): pass
        def on_train_batch_begin(self, step): pass
        def on_train_batch_end(self, step, logs): self.batches.append(logs)
        def on_epoch_end(self, epoch, logs): self.epoch_logs = logs

    listener = Listener()
    training.train_epoch(Model(), np.zeros((30, 1)), np.zeros((30, 1)), 20, 0, listener)
    assert listener.batches[0] == {"loss": 3.0, "categorical_accuracy": 0.0}
    assert listener.batches[1] == pytest.approx({"loss": 70 / 30, "categorical_accuracy": 10 / 30})
    assert listener.epoch_logs == listener.batches[-1]


def test_subset_takes_equally_from_each_class():
    y = np.repeat(np.arange(10), 50)
    x = np.arange(500)[:, None]
    xs, ys = recipe.subset(x, y, 100)
    assert np.bincount(ys).tolist() == [10] * 10


@pytest.fixture
def tiny(tiny_archive):
    return data.read(tiny_archive)


def _records(run_dir, kind):
    return [r for r in rundir.read_metrics(run_dir) if r["kind"] == kind]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_and_saves_a_loadable_model(preset, tiny, tmp_path):
    config = TrainConfig.from_preset(preset, epochs=1, batch_size=32)
    assert training.train(config, tmp_path, tiny) == "finished"
    model = inference.load_model(tmp_path / rundir.MODEL)
    probabilities = inference.predict(model, tiny.x_test)
    assert probabilities.shape == (40, 10)
    assert rundir.read_status(tmp_path)["precision"] in PRECISIONS


def test_a_run_directory_follows_the_contract(tiny, tmp_path):
    config = TrainConfig(arch="airbench_tiny", epochs=3, batch_size=20, learning_rate=0.2, precision="float32")
    assert training.train(config, tmp_path, tiny) == "finished"
    status = rundir.read_status(tmp_path)
    assert status["state"] == "finished" and status["error"] is None and status["ended"] >= status["started"]
    epochs = _records(tmp_path, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    for record in epochs:
        assert set(record) == {"kind", "epoch", "elapsed_s", "wall_s", "test_s", "loss", "accuracy", "test_loss",
                               "test_accuracy", "images_per_s"}
        assert record["images_per_s"] > 0
    assert epochs[0]["elapsed_s"] < epochs[1]["elapsed_s"] < epochs[2]["elapsed_s"]
    # Test accuracy is the saved model's accuracy on the whole test set, not on training batches.
    probabilities = inference.predict(inference.load_model(tmp_path / rundir.MODEL), tiny.x_test, mirror=False)
    assert epochs[-1]["test_accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == tiny.y_test))
    assert epochs[-1]["test_accuracy"] > 0.5     # the tiny classes are colours: easy to learn
    # The model's one accuracy (sidebar, board): the final model on the whole test set with the mirror,
    # exactly as Evaluate measures it; the epochs' test passes are without the mirror.
    mirrored = inference.predict(inference.load_model(tmp_path / rundir.MODEL), tiny.x_test, mirror=True)
    assert status["test_accuracy"] == np.mean(mirrored.argmax(1) == tiny.y_test)
    assert status["per_class_accuracy"] == pytest.approx(evaluation.per_class_accuracy(tiny.y_test, mirrored.argmax(1)),
                                                         nan_ok=True)
    # Wall time: the test passes are counted, and the final checks on top of them.
    assert status["testing_s"] >= sum(r["test_s"] for r in epochs) > 0
    assert all(r["wall_s"] > r["elapsed_s"] for r in epochs) and status["test_images"] == len(tiny.y_test)
    batches = _records(tmp_path, "batch")
    assert batches and {"epoch", "step", "steps", "elapsed_s", "loss", "accuracy"} <= set(batches[0])
    assert batches[-1]["step"] == batches[-1]["steps"]      # an epoch's last step is always recorded
    # Its answers on the test set are kept with the model, as Evaluate and the Quiz would measure them.
    kept = evaluation.shipped_probabilities(tmp_path / rundir.MODEL, tiny.x_test, tiny.y_test)
    assert np.allclose(evaluation.with_temperature(kept, status["temperature"]), mirrored, atol=2e-3)
    # And Look inside's search for the pictures each map answers most, as the server would make it.
    from cifar_core import inside
    from test_inside import shipped_top
    model = inference.load_model(tmp_path / rundir.MODEL)
    np.testing.assert_array_equal(shipped_top(tmp_path / rundir.MODEL, tiny.x_test),
                                  np.concatenate(inside.top_activations(model, tiny.x_test[:inside.TOP_PICTURES])))


def test_the_training_loss_drawn_is_the_same_measure_as_the_test_loss(tiny, tmp_path):
    """Trained on a label-smoothed loss, whose least is the entropy of the smoothed target: 1.68 at
    smoothing 0.5, even for a perfect answer. Drawn beside the test loss (plain cross-entropy) it would sit
    above it all run; the curves get the training pictures' plain cross-entropy instead."""
    smoothing = 0.5
    target = np.full(10, smoothing / 10)
    target[0] += 1 - smoothing
    least_smoothed = float(-(target * np.log(target)).sum())
    config = TrainConfig(arch="airbench_tiny", epochs=6, batch_size=20, learning_rate=0.2, precision="float32",
                         label_smoothing=smoothing)
    assert training.train(config, tmp_path, tiny) == "finished"
    last = _records(tmp_path, "epoch")[-1]
    assert last["test_accuracy"] > 0.9                    # the tiny classes are colours: learnt
    assert last["loss"] < least_smoothed - 0.3            # not the smoothed loss, which cannot go this low
    assert abs(last["loss"] - last["test_loss"]) < 0.5    # the same measure, on both sides


def _stopped_once(tiny, run_dir, kind: str, reason: str = "") -> dict:
    """A 50-epoch run trained in a thread, asked to stop once its first `kind` record is written:
    {"state": what `train` returned, "batches": how many batch records there were at the request}."""
    config = TrainConfig(arch="airbench_tiny", epochs=50, batch_size=4, precision="float32")
    result = {}
    thread = threading.Thread(target=lambda: result.update(state=training.train(config, run_dir, tiny)))
    thread.start()
    while not _records(run_dir, kind):
        time.sleep(0.05)
    rundir.request_stop(run_dir, reason)
    result["batches"] = len(_records(run_dir, "batch"))
    thread.join(timeout=60)
    return result


def test_stop_file_ends_the_run_within_a_batch(tiny, tmp_path):
    result = _stopped_once(tiny, tmp_path, "epoch", "Stopped for a test.")
    status = rundir.read_status(tmp_path)
    assert result["state"] == "stopped" and status["state"] == "stopped"
    assert status["stopped_because"] == "Stopped for a test."
    last = _records(tmp_path, "batch")[-1]
    assert last["epoch"] < 50
    assert (tmp_path / rundir.MODEL).exists()     # the last weights are kept
    assert status["test_accuracy"] is not None   # and measured, as every model is
    assert len(_records(tmp_path, "batch")) <= result["batches"] + 2


def test_a_run_stopped_in_its_first_epoch_keeps_no_model_and_is_not_tested(tiny, tmp_path):
    result = _stopped_once(tiny, tmp_path, "batch")
    status = rundir.read_status(tmp_path)
    assert result["state"] == "stopped" and not _records(tmp_path, "epoch")
    assert not (tmp_path / rundir.MODEL).exists()
    assert status["test_accuracy"] is None and status["stopped_because"] is None


def test_a_run_stopped_in_its_first_epoch_after_a_while_keeps_and_tests_what_it_learned(tiny, tmp_path,
                                                                                      monkeypatch):
    """A first epoch can outlast a class's turn (a batch of 1 on every picture: an hour or two), and the
    turn could not end such a run, as it kept nothing: past a minute of training it keeps its model."""
    monkeypatch.setattr(rundir, "FIRST_EPOCH_KEPT_AFTER_S", 0.0)     # a minute, here at once
    result = _stopped_once(tiny, tmp_path, "batch", "Stopped after its turn.")
    status = rundir.read_status(tmp_path)
    assert result["state"] == "stopped" and not _records(tmp_path, "epoch")
    assert (tmp_path / rundir.MODEL).exists() and status["test_accuracy"] is not None
    assert status["stopped_because"] == "Stopped after its turn."


def test_a_run_stopped_before_it_started_builds_nothing(tiny, tmp_path):
    rundir.request_stop(tmp_path, "Cleared by the teacher.")
    config = TrainConfig(arch="airbench_tiny", epochs=50, batch_size=4, precision="float32")
    assert training.train(config, tmp_path, tiny) == "stopped"
    status = rundir.read_status(tmp_path)
    assert status["stopped_because"] == "Cleared by the teacher." and not _records(tmp_path, "batch")


def test_a_diverging_run_fails_with_a_sentence_about_the_learning_rate(tiny, tmp_path):
    config = TrainConfig(arch="tutorial", optimizer="sgd", learning_rate=100.0, momentum=0.9,
                         epochs=5, batch_size=20, schedule="constant", precision="float32")
    assert training.train(config, tmp_path, tiny) == "failed"
    error = rundir.read_status(tmp_path)["error"]
    assert "learning rate (100) is probably too high" in error
    json.dumps(rundir.read_metrics(tmp_path))     # NaN never reaches the file as invalid JSON


def test_weights_gone_infinite_on_an_epochs_last_step_fail_the_run_unsaved(tiny, tmp_path, monkeypatch):
    """A step's loss is measured before its update: weights made infinite by an epoch's last step were
    saved, tested and snapshotted (every picture "airplane, nan%") before the next batch failed the run."""
    real = training._recorder

    def recorder(*args, **kwargs):
        made = real(*args, **kwargs)
        epoch_ended = made.on_epoch_end

        def blown_up_by_the_last_step(epoch, logs=None):     # every loss recorded finite, the weights not
            made.model.set_weights([np.full_like(w, np.inf) for w in made.model.get_weights()])
            epoch_ended(epoch, logs)
        made.on_epoch_end = blown_up_by_the_last_step
        return made
    monkeypatch.setattr(training, "_recorder", recorder)
    config = TrainConfig(arch="airbench_tiny", epochs=2, batch_size=20, precision="float32")
    assert training.train(config, tmp_path, tiny) == "failed"
    assert "weights became infinite at the end of epoch 1" in rundir.read_status(tmp_path)["error"]
    assert not (tmp_path / rundir.MODEL).exists() and not _records(tmp_path, "epoch")


def test_an_invalid_config_fails_the_run_without_a_traceback(tiny, tmp_path, capsys):
    assert training.train(TrainConfig(epochs=0), tmp_path, tiny) == "failed"
    assert rundir.read_status(tmp_path)["error"].startswith("Epochs must be")
    # A person's mistake is said by the status; its traceback is kept in the run's log, not on a terminal.
    assert "Traceback" not in capsys.readouterr().err
    assert "ConfigError: Epochs must be" in (tmp_path / rundir.LOG).read_text()


def test_a_bug_in_a_run_still_shows_its_traceback(tiny, tmp_path, capsys, monkeypatch):
    def broken(*args):
        raise KeyError("a bug")
    monkeypatch.setattr(recipe, "split", broken)
    assert training.train(TrainConfig(epochs=1), tmp_path, tiny) == "failed"
    assert rundir.read_status(tmp_path)["error"] == "KeyError: 'a bug'"
    assert "Traceback" in capsys.readouterr().err


def test_a_run_whose_closer_look_cannot_be_kept_still_finishes(tiny, tmp_path, capsys, monkeypatch):
    """Look inside's closer look, searched as a run ends, only saves the app work: running out of memory
    there leaves a saved, tested model, and the run finished, not failed."""
    from cifar_core import inside

    def out_of_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(inside, "ship_top_activations", out_of_memory)
    config = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32")
    assert training.train(config, tmp_path, tiny) == "finished"
    status = rundir.read_status(tmp_path)
    assert status["test_accuracy"] is not None and status["error"] is None
    assert "closer look was not kept" in capsys.readouterr().err
    assert not (tmp_path / "model.inside.npz").exists()


def test_continue_from_a_checkpoint(tiny, tmp_path):
    first = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32")
    training.train(first, tmp_path / "a", tiny)
    second = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32",
                         initial_model=str(tmp_path / "a" / rundir.MODEL))
    assert training.train(second, tmp_path / "b", tiny) == "finished"
    wrong = TrainConfig(arch="tutorial", epochs=1, initial_model=str(tmp_path / "a" / rundir.MODEL))
    assert training.train(wrong, tmp_path / "c", tiny) == "failed"
    assert "is not a tutorial model" in rundir.read_status(tmp_path / "c")["error"]


def _saved_before_the_whitening_had_a_bias(path):
    """The bundled model's first network (it has two side by side), saved as airbench networks were before
    their whitening layer had a bias (its bias there is zeros: the network was trained without one)."""
    import keras
    first = models.apart(keras.models.load_model(inference.DEFAULT_MODEL, compile=False))[0]
    assert not first.get_layer("whiten").get_weights()[1].any()

    def without_bias(layer):
        config = layer.get_config()
        return type(layer).from_config({**config, "use_bias": False} if layer.name == "whiten" else config)
    old = keras.models.clone_model(first, clone_function=without_bias)
    for layer in first.layers:
        weights = layer.get_weights()
        old.get_layer(layer.name).set_weights(weights[:1] if layer.name == "whiten" else weights)
    old.save(path)
    return path


def test_a_model_saved_before_the_whitening_had_a_bias_is_continued_from(tmp_path):
    """An airbench network now has a whitening bias; continuing from a model saved without one gives that
    bias zeros, and the network starts out answering exactly as the model does."""
    import keras
    path = _saved_before_the_whitening_had_a_bias(tmp_path / "old.keras")
    config = TrainConfig.from_preset("best", initial_model=str(path), precision="float32")
    model = training.build_model(config, np.zeros((0, 32, 32, 3), np.uint8), "float32")
    saved = keras.models.load_model(path, compile=False)
    assert not saved.get_layer("whiten").use_bias and model.get_layer("whiten").use_bias
    np.testing.assert_array_equal(model.get_layer("whiten").get_weights()[1], np.zeros(24, np.float32))
    pictures = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model(pictures, training=False), saved(pictures, training=False), atol=1e-5)


def test_the_whitening_bias_learns_for_its_steps_then_stays_undecayed(tiny):
    """airbench's recipe: the whitening layer's bias learns for the first steps only (here 2 of 5), and
    weight decay leaves it alone (it would pull the bias back to zero once it stopped learning), nor does
    its momentum carry it on; its filters never learn."""
    import keras
    config = TrainConfig(arch="airbench_tiny", batch_size=20, momentum=0.85, weight_decay=0.05,
                         schedule="constant", learning_rate=0.5, precision="float32")
    model = training.build_model(config, tiny.x_train, "float32")
    model.compile(optimizer=recipe.make_optimizer(config, 5, model, whiten_bias_steps=2),
                  loss=keras.losses.CategoricalCrossentropy())
    whiten = model.get_layer("whiten")
    assert [v.path for v in whiten.trainable_weights] == ["whiten/bias"]
    kernel, biases = whiten.kernel.numpy(), [whiten.bias.numpy()]
    labels = np.eye(10, dtype="float32")[tiny.y_train]
    for step in range(5):
        model.train_on_batch(tiny.x_train[step * 20:(step + 1) * 20], labels[step * 20:(step + 1) * 20])
        biases.append(whiten.bias.numpy())
    assert not np.array_equal(biases[1], biases[0]) and not np.array_equal(biases[2], biases[1])
    assert all(np.array_equal(later, biases[2]) for later in biases[3:])
    np.testing.assert_array_equal(whiten.kernel.numpy(), kernel)


def test_distilled_targets_mix_each_label_with_the_models_answer():
    labels = np.array([3, 3, 0])
    answers = np.array([[0.0] * 3 + [0.8] + [0.2 / 6] * 6,          # agrees with the label
                        [0.0] * 5 + [1.0] + [0.0] * 4,               # sure of another class: wrong
                        [0.1] * 10], np.float32)
    targets = distill.targets(recipe.one_hot(labels), answers, weight=0.8)
    assert targets.dtype == np.float32 and np.allclose(targets.sum(1), 1)
    assert targets[0, 3] == pytest.approx(0.84) and targets[0, 5] == pytest.approx(0.8 * 0.2 / 6)
    assert targets[1, 3] == pytest.approx(0.2) and targets[1, 5] == pytest.approx(0.8)
    assert targets[2, 0] == pytest.approx(0.28) and targets[2, 1] == pytest.approx(0.08)


def test_epochs_are_whole_batches_and_the_pictures_left_over_take_turns():
    x = np.arange(250, dtype=np.uint8).repeat(32 * 32 * 3).reshape(250, 32, 32, 3)   # picture i is all i
    y = np.arange(250) % 10
    seen = []
    for images, targets in recipe.epochs_of(x, y, TrainConfig(epochs=6, batch_size=100, augment=False)):
        assert len(images) == len(targets) == 200                   # two whole batches, 50 left over
        seen.append(set(images[:][:, 0, 0, 0].tolist()))
    assert all(len(epoch) == 200 for epoch in seen) and len(set().union(*seen)) == 250
    assert len({frozenset(set(range(250)) - epoch) for epoch in seen}) == 6      # other pictures wait each time
    assert [batches_per_epoch(n, 1024) for n in (49_000, 48_000, 1024, 1000)] == [47, 46, 1, 1]
    assert [pictures_per_epoch(n, 1024) for n in (49_000, 48_000, 1024, 1000)] == [48_128, 47_104, 1024, 1000]
    # Fewer pictures than a batch: one batch of all of them.
    assert len(next(recipe.epochs_of(x[:64], y[:64], TrainConfig(epochs=1, batch_size=100)))[0]) == 64


def test_each_picture_keeps_its_own_target_row_through_the_shuffle():
    x = np.arange(250, dtype=np.uint8).repeat(32 * 32 * 3).reshape(250, 32, 32, 3)   # picture i is all i
    rows = np.random.default_rng(0).random((250, 10)).astype(np.float32)
    for images, targets in recipe.epochs_of(x, rows, TrainConfig(epochs=2, augment=False)):
        assert np.array_equal(targets, rows[images[:][:, 0, 0, 0]])


def test_learning_from_models_keeps_the_compiled_step_of_the_same_recipe():
    from cifar_core.warm_networks import WarmNetworks
    plain = TrainConfig.from_preset("best")
    distilled = TrainConfig.from_preset("best", distill_from=("a.keras", "b.keras"))
    assert WarmNetworks.recipe(plain, "float32", 100) == WarmNetworks.recipe(distilled, "float32", 100)


def test_a_run_learns_from_saved_models_answers(tiny, tmp_path):
    first = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32")
    assert training.train(first, tmp_path / "a", tiny) == "finished"
    teacher = str(tmp_path / "a" / rundir.MODEL)
    student = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32",
                          distill_from=(teacher, teacher))
    assert training.train(student, tmp_path / "b", tiny) == "finished"
    assert rundir.read_status(tmp_path / "b")["test_accuracy"] is not None
    # Each batch's targets are the models' answers on that batch as trained, not on the plain pictures.
    models = distill.teachers((teacher, teacher))
    given = []
    step = distill.taught(lambda x, y: given.append(y) or {}, models)
    x, labels = tiny.x_train[:8], recipe.one_hot(tiny.y_train[:8])
    step(x, labels)
    step(x[:, :, ::-1], labels)
    answers = inference.predict(models[0], x, mirror=False, calibrated=False)
    np.testing.assert_allclose(given[0], 0.2 * labels + 0.8 * answers, rtol=1e-5, atol=1e-6)
    assert not np.allclose(given[1], given[0])
    (tmp_path / "notes.keras").write_text("not a model")
    for path, sentence in ((tmp_path / "gone.keras", "There is no model file"),
                           (tmp_path / "notes.keras", "is not a CIFAR-10 Studio model")):
        config = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, distill_from=(str(path),))
        assert training.train(config, tmp_path / path.stem, tiny) == "failed"
        error = rundir.read_status(tmp_path / path.stem)["error"]
        assert error.startswith(f"Cannot learn from {path}: ") and sentence in error and "\n" not in error


def test_a_run_on_a_kept_network_trains_exactly_as_on_a_new_one(tiny, tmp_path):
    """A worker's next run with the same recipe skips tracing the network again, and nothing of the
    last run leaks into it: same starting weights, optimizer back at step 0, same curves to the digit."""
    from cifar_core.warm_networks import WarmNetworks
    config = TrainConfig(arch="airbench_tiny", epochs=2, batch_size=20, learning_rate=0.2, precision="float32",
                         optimizer="adam", label_smoothing=0.1)
    networks = WarmNetworks()
    assert training.train(config, tmp_path / "new", tiny) == "finished"
    assert training.train(config, tmp_path / "first", tiny, networks=networks) == "finished"
    kept = networks._network
    step = kept.train_function
    assert training.train(config, tmp_path / "kept", tiny, networks=networks) == "finished"
    assert networks._network is kept and kept.train_function is step     # the same compiled step, no new trace

    def curves(name):   # the first step's record and every epoch's (other steps are written by the clock)
        records = rundir.read_metrics(tmp_path / name)
        return [(r["kind"], r["epoch"], r["loss"], r["accuracy"], r.get("test_loss"))
                for r in records[:1] + [r for r in records if r["kind"] == "epoch"]]
    assert curves("kept") == curves("first") == curves("new")
    assert rundir.read_status(tmp_path / "kept")["test_accuracy"] == rundir.read_status(tmp_path / "new")["test_accuracy"]
    # Another recipe (here another seed is the same recipe; another learning rate is not) gets its own network.
    assert training.train(config.__class__(**{**config.to_dict(), "seed": 3}), tmp_path / "seed", tiny,
                          networks=networks) == "finished" and networks._network is kept
    assert curves("seed") != curves("new")
    changed = config.__class__(**{**config.to_dict(), "learning_rate": 0.1})
    assert training.train(changed, tmp_path / "other", tiny, networks=networks) == "finished"
    assert networks._network is not kept


def test_a_new_network_is_traced_at_start_up_and_left_as_built(tiny):
    """Tracing the training step is start-up, not the first step's time (the curves' clock): the network
    comes back traced, its weights, BatchNorm statistics and optimizer untouched by the step that traced it."""
    from cifar_core.warm_networks import WarmNetworks
    config = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=20, precision="float32")
    fresh = training.build_model(config, tiny.x_train, "float32")
    before = fresh.get_weights()
    sample = (tiny.x_train[:20], np.eye(10, dtype="float32")[tiny.y_train[:20]])
    compile_ = lambda m: m.compile(optimizer=recipe.make_optimizer(config, 10), loss="categorical_crossentropy")  # noqa: E731
    network = WarmNetworks().training("recipe", fresh, compile_, sample)
    assert network.train_function is not None                 # traced: the first step runs a ready graph
    assert int(network.optimizer.iterations.numpy()) == 0
    assert all(np.array_equal(a, b) for a, b in zip(network.get_weights(), before))


def test_lookahead_shows_the_slow_weights_at_each_epoch_end_and_trains_on_from_the_fast_ones():
    """airbench's lookahead averages every 5 steps; an epoch of 7 steps ends 2 steps after an average.
    The test pass and checkpoint see the average, and the next epoch starts where training had got to."""
    import keras
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    callback = recipe.lookahead(total_steps=14)
    callback.set_model(model)

    def step():      # a training step stand-in: every weight grows by one
        model.set_weights([w + 1 for w in model.get_weights()])
        callback.on_train_batch_end(0)

    model.set_weights([np.zeros((1, 1), np.float32)])
    callback.on_epoch_begin(0)
    for _ in range(7):
        step()
    reached = model.get_weights()[0].item()
    callback.on_epoch_end(0)
    slow = model.get_weights()[0].item()
    assert slow < reached == pytest.approx(slow + 2)       # the average at step 5, two steps back
    callback.on_epoch_begin(1)
    assert model.get_weights()[0].item() == pytest.approx(reached)
    for _ in range(7):
        step()
    callback.on_epoch_end(1)
    assert model.get_weights()[0].item() < reached + 7     # the run ends on its slow weights
