"""The training loop that writes a run directory (configs and presets live in `config`).

The trainer knows nothing about the UI: it reads its config, and reports only
through the run directory (see `rundir`). Keras' `train_on_batch` and standard
callbacks drive the loop, so it runs on any Keras backend; a callback writes
metrics, checkpoints, status and per-epoch snapshots (see `snapshots`), and
honours the STOP file after the current batch.
"""
from __future__ import annotations

import json
import math
import os
import time
import traceback
from pathlib import Path

import numpy as np

from cifar_core import data as cifar_data
from cifar_core import evaluation, models, recipe, rundir, snapshots
from cifar_core.config import ConfigError, TrainConfig

def evaluate_arrays(model, x, y, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """Plain cross-entropy, accuracy and the probabilities of `model` on (x, y)."""
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return loss, float(np.mean(probs.argmax(1) == y)), probs


def _recorder(run_dir: Path, config: TrainConfig, test: tuple, export_model, steps_per_epoch: int, progress):
    """The callback that writes metrics.jsonl, model.keras and the snapshots, and watches for STOP and NaN."""
    import keras
    snapshot = snapshots.Writer(run_dir, *test, config.epochs)

    class Recorder(keras.callbacks.Callback):
        failure: str | None = None
        stopped = False
        per_class: dict | None = None   # the last test pass's accuracy per class
        test_accuracy: float | None = None   # and overall

        started = None      # training clock, over the whole run; the test passes are taken out
        last_write = 0.0
        epoch_images = 0

        def elapsed(self):
            return time.monotonic() - self.started if self.started else 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_started_at = self.elapsed()
            self.epoch_images = 0

        def on_train_batch_begin(self, batch, logs=None):
            if self.started is None:
                self.started = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.epoch_images += config.batch_size
            loss = float(logs.get("loss", float("nan")))
            if not math.isfinite(loss):
                self.failure = (f"The loss became {loss} at epoch {self.epoch + 1}, step {batch + 1}: "
                                f"the learning rate ({config.learning_rate:g}) is probably too high.")
                self.model.stop_training = True
            if rundir.stop_requested(run_dir):
                self.stopped = True
                self.model.stop_training = True
            if time.monotonic() - self.last_write >= 1.0 or batch + 1 == steps_per_epoch:
                self.last_write = time.monotonic()
                rundir.append_metric(run_dir, {
                    "kind": "batch", "epoch": self.epoch + 1, "step": batch + 1,
                    "elapsed_s": round(self.elapsed(), 3), "loss": loss,
                    "accuracy": float(logs.get("categorical_accuracy", float("nan")))})

        def on_epoch_end(self, epoch, logs=None):
            if self.failure:
                return
            elapsed = self.elapsed()
            images_per_s = self.epoch_images / max(1e-9, elapsed - self.epoch_started_at)
            save_checkpoint(self.model, export_model, run_dir)
            if self.stopped:  # a partial epoch: keep the weights, skip the test pass
                return
            test_loss, test_accuracy, probabilities = evaluate_arrays(self.model, *test)
            self.test_accuracy = test_accuracy
            self.per_class = evaluation.per_class_accuracy(test[1], probabilities.argmax(axis=1))
            record = {"kind": "epoch", "epoch": epoch + 1, "elapsed_s": round(elapsed, 3),
                      "loss": float(logs["loss"]), "accuracy": float(logs["categorical_accuracy"]),
                      "test_loss": test_loss, "test_accuracy": test_accuracy,
                      "images_per_s": round(images_per_s, 1)}
            rundir.append_metric(run_dir, record)
            snapshot.write(self.model, epoch + 1, probabilities, list(self.per_class.values()))
            if progress:
                progress(record)
            # The test pass is not training time: restart the clock where it stood.
            self.started = time.monotonic() - elapsed

    return Recorder()


def save_checkpoint(model, export_model, run_dir: Path) -> None:
    """Write model.keras atomically, in float32 so it runs fast on any machine."""
    export_model.set_weights(model.get_weights())
    tmp = Path(run_dir) / ".model.tmp.keras"
    export_model.save(tmp)
    os.replace(tmp, Path(run_dir) / rundir.MODEL)


def build_model(config: TrainConfig, x_train: np.ndarray, precision: str):
    """The model to train, under `precision`, from scratch or from config.initial_model."""
    import keras
    keras.config.set_dtype_policy(precision)
    try:
        model = models.build(config.arch, for_training=True)
    finally:
        keras.config.set_dtype_policy("float32")
    if config.initial_model:
        start = keras.models.load_model(config.initial_model)
        try:
            model.set_weights(start.get_weights())
        except ValueError:
            raise ConfigError(f"{config.initial_model} is not a {config.arch} model, so training cannot continue from it.") from None
    else:
        models.init_whitening(model, x_train)
    return model


def train(config: TrainConfig, run_dir: str | os.PathLike, dataset: cifar_data.Cifar10 | None = None,
          progress=None) -> str:
    """Train as `config` says, writing everything into `run_dir`. Returns the final state.

    `progress(record)`, if given, is called with each epoch's metrics record.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.update_status(run_dir, state="running", pid=os.getpid(),
                         pid_started=rundir.process_start(os.getpid()), started=rundir.now())
    try:
        config.validate()
        import keras
        keras.utils.set_random_seed(config.seed)
        dataset = dataset or cifar_data.load()
        (x_train, y_train), calibration = recipe.split(dataset.x_train, dataset.y_train, config.train_subset,
                                                       config.calibration_images)
        if not len(x_train):
            raise cifar_data.DataError("There are no training images: the full CIFAR-10 data set is needed to train.")
        precision = recipe.resolve_precision(config.precision)
        rundir.update_status(run_dir, precision=precision, train_images=len(x_train))
        model = build_model(config, x_train, precision)
        export_model = models.build(config.arch)
        steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        model.compile(optimizer=recipe.make_optimizer(config, total_steps),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                      metrics=["categorical_accuracy"])
        recorder = _recorder(run_dir, config, (dataset.x_test, dataset.y_test), export_model, steps_per_epoch, progress)
        callbacks = keras.callbacks.CallbackList(
            [*([recipe.lookahead(total_steps)] if config.lookahead else []), recorder], model=model)
        model.stop_training = False
        for epoch, (x_epoch, y_epoch) in enumerate(recipe.epochs_of(x_train, y_train, config)):
            train_epoch(model, x_epoch, y_epoch, config.batch_size, epoch, callbacks)
            if recorder.failure or recorder.stopped:
                break
        if recorder.failure:
            raise RuntimeError(recorder.failure)
        state = "stopped" if recorder.stopped else "finished"
        temperature = calibrate(export_model, *calibration) if (run_dir / rundir.MODEL).exists() else None
        rundir.update_status(run_dir, state=state, ended=rundir.now(), error=None, temperature=temperature,
                             test_accuracy=recorder.test_accuracy, per_class_accuracy=recorder.per_class)
        return state
    except Exception as e:
        message = str(e) if isinstance(e, (ValueError, RuntimeError)) else f"{type(e).__name__}: {e}"
        traceback.print_exc()
        rundir.update_status(run_dir, state="failed", ended=rundir.now(), error=message)
        return "failed"


def calibrate(model, x: np.ndarray, y: np.ndarray) -> float | None:
    """The temperature that makes the saved model's "% sure" honest, fitted on calibration pictures
    (training pictures it never trained on), as the app predicts: with mirror test-time augmentation."""
    from cifar_core import inference
    if len(y) < 10:
        return None
    return round(evaluation.fit_temperature(inference.predict(model, x), y), 4)


def train_epoch(model, x: np.ndarray, y: np.ndarray, batch_size: int, epoch: int, callbacks) -> None:
    """One pass over (x, y) in order, telling the callbacks the running mean of each metric.

    A loop of train_on_batch, not Model.fit: fit tears down its tf.data
    pipeline when it returns, which was measured idling 15-60 s after every
    epoch on a 2-core machine; the epochs here are prepared arrays anyway.
    """
    callbacks.on_epoch_begin(epoch)
    sums: dict[str, float] = {}
    seen, logs = 0, {}
    for step, start in enumerate(range(0, len(x), batch_size)):
        callbacks.on_train_batch_begin(step)
        batch = model.train_on_batch(x[start:start + batch_size], y[start:start + batch_size], return_dict=True)
        size = min(batch_size, len(x) - start)
        seen += size
        sums = {name: sums.get(name, 0.0) + value * size for name, value in batch.items()}
        logs = {name: total / seen for name, total in sums.items()}
        callbacks.on_train_batch_end(step, logs)
        if model.stop_training:
            break
    callbacks.on_epoch_end(epoch, logs)


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    return TrainConfig.from_dict(json.loads((Path(run_dir) / rundir.CONFIG).read_text()))


def export(run_dir: str | os.PathLike, dest: str | os.PathLike, command: str = "",
           dataset: cifar_data.Cifar10 | None = None) -> dict:
    """Copy a run's model to `dest` with a model card (JSON beside it), measured on the test set:
    accuracy with and without mirror test-time augmentation, and how honest its "% sure" is
    (expected calibration error) before and after its temperature."""
    import platform
    import shutil

    from cifar_core import inference
    run_dir, dest = Path(run_dir), Path(dest)
    dataset = dataset or cifar_data.load()
    model = inference.load_model(run_dir / rundir.MODEL)
    raw = inference.predict(model, dataset.x_test, calibrated=False)
    calibrated = evaluation.with_temperature(raw, model.calibration_temperature)
    plain = inference.predict(model, dataset.x_test, mirror=False, calibrated=False)
    result = evaluation.summary(calibrated, dataset.y_test)
    epochs = [r for r in rundir.read_metrics(run_dir) if r.get("kind") == "epoch"]
    status = rundir.read_status(run_dir)
    config = load_config(run_dir)
    card = {
        "architecture": config.arch,
        "config": config.to_dict(),
        "command": command,
        "data": f"CIFAR-10 test set ({dataset.origin}), {result['n']} images",
        "epochs": len(epochs),
        "test_accuracy": result["accuracy"],                 # with mirror test-time augmentation, as served
        "test_accuracy_without_tta": evaluation.summary(plain, dataset.y_test)["accuracy"],
        "per_class_accuracy": result["per_class"],
        "temperature": model.calibration_temperature,        # fitted on held-out training pictures
        "calibration_error_before": round(evaluation.expected_calibration_error(raw, dataset.y_test), 4),
        "calibration_error_after": round(evaluation.expected_calibration_error(calibrated, dataset.y_test), 4),
        "training_seconds": epochs[-1]["elapsed_s"] if epochs else None,
        "wall_seconds": round(status["ended"] - status["started"], 1)
        if isinstance(status.get("ended"), (int, float)) and isinstance(status.get("started"), (int, float)) else None,
        "precision": status.get("precision"),
        "parameters": int(model.count_params()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / rundir.MODEL, dest)
    rundir.write_json(dest.with_suffix(".json"), card)
    return card
