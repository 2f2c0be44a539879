"""The training loop that writes a run directory (configs and presets live in `config`).

The trainer knows nothing about the UI: it reads its config, and reports only
through the run directory (see `rundir`). Keras' `train_on_batch` and standard
callbacks drive the loop, so it runs on any Keras backend; a callback writes
metrics, checkpoints, status and per-epoch snapshots (see `snapshots`), and
honours the STOP file after the current batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from cifar_core import data as cifar_data
from cifar_core import devices, distill, evaluation, models, recipe, rundir, snapshots, tensorboard_log
from cifar_core.config import ConfigError, TrainConfig, batches_per_epoch
from cifar_core.warm_networks import WarmNetworks

PROBE_IMAGES = 512   # test pictures timed before the first step, for the time left (see `progress`)
# A loss past this has diverged even where it stays finite: a uniform guess over ten classes costs 2.3 a
# picture. Some CPUs' kernels carry a blown-up run on at 1e30 (then on dead units) instead of NaN.
DIVERGED_LOSS = 1e6


def evaluate_arrays(model, x, y) -> tuple[float, float, np.ndarray]:
    """Plain cross-entropy, accuracy and the (unmirrored, uncalibrated) probabilities of `model` on (x, y),
    worked out as the app works them out (`inference.predict`), so the final checks can reuse them."""
    from cifar_core import inference
    probs = inference.predict(model, x, mirror=False, calibrated=False)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return loss, float(np.mean(probs.argmax(1) == y)), probs


def _recorder(run_dir: Path, config: TrainConfig, test: tuple, export_model, steps_per_epoch: int, progress,
              held_out: int, batch_images: int):
    """The callback that writes metrics.jsonl, model.keras and the snapshots, and watches for STOP and NaN.

    Two clocks: `elapsed_s` counts training steps only (the curves' time axis,
    comparable between runs), `wall_s` counts from the trainer's start as
    status.json records it, start-up and test passes included: what a person
    waits, and what the time left is estimated from (`runs.Run.progress`).
    """
    import keras
    snapshot = snapshots.Writer(run_dir, *test, config.epochs)
    origin = rundir.read_status(run_dir).get("started") or time.time()
    # What the final checks will measure, for the estimate of the time left.
    rundir.update_status(run_dir, test_images=len(test[1]), calibration_images=held_out)

    class Recorder(keras.callbacks.Callback):
        failure: str | None = None
        stopped = False
        per_class: dict | None = None   # the last test pass's accuracy per class
        test_accuracy: float | None = None   # and overall
        tested: np.ndarray | None = None    # its probabilities, while model.keras holds the weights it tested
        testing_s = 0.0     # wall time of the test passes after the epochs, summed

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
                # Compile the test pass now, as part of start-up, so the first epoch's pass takes as long
                # as every later one; then time a few batches of it, so the time left counts the test
                # passes from the first step on (`progress`). Inference only: no weight changes.
                probe = test[0][:PROBE_IMAGES]
                evaluate_arrays(export_model, probe[:1], test[1][:1])
                timed = time.monotonic()
                evaluate_arrays(export_model, probe, test[1][:len(probe)])
                rundir.update_status(run_dir, test_s_per_picture=(time.monotonic() - timed) / max(1, len(probe)))
                self.started = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.epoch_images += batch_images
            loss = float(logs.get("loss", float("nan")))
            if not math.isfinite(loss) or loss > DIVERGED_LOSS:
                self.failure = (f"The loss became {loss:.3g} at epoch {self.epoch + 1}, step {batch + 1}: "
                                f"the learning rate ({config.learning_rate:g}) is probably too high.")
                self.model.stop_training = True
            if rundir.stop_requested(run_dir):
                self.stopped = True
                self.model.stop_training = True
            if time.monotonic() - self.last_write >= 1.0 or batch + 1 == steps_per_epoch:
                self.last_write = time.monotonic()
                rundir.append_metric(run_dir, {
                    "kind": "batch", "epoch": self.epoch + 1, "step": batch + 1, "steps": steps_per_epoch,
                    "elapsed_s": round(self.elapsed(), 3), "wall_s": round(time.time() - origin, 3),
                    "loss": recipe.shown_loss(logs), "accuracy": float(logs.get("categorical_accuracy", float("nan")))})

        def on_epoch_end(self, epoch, logs=None):
            if self.failure:
                return
            elapsed = self.elapsed()
            images_per_s = self.epoch_images / max(1e-9, elapsed - self.epoch_started_at)
            if self.stopped and epoch == 0 and elapsed < rundir.FIRST_EPOCH_KEPT_AFTER_S:
                # Stopped soon after its start: a few batches are no model worth keeping, or worth the
                # queue's time to calibrate and test (tens of seconds for `best`).
                return
            # A step's loss is measured before its update: the epoch's last step can leave the weights
            # infinite with every loss recorded finite. Saved, tested and snapshotted, such a model answered
            # "airplane, nan%" for every picture until the next batch failed the run.
            if not all(np.isfinite(w).all() for w in self.model.get_weights()):
                self.failure = (f"The network's weights became infinite at the end of epoch {epoch + 1}: the "
                                f"learning rate ({config.learning_rate:g}) is probably too high.")
                self.model.stop_training = True
                return
            save_checkpoint(self.model, export_model, run_dir)
            self.tested = None
            if self.stopped:  # a partial epoch: keep the weights, skip the test pass
                return
            # The test pass runs the checkpoint itself (export_model holds its weights): the accuracy
            # is the saved model's, and the last epoch's answers are the final pass's unmirrored part.
            test_started = time.monotonic()
            test_loss, test_accuracy, probabilities = evaluate_arrays(export_model, *test)
            self.tested = probabilities
            test_s = time.monotonic() - test_started
            self.testing_s += test_s
            self.test_accuracy = test_accuracy
            self.per_class = evaluation.per_class_accuracy(test[1], probabilities.argmax(axis=1))
            snapshot.write(self.model, epoch + 1, probabilities, list(self.per_class.values()))
            # Written last, so its wall_s closes the epoch: training, checkpoint, test pass and snapshot.
            record = {"kind": "epoch", "epoch": epoch + 1, "elapsed_s": round(elapsed, 3),
                      "wall_s": round(time.time() - origin, 3), "test_s": round(test_s, 3),
                      "loss": recipe.shown_loss(logs), "accuracy": float(logs["categorical_accuracy"]),
                      "test_loss": test_loss, "test_accuracy": test_accuracy,
                      "images_per_s": round(images_per_s, 1)}
            rundir.append_metric(run_dir, record)
            if progress:
                progress(record)
            # The test pass is not training time: restart the clock where it stood.
            self.started = time.monotonic() - elapsed

    return Recorder()


def _served(export_model):
    """The network checkpoints are copied into, answering as a loaded model does (`fast_inference`):
    the test passes measure what the app will show, at the app's speed (the `best` network's pass over
    the 10,000 test pictures on a 2-core Xeon with AMX: 3.4 s, against 10.3-10.9 s in float32 as saved).
    Each checkpoint refreshes the copy (`save_checkpoint`)."""
    from cifar_core import fast_inference
    fast_inference.serve(export_model)
    return export_model


def save_checkpoint(model, export_model, run_dir: Path) -> None:
    """Write model.keras atomically, in float32 so it runs fast on any machine; the answering copy
    of `export_model` (`_served`) takes the new weights too."""
    from cifar_core import fast_inference
    export_model.set_weights(model.get_weights())
    fast_inference.refresh(export_model)
    tmp = Path(run_dir) / rundir.SAVING_MODEL
    try:
        export_model.save(tmp)
        os.replace(tmp, Path(run_dir) / rundir.MODEL)
    except BaseException:
        tmp.unlink(missing_ok=True)     # a full disk: the half-written copy would hold the space the failure needs
        raise


def build_model(config: TrainConfig, x_train: np.ndarray, precision: str):
    """The model to train, under `precision`, from scratch or from config.initial_model."""
    import keras
    keras.config.set_dtype_policy(precision)
    try:
        model = models.build(config.arch, for_training=True, whitening_learns=config.whiten_bias_epochs > 0)
    finally:
        keras.config.set_dtype_policy("float32")
    if config.initial_model:
        start = keras.models.load_model(config.initial_model)
        try:
            models.copy_weights(start, model)
        except ValueError:
            raise ConfigError(f"{config.initial_model} is not a {config.arch} model, so training cannot continue from it.") from None
    else:
        models.init_whitening(model, x_train)
    return model


def _own_starting_copy(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """`config` going on from this run's own starting copy where it names one in a folder of this run's
    name: config.json keeps the path the copy had when the run was made, and a runs folder moved, or shared
    by machines that mount it at different paths, has it somewhere else now."""
    given = Path(config.initial_model or "")
    own = run_dir / rundir.STARTING_COPY
    if given.name == rundir.STARTING_COPY and given.parent.name == run_dir.name and own.exists():
        return dataclasses.replace(config, initial_model=str(own))
    return config


def _let_go_of_starting_copy(config: TrainConfig, run_dir: str | os.PathLike) -> None:
    """Delete the run's own copy of the model it goes on from (`runs.create` makes it, so that the parent
    run may be deleted meanwhile) once its weights are in the network: up to 15 MB a run, kept for as
    long as the run was. A model given from elsewhere (the command line's) is never touched."""
    given = Path(config.initial_model or "")
    if given.name == rundir.STARTING_COPY and given.parent.resolve() == Path(run_dir).resolve():
        with contextlib.suppress(OSError):
            given.unlink(missing_ok=True)


def train(config: TrainConfig, run_dir: str | os.PathLike, dataset: cifar_data.Cifar10 | None = None,
          progress=None, networks: WarmNetworks | None = None) -> str:
    """Train as `config` says, writing everything into `run_dir`. Returns the final state.

    `progress(record)`, if given, is called with each epoch's metrics record. `networks`, a process
    that trains run after run keeps its compiled networks in, for the next run with the same recipe.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _own_starting_copy(config, run_dir)
    board = None
    rundir.update_status(run_dir, state="running", pid=os.getpid(),
                         pid_started=rundir.process_start(os.getpid()), started=rundir.now())
    try:
        config.validate()
        import keras
        hardware = devices.detect()     # before TensorFlow sets up the GPUs (see detect)
        keras.utils.set_random_seed(config.seed)
        dataset = dataset or cifar_data.load()
        (x_train, y_train), calibration = recipe.split(dataset.x_train, dataset.y_train, config.train_subset,
                                                       config.calibration_images)
        if not len(x_train):
            raise cifar_data.DataError("There are no training images: the full CIFAR-10 data set is needed to train.")
        if rundir.stop_requested(run_dir):   # stopped while it was starting: build nothing
            rundir.update_status(run_dir, state="stopped", ended=rundir.now(), error=None,
                                 stopped_because=rundir.stop_reason(run_dir))
            return "stopped"
        teachers = distill.teachers(config.distill_from)   # before the first step: a bad file fails now
        strategy = devices.make_strategy(config.strategy)
        # From here on `config` is what runs: on GPUs a bigger batch at a proportionally higher rate.
        # config.json keeps what was asked; status.json records what ran.
        config = devices.scale_for_gpus(config, devices.replicas(strategy) if hardware.gpus else 0, len(x_train))
        precision = recipe.resolve_precision(config.precision, hardware)
        rundir.update_status(run_dir, precision=precision, train_images=len(x_train), batch_size=config.batch_size,
                             learning_rate=config.learning_rate, replicas=devices.replicas(strategy))
        steps_per_epoch = batches_per_epoch(len(x_train), config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        whiten_bias_steps = config.whiten_bias_epochs * steps_per_epoch

        def compile(model):
            model.compile(optimizer=recipe.make_optimizer(config, total_steps, model, whiten_bias_steps),
                          loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                          metrics=["categorical_accuracy", keras.metrics.CategoricalCrossentropy(name=recipe.PLAIN_LOSS)])

        if strategy is not None or networks is None:
            networks = WarmNetworks()   # nothing kept from before: this run's own
        with devices.scope(strategy):   # a strategy's variables must be made inside its scope
            # A batch of the run's size, to trace a new network's step on at start-up (a strategy's step is its own).
            sample = None if strategy is not None else \
                (x_train[:config.batch_size], recipe.one_hot(y_train[:config.batch_size]))
            model = networks.training(WarmNetworks.recipe(config, precision, total_steps),
                                      build_model(config, x_train, precision), compile, sample)
        _let_go_of_starting_copy(config, run_dir)
        export_model = networks.saving(lambda: _served(models.build(config.arch)))
        # A continued run's epochs count on from the run it continues, in TensorBoard as on the app's curves.
        earlier = rundir.read_status(run_dir).get(rundir.EARLIER_EPOCHS)
        board = tensorboard_log.writer(run_dir, config, steps_per_epoch, total_steps,
                                       earlier if isinstance(earlier, int) and earlier > 0 else 0)

        def report(record):   # each epoch's record goes to TensorBoard as it went to metrics.jsonl
            board.write_epoch(record)
            if progress:
                progress(record)

        recorder = _recorder(run_dir, config, (dataset.x_test, dataset.y_test), export_model, steps_per_epoch, report,
                             held_out=len(calibration[1]), batch_images=min(config.batch_size, len(x_train)))
        callbacks = keras.callbacks.CallbackList(
            [*([recipe.lookahead(total_steps)] if config.lookahead else []), recorder, board], model=model)
        step = devices.step_function(model, strategy)
        if teachers:   # the targets mix each label with the models' answers on the batch as trained
            step = distill.taught(step, teachers)
        model.stop_training = False
        for epoch, (x_epoch, y_epoch) in enumerate(recipe.epochs_of(x_train, y_train, config)):
            train_epoch(model, x_epoch, y_epoch, config.batch_size, epoch, callbacks, step)
            if recorder.failure or recorder.stopped:
                break
        if recorder.failure:
            raise RuntimeError(recorder.failure)
        state = "stopped" if recorder.stopped else "finished"
        final = {"temperature": None, "test_accuracy": None, "per_class_accuracy": None}
        checks_started = time.monotonic()
        if (run_dir / rundir.MODEL).exists():   # export_model holds the checkpoint's weights
            temperature = calibrate(export_model, *calibration)
            figures, answers = final_accuracy(export_model, dataset.x_test, dataset.y_test, plain=recorder.tested,
                                              temperature=temperature)
            final = {"temperature": temperature, **figures}
            # Kept beside the model, as `export` ships them: the app's Evaluate and Quiz need not test it
            # again on the server, 20-60 s of both cores for each run a class opens there.
            with contextlib.suppress(OSError):      # a full disk: the app measures them itself, as before
                evaluation.save_test_probabilities(run_dir / rundir.MODEL, answers, dataset.x_test, dataset.y_test)
        testing_s = recorder.testing_s + time.monotonic() - checks_started      # (the search below is no test)
        if (run_dir / rundir.MODEL).exists():
            _ship_closer_look(run_dir, export_model, dataset.x_test)
        rundir.update_status(run_dir, state=state, ended=rundir.now(), error=None, testing_s=round(testing_s, 3),
                             stopped_because=rundir.stop_reason(run_dir) if recorder.stopped else None,
                             **final)
        return state
    except Exception as e:
        _log_failure(e, run_dir)
        with contextlib.suppress(OSError):      # the disk may still be full: the log above says what happened
            rundir.update_status(run_dir, state="failed", ended=rundir.now(), error=_failure(e))
        return "failed"
    finally:
        if board is not None:
            board.close()
        # Stopped while starting, or failed before its weights were in the network: its copy (up to 15 MB)
        # is no use to anyone, and a run that ended is never started again (Continue makes its own).
        _let_go_of_starting_copy(config, run_dir)


def _ship_closer_look(run_dir: Path, model, x_test) -> None:
    """Look inside's closer look (the test pictures each map answers most), searched here at the trainer's
    low priority, not by the first visitor to open the run on the server. Only a saving of work: whatever
    goes wrong (a full disk, the trainer's memory), the app searches itself, as before, and the run, its
    model saved and tested, has still finished."""
    from cifar_core import inside
    try:
        inside.ship_top_activations(run_dir / rundir.MODEL, model, x_test)
    except Exception as e:      # noqa: BLE001 - said in the log, never the run's end
        print(f"Look inside's closer look was not kept with the model ({type(e).__name__}: {e}); the app "
              "will search it when the run is first opened.", file=sys.stderr)


def _log_failure(e: Exception, run_dir: Path) -> None:
    """Where a failed run's traceback goes. A mistake a person can put right (data that is not CIFAR-10,
    a setting out of range, a file that is not a model) is said in a sentence by status.json's error, which
    the app and the command line show: its traceback goes only into the run's log.txt, for whoever looks
    closer, not onto a terminal. Anything else is a bug, and its traceback goes to stderr (which is log.txt
    when the app's trainer runs it)."""
    from cifar_core import inference
    if not isinstance(e, (cifar_data.DataError, ConfigError, inference.ModelError)):
        traceback.print_exception(e)
        return
    sys.stderr.flush()      # the app's trainers write stderr into this same file: keep the order
    with contextlib.suppress(OSError), open(run_dir / rundir.LOG, "a") as log:
        traceback.print_exception(e, file=log)


def _failure(e: Exception) -> str:
    """What a failed run's status says: a sentence for the causes a person can act on."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC or "No space left on device" in str(e):
        return ("The server's disk is full, so the run could not save its work: a teacher can make room by "
                "deleting old runs.")
    if isinstance(e, MemoryError):      # its message is empty
        return ("The server ran out of memory while the run trained: a smaller batch needs less, or try again "
                "when fewer runs are training.")
    return str(e) if isinstance(e, (ValueError, RuntimeError)) else f"{type(e).__name__}: {e}"


def final_accuracy(model, x: np.ndarray, y: np.ndarray, plain: np.ndarray | None = None,
                   temperature: float | None = None) -> tuple[dict, np.ndarray]:
    """The saved model's accuracy, overall and per class, on the whole test set, measured as the
    Evaluate page and the model card measure it (`inference.predict`, mirror test-time augmentation):
    the one accuracy a model is shown with everywhere (see `evaluation.ACCURACY_DEFINITION`).
    The per-epoch test figures in metrics.jsonl are without the mirror, to keep each epoch's pass short;
    `plain`, the last epoch's answers when they are this model's, leaves only the mirrored pass to do.
    `temperature`, the one it is saved with: it decides which pictures it is sure enough of to leave
    unmirrored (`evaluation.SURE_ENOUGH`), as once it is loaded. Also its answers, before the temperature,
    to keep beside it (`evaluation.save_test_probabilities`), as `measured` gives them for a card."""
    from cifar_core import inference
    before = model.__dict__.get("calibration_temperature")
    model.calibration_temperature = temperature or 1.0
    try:
        answers = inference.predict(model, x, mirror=True, calibrated=False, plain=plain)
    finally:     # the network is reused by the next run (`warm_networks`)
        if before is None:
            del model.calibration_temperature
        else:
            model.calibration_temperature = before
    result = evaluation.summary(answers, y)
    return {"test_accuracy": result["accuracy"], "per_class_accuracy": result["per_class"]}, answers


def calibrate(model, x: np.ndarray, y: np.ndarray) -> float | None:
    """The temperature that makes the saved model's "% sure" honest, fitted on calibration pictures
    (training pictures it never trained on) with mirror test-time augmentation on every one of them: the
    app mirrors only the pictures it is unsure of, but which ones those are depends on the temperature
    (`evaluation.SURE_ENOUGH`), and mirroring changes the others' answers very little (the bundled
    model's calibration error on the test set: 0.0119 as the app answers, its first network alone where
    that one is sure; 0.0102 with both networks on every picture; 0.0113 with every picture mirrored).
    Fitted on the answers before any temperature the model already has (a card left where it is saved)."""
    from cifar_core import inference
    if len(y) < 10:
        return None
    answers = inference.predict(model, x, calibrated=False, sure_enough=None)   # every picture mirrored
    return round(evaluation.fit_temperature(answers, y), 4)


def train_epoch(model, x: np.ndarray, y: np.ndarray, batch_size: int, epoch: int, callbacks,
                train_step=None) -> None:
    """One pass over (x, y) in order, telling the callbacks the running mean of each metric.
    `train_step(x, y) -> logs` does one optimizer step: train_on_batch, unless a strategy needs its own
    (`devices.step_function`).

    A loop of train_on_batch, not Model.fit: fit tears down its tf.data
    pipeline when it returns, which was measured idling 15-60 s after every
    epoch on a 2-core machine; the epochs here are prepared arrays anyway.
    """
    train_step = train_step or (lambda xs, ys: model.train_on_batch(xs, ys, return_dict=True))
    callbacks.on_epoch_begin(epoch)
    sums: dict[str, float] = {}
    seen, logs = 0, {}
    for step, start in enumerate(range(0, len(x), batch_size)):
        callbacks.on_train_batch_begin(step)
        batch = train_step(x[start:start + batch_size], y[start:start + batch_size])
        size = min(batch_size, len(x) - start)
        seen += size
        sums = {name: sums.get(name, 0.0) + value * size for name, value in batch.items()}
        logs = {name: total / seen for name, total in sums.items()}
        callbacks.on_train_batch_end(step, logs)
        if model.stop_training:
            break
    callbacks.on_epoch_end(epoch, logs)


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The run's settings from its config.json; ConfigError naming the file when it holds no settings
    (half written, edited by hand). A missing or unreadable file is an OSError, as it was."""
    path = Path(run_dir) / rundir.CONFIG
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except ConfigError as e:        # an object, but not of settings: say which
        raise ConfigError(f"{path} is damaged: {e}") from None
    except ValueError:              # not JSON, not UTF-8
        raise ConfigError(f"{path} is damaged: it does not hold a run's settings as JSON.") from None


def _trained_on(status: dict, dataset: cifar_data.Cifar10) -> str:
    """"; trained on 48,000 of the 50,000 training images, 2,000 held out for the temperature": what a
    card's accuracy was earned on, from the run's own status."""
    trained, held_out = status.get("train_images"), status.get("calibration_images")
    if not trained:
        return ""
    kept = f", {held_out:,} held out for the temperature" if held_out else ""
    return f"; trained on {trained:,} of the {len(dataset.y_train):,} training images{kept}"


_HOW_MADE = ("command", "test_accuracy", "epochs", "training_seconds", "machine",    # of a card
             "teachers", "continued_from", "members")


def how_made(path: str) -> dict:
    """How a model this run learnt from, started from or was put beside (`combine`) was made, from the card
    beside it where there is one: a card's own command names those files, which may not outlive the run,
    so their story goes with it."""
    from cifar_core import inference
    made = inference.model_card(path)
    made = made if isinstance(made, dict) else {}
    return {"model": str(path), **{key: made[key] for key in _HOW_MADE if key in made}}


def measured(model, dataset: cifar_data.Cifar10) -> tuple[dict, np.ndarray]:
    """A loaded model's figures on the test set for its card: accuracy with and without mirror test-time
    augmentation, per class, and how honest its "% sure" is (expected calibration error) before and
    after its temperature; and its answers before the temperature, to ship beside it. For networks side
    by side "before" is every network's answer with no temperature at all, and the rest are as the app
    answers, the first network alone where it is sure enough (`inference.predict`)."""
    from cifar_core import fast_inference, inference
    plain = inference.predict(model, dataset.x_test, mirror=False, calibrated=False)
    raw = inference.predict(model, dataset.x_test, calibrated=False, plain=plain)    # only the mirrored pass is new
    before = raw                  # every network's answers: no temperature, so no first network's look alone
    if fast_inference.networks(model):
        raw = inference.predict(model, dataset.x_test, calibrated=False)            # as the app answers
    calibrated = evaluation.with_temperature(raw, model.calibration_temperature)
    result = evaluation.summary(calibrated, dataset.y_test)
    return {
        "test_accuracy": result["accuracy"],                 # with mirror test-time augmentation, as served
        "test_accuracy_without_tta": evaluation.summary(plain, dataset.y_test)["accuracy"],
        "per_class_accuracy": result["per_class"],
        # Fitted on held-out training pictures; none where there were none (a 1.0 here read as calibrated)
        "temperature": model.calibration_temperature if getattr(model, "calibrated", True) else None,
        "calibration_error_before": round(evaluation.expected_calibration_error(before, dataset.y_test), 4),
        "calibration_error_after": round(evaluation.expected_calibration_error(calibrated, dataset.y_test), 4),
        "inference_precision": fast_inference.precision(model),      # what the figures above were measured in
        "parameters": int(model.count_params()),
        "machine": devices.describe_machine(),
    }, raw


def export(run_dir: str | os.PathLike, dest: str | os.PathLike, command: str = "",
           dataset: cifar_data.Cifar10 | None = None) -> dict:
    """Copy a run's model to `dest` with a model card (JSON beside it), measured on the test set:
    accuracy with and without mirror test-time augmentation, and how honest its "% sure" is
    (expected calibration error) before and after its temperature."""
    import shutil

    from cifar_core import fast_inference, inference, inside, int8
    run_dir, dest = Path(run_dir), Path(dest)
    dataset = dataset or cifar_data.load()
    model = inference.load_model(run_dir / rundir.MODEL)
    figures, raw = measured(model, dataset)
    epochs = [r for r in rundir.read_metrics(run_dir) if r.get("kind") == "epoch"]
    status = rundir.read_status(run_dir)
    config = load_config(run_dir)
    card = {
        "architecture": config.arch,
        "config": config.to_dict(),
        "command": command,
        **({"teachers": [how_made(path) for path in config.distill_from]} if config.distill_from else {}),
        # A continued run's epochs and seconds are its own: the model it started from says the rest.
        **({"continued_from": how_made(config.initial_model)} if config.initial_model else {}),
        "data": f"CIFAR-10 test set ({dataset.origin}), {len(dataset.y_test)} images{_trained_on(status, dataset)}",
        "epochs": len(epochs),
        # A run stopped partway (Ctrl-C, Stop, the server's turn) says so: its model is from where it stopped.
        **({"stopped_because": status.get("stopped_because") or "Stopped before its last epoch."}
           if status.get("state") == "stopped" else {}),
        **figures,
        "training_seconds": epochs[-1]["elapsed_s"] if epochs else None,
        "wall_seconds": round(status["ended"] - status["started"], 1)
        if isinstance(status.get("ended"), (int, float)) and isinstance(status.get("started"), (int, float)) else None,
        "precision": status.get("precision"),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    with rundir.model_files(dest) as saving:     # all of it, or none: never a new model under an old card
        shutil.copyfile(run_dir / rundir.MODEL, saving)
        if fast_inference.precision(model) == "int8":      # its int8 networks, which it was measured with, go with it
            shutil.copyfile(int8.companion(run_dir / rundir.MODEL), int8.companion(saving))
        rundir.write_json(saving.with_suffix(".json"), card)
        # Its answers on the test set ship with it: the app's Evaluate and Quiz open at once for this model,
        # and Look inside's closer look at one map.
        evaluation.save_test_probabilities(saving, raw, dataset.x_test, dataset.y_test)
        inside.ship_top_activations(saving, model, dataset.x_test)
    return card
