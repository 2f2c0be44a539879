"""Every run writes TensorBoard event files that TensorBoard's own reader reads back as the run's figures."""
import io

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from cifar_core import data, inference, recipe, rundir, tensorboard_log, training
from cifar_core.config import TrainConfig


@pytest.fixture(scope="module")
def run(tiny_archive, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    config = TrainConfig(arch="airbench_tiny", epochs=2, batch_size=20, learning_rate=0.2, precision="float32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensorboard_log, "BATCH_INTERVAL_S", 0.0)     # every step, to check each one
        assert training.train(config, run_dir, data.read(tiny_archive)) == "finished"
    events = EventAccumulator(str(run_dir / tensorboard_log.FOLDER), size_guidance={"tensors": 0})
    events.Reload()
    return config, run_dir, events


def _values(events, tag):
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


def test_batch_points_keep_the_pace_of_the_metrics_file(tmp_path):
    # 100 steps in well under a second: the first step and each epoch's last are written, no others.
    board = tensorboard_log.writer(tmp_path, TrainConfig(), steps_per_epoch=50, total_steps=100)
    for epoch in range(2):
        board.on_epoch_begin(epoch)
        for batch in range(50):
            board.on_train_batch_end(batch, {"loss": 2.0 - epoch, "categorical_accuracy": 0.5})
    board.close()
    events = EventAccumulator(str(tmp_path / tensorboard_log.FOLDER), size_guidance={"tensors": 0})
    events.Reload()
    assert [(step, float(value)) for step, value in _values(events, "batch/loss")] == [(1, 2.0), (50, 2.0), (100, 1.0)]


def test_a_continued_runs_points_come_after_the_run_it_continues(tmp_path):
    """Beside its parent in TensorBoard, a continued run's first epoch sat on its parent's first, as if it had
    learnt in one epoch what took several (the app's curves already count on)."""
    board = tensorboard_log.writer(tmp_path, TrainConfig(), steps_per_epoch=50, total_steps=100, earlier_epochs=3)
    board.on_epoch_begin(0)
    board.on_train_batch_end(0, {"loss": 2.0})
    board.write_epoch({"epoch": 1, "loss": 1.5, "test_accuracy": 0.5})
    board.close()
    events = EventAccumulator(str(tmp_path / tensorboard_log.FOLDER), size_guidance={"tensors": 0})
    events.Reload()
    assert [step for step, _ in _values(events, "batch/loss")] == [151]
    assert [step for step, _ in _values(events, "epoch/loss")] == [4]
    # The rate is this run's own schedule's, at its own first step.
    [(_, rate)] = _values(events, "batch/learning_rate")
    assert float(rate) == pytest.approx(float(recipe.learning_rate_at(0, 100, TrainConfig())))


def test_epoch_scalars_are_the_metrics_file_figures(run):
    _, run_dir, events = run
    records = [r for r in rundir.read_metrics(run_dir) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in records] == [1, 2]
    for name in tensorboard_log.EPOCH_SCALARS:
        written = _values(events, f"epoch/{name}")
        assert [step for step, _ in written] == [1, 2], name
        # Event files hold float32: equal to metrics.jsonl's figure to float32's precision.
        assert [float(value) for _, value in written] == pytest.approx([r[name] for r in records], rel=1e-6), name


def test_batch_scalars_follow_every_step(run):
    config, run_dir, events = run
    steps_per_epoch = 9                      # 180 training pictures in batches of 20
    total = config.epochs * steps_per_epoch
    for tag in ("batch/loss", "batch/accuracy", "batch/learning_rate"):
        assert [step for step, _ in _values(events, tag)] == list(range(1, total + 1)), tag
    rates = [float(value) for _, value in _values(events, "batch/learning_rate")]
    assert rates == pytest.approx([float(recipe.learning_rate_at(s, total, config)) for s in range(total)], rel=1e-6)
    assert rates[0] == pytest.approx(0.2 * config.learning_rate)   # the triangle starts at a fifth of the peak
    assert 0.9 * config.learning_rate < max(rates) <= config.learning_rate
    # The running means at each epoch's last step are the epoch's training figures, as in metrics.jsonl.
    loss = dict(_values(events, "batch/loss"))
    epochs = [r for r in rundir.read_metrics(run_dir) if r["kind"] == "epoch"]
    assert [float(loss[steps_per_epoch]), float(loss[total])] == pytest.approx([r["loss"] for r in epochs], rel=1e-6)


def test_first_layer_filters_are_drawn_each_epoch(run):
    _, run_dir, events = run
    pictures = _values(events, "filters")
    assert [step for step, _ in pictures] == [1, 2]
    decoded = []
    for _, value in pictures:
        width, height, png = value                    # TensorBoard's image summary: width, height, PNG
        image = np.asarray(Image.open(io.BytesIO(png)))
        assert image.shape == (int(height), int(width), 3)
        decoded.append(image)
    # airbench_tiny's first learned layer has 32 filters: 4 rows of 8, each 4x4 pixels enlarged 8 times.
    assert decoded[0].shape == (4 * 32 + 3 * 2, 8 * 32 + 7 * 2, 3)
    assert decoded[0].std() > 10                       # drawn, not one flat colour
    assert not np.array_equal(decoded[0], decoded[1])   # training changed them
    # The last one is the saved model's filters, exactly.
    model = inference.load_model(run_dir / rundir.MODEL)
    np.testing.assert_array_equal(decoded[-1], tensorboard_log.filter_picture(model))


def test_a_run_of_millions_of_steps_takes_no_memory_for_its_schedule(tmp_path):
    """A visitor may ask for 200 epochs at a batch of 1: 9.6 million steps. The schedule was worked out whole
    when the trainer started (256 MB), beyond the memory the queue had budgeted for it; a billion steps
    now cost nothing until written, one rate at a time."""
    config = TrainConfig(arch="airbench_tiny", epochs=200, batch_size=1, learning_rate=0.2, precision="float32")
    callback = tensorboard_log.writer(tmp_path, config, steps_per_epoch=5_000_000, total_steps=1_000_000_000)
    callback.on_epoch_begin(199)
    callback.on_train_batch_end(4_999_999, {"loss": 0.5})
    callback.close()
    events = EventAccumulator(str(tmp_path / tensorboard_log.FOLDER), size_guidance={"tensors": 0})
    events.Reload()
    [(step, rate)] = _values(events, "batch/learning_rate")
    assert step == 1_000_000_000 and float(rate) == pytest.approx(
        float(recipe.learning_rate_at(999_999_999, 1_000_000_000, config)))
