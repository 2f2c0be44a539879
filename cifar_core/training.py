"""TrainConfig, the training recipes (presets), and the training loop that writes a run directory.

The trainer knows nothing about the UI: it reads its config, and reports only
through the run directory (see `rundir`). Keras' `train_on_batch` and standard
callbacks drive the loop, so it runs on any Keras backend; a callback writes
metrics, checkpoints and status, and honours the STOP file after the current batch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core import data as cifar_data
from cifar_core import evaluation, models, recipe, rundir, settings

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("triangle", "constant")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# Each preset is a whole recipe. Learning rates are per step, on the batch-mean loss.
# The airbench94 recipe in Keras terms: its "11.5 per 1024 examples" is 1.5 per step at batch 1024
# on the mean loss; its decoupled weight decay 0.0153 is 0.009 in Keras' form (times the rate).
AIRBENCH = dict(optimizer="sgd", momentum=0.85, weight_decay=0.009, schedule="triangle", warmup=0.23,
                final_lr=0.07, bias_lr_scale=64.0, lookahead=True, augment=True, label_smoothing=0.2)
PRESETS: dict[str, dict] = {
    "quick": dict(   # a first good result in under a minute on a laptop CPU: 2 passes over 36,000 pictures
        AIRBENCH, arch="airbench_tiny", epochs=2, batch_size=256, learning_rate=0.375, train_subset=36_000),
    "best": dict(    # the most accurate recipe that fits in 20 minutes on a 2-core CPU (about 80 s an epoch)
        AIRBENCH, arch="airbench", epochs=13, batch_size=1024, learning_rate=1.5),
    "tutorial": dict(  # the TensorFlow tutorial, kept as the baseline to compare with
        arch="tutorial", epochs=10, batch_size=32, learning_rate=1e-3, optimizer="adam",
        momentum=0.0, weight_decay=0.0, schedule="constant", warmup=0.0, final_lr=0.0,
        bias_lr_scale=1.0, lookahead=False, augment=False, label_smoothing=0.0, precision="float32"),
}


class ConfigError(ValueError):
    """A training setting is out of range; the message is one line for a person, `field` names the setting."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class TrainConfig:
    arch: str = "airbench_tiny"    # architecture, a name in models.REGISTRY
    epochs: int = 2                # passes over the training images
    batch_size: int = 256          # images per optimizer step
    learning_rate: float = 0.375   # peak learning rate, per step on the batch-mean loss
    optimizer: str = "sgd"         # "sgd" (Nesterov momentum) or "adam"
    momentum: float = 0.85         # SGD momentum (ignored by Adam)
    weight_decay: float = 0.009    # decoupled weight decay, times the learning rate, per step
    schedule: str = "triangle"     # "triangle": linear warm-up, then linear decay; "constant"
    warmup: float = 0.23           # fraction of all steps spent warming up (triangle only)
    final_lr: float = 0.07         # learning rate at the last step, as a fraction of the peak (triangle only)
    bias_lr_scale: float = 64.0    # BatchNorm biases learn this many times faster than the weights
    lookahead: bool = True         # every 5 steps, pull the weights to a slow moving average of themselves
    augment: bool = True           # mirror each picture every other epoch; shift by up to 2 pixels
    label_smoothing: float = 0.2   # probability mass spread evenly over the other classes
    train_subset: int = 0          # train on this many images, equal per class (0 = all 50,000)
    seed: int = 0                  # seeds weights, shuffling and augmentation
    precision: str = "auto"        # auto: bfloat16 on CPUs that have it, float16 on a GPU, else float32
    initial_model: str = ""        # continue from this .keras checkpoint (same architecture)
    preset: str = ""               # the preset these values came from, for the record
    name: str = ""                 # a name for people; the run id is separate

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> "TrainConfig":
        if preset not in PRESETS:
            raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        return cls(**{**PRESETS[preset], "preset": preset, **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown training setting {unknown[0]!r}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, max_epochs: int | None = None) -> "TrainConfig":
        """Return self, or raise ConfigError with one sentence naming the bad field."""
        max_epochs = max_epochs or settings.get().max_epochs

        def check(field, ok, message):
            if not ok:
                raise ConfigError(message, field)

        check("arch", self.arch in models.REGISTRY,
              f"Unknown architecture {self.arch!r}; choose one of {', '.join(models.REGISTRY)}.")
        check("epochs", _is_int(self.epochs) and 1 <= self.epochs <= max_epochs,
              f"Epochs must be a whole number from 1 to {max_epochs}, not {self.epochs!r}.")
        check("batch_size", _is_int(self.batch_size) and 1 <= self.batch_size <= 4096,
              f"Batch size must be a whole number from 1 to 4096, not {self.batch_size!r}.")
        check("learning_rate", _is_number(self.learning_rate) and 0 < self.learning_rate <= 100,
              f"Learning rate must be a number above 0 and at most 100, not {self.learning_rate!r}.")
        check("optimizer", self.optimizer in OPTIMIZERS,
              f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        check("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1,
              f"Momentum must be at least 0 and below 1, not {self.momentum!r}.")
        check("weight_decay", _is_number(self.weight_decay) and 0 <= self.weight_decay < 1,
              f"Weight decay must be at least 0 and below 1, not {self.weight_decay!r}.")
        check("schedule", self.schedule in SCHEDULES,
              f"Unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        check("warmup", _is_number(self.warmup) and 0 <= self.warmup < 1,
              f"Warm-up must be a fraction of the steps, at least 0 and below 1, not {self.warmup!r}.")
        check("final_lr", _is_number(self.final_lr) and 0 <= self.final_lr <= 1,
              f"Final learning rate must be a fraction of the peak from 0 to 1, not {self.final_lr!r}.")
        check("bias_lr_scale", _is_number(self.bias_lr_scale) and 0 < self.bias_lr_scale <= 1000,
              f"Bias learning-rate scale must be above 0 and at most 1000, not {self.bias_lr_scale!r}.")
        check("lookahead", isinstance(self.lookahead, bool), f"Lookahead must be true or false, not {self.lookahead!r}.")
        check("augment", isinstance(self.augment, bool), f"Augment must be true or false, not {self.augment!r}.")
        check("label_smoothing", _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
              f"Label smoothing must be at least 0 and below 1, not {self.label_smoothing!r}.")
        check("train_subset", _is_int(self.train_subset) and 0 <= self.train_subset,
              f"Training subset must be a whole number of images (0 for all), not {self.train_subset!r}.")
        check("seed", _is_int(self.seed), f"Seed must be a whole number, not {self.seed!r}.")
        check("precision", self.precision in PRECISIONS,
              f"Unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}.")
        return self


def _field_help() -> dict[str, str]:
    """Each TrainConfig field's comment, for --help and the app's tooltips: written once, above."""
    import inspect
    import re
    source = inspect.getsource(TrainConfig)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^    (\w+): [^=\n]+=[^#\n]*#(.*)$", source, re.M)}


FIELD_HELP = _field_help()


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def evaluate_arrays(model, x, y, batch_size: int = 1000) -> tuple[float, float, np.ndarray]:
    """Plain cross-entropy, accuracy and the probabilities of `model` on (x, y)."""
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return loss, float(np.mean(probs.argmax(1) == y)), probs


def _recorder(run_dir: Path, config: TrainConfig, test: tuple, export_model, steps_per_epoch: int, progress):
    """The callback that writes metrics.jsonl and model.keras, and watches for STOP and NaN."""
    import keras

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
        model = models.build(config.arch)
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
    rundir.update_status(run_dir, state="running", pid=os.getpid(), started=rundir.now())
    try:
        config.validate()
        import keras
        keras.utils.set_random_seed(config.seed)
        dataset = dataset or cifar_data.load()
        x_train, y_train = recipe.subset(dataset.x_train, dataset.y_train, config.train_subset)
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
        rundir.update_status(run_dir, state=state, ended=rundir.now(), error=None,
                             test_accuracy=recorder.test_accuracy, per_class_accuracy=recorder.per_class)
        return state
    except Exception as e:
        message = str(e) if isinstance(e, (ValueError, RuntimeError)) else f"{type(e).__name__}: {e}"
        traceback.print_exc()
        rundir.update_status(run_dir, state="failed", ended=rundir.now(), error=message)
        return "failed"


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
    """Copy a run's model to `dest` with a model card (JSON beside it), measured on the test set."""
    import shutil

    from cifar_core import evaluation, inference
    run_dir, dest = Path(run_dir), Path(dest)
    dataset = dataset or cifar_data.load()
    model = inference.load_model(run_dir / rundir.MODEL)
    result = evaluation.summary(inference.predict(model, dataset.x_test), dataset.y_test)
    epochs = [r for r in rundir.read_metrics(run_dir) if r.get("kind") == "epoch"]
    status = rundir.read_status(run_dir)
    config = load_config(run_dir)
    card = {
        "architecture": config.arch,
        "config": config.to_dict(),
        "command": command,
        "data": f"CIFAR-10 test set ({dataset.origin}), {result['n']} images",
        "epochs": len(epochs),
        "test_accuracy": result["accuracy"],
        "per_class_accuracy": result["per_class"],
        "training_seconds": epochs[-1]["elapsed_s"] if epochs else None,
        "precision": status.get("precision"),
        "parameters": int(model.count_params()),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / rundir.MODEL, dest)
    rundir.write_json(dest.with_suffix(".json"), card)
    return card
