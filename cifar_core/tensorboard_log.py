"""TensorBoard event files for a run, so `tensorboard --logdir runs` draws what the Train page draws.

Each trainer writes one event file into `runs/<id>/tensorboard/`:

    batch/loss, batch/accuracy   the running means over the epoch so far, as metrics.jsonl's batch
                                 records and as often: at most once a second, and at the end of
                                 every epoch (x axis: optimizer steps over the run)
    batch/learning_rate          the schedule's rate for that step (BatchNorm biases take
                                 bias_lr_scale times it)
    epoch/loss, epoch/accuracy, epoch/test_loss, epoch/test_accuracy, epoch/images_per_s
                                 metrics.jsonl's epoch records, the same figures (x axis: epochs)
    filters                      the first layer's filters as one picture per epoch, drawn as the
                                 Train page draws them (`snapshots.rgb_filters`)

Written with `tf.summary`, which TensorFlow carries itself; reading them needs
the `tensorboard` package (in requirements.txt). Each `tf.summary` call is an
eager TensorFlow op (about a millisecond on a busy CPU), so the batch scalars
keep metrics.jsonl's pace rather than every step's; measured figures are in
the README ("Runs").
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cifar_core import recipe, snapshots

FOLDER = "tensorboard"
EPOCH_SCALARS = ("loss", "accuracy", "test_loss", "test_accuracy", "images_per_s")
FILTER_COLUMNS = 8
FILTER_SIZE = 32                # pixels across each enlarged filter
FLUSH_MILLIS = 5000             # a live `tensorboard` sees new points within about this long
BATCH_INTERVAL_S = 1.0          # seconds between batch points, as between metrics.jsonl's batch records


def filter_picture(model) -> np.ndarray | None:
    """The first layer's filters laid out in one grid picture (rows of FILTER_COLUMNS), or None."""
    from cifar_core.inside import mosaic
    filters = snapshots.rgb_filters(model)
    if filters is None:
        return None
    return mosaic(list(filters), columns=min(FILTER_COLUMNS, len(filters)), size=FILTER_SIZE, gap=2)


def writer(run_dir: str | Path, config, steps_per_epoch: int, total_steps: int, earlier_epochs: int = 0):
    """A Keras callback writing the batch scalars; `write_epoch(record)` writes an epoch's record (as
    appended to metrics.jsonl) and the filters; `close()` at the end of the run. A continued run's points
    come after the `earlier_epochs` of the run it continues (and their steps, at this run's steps per
    epoch): shown beside its parent, its first epoch sat on its parent's first."""
    import keras
    import tensorflow as tf

    log = tf.summary.create_file_writer(str(Path(run_dir) / FOLDER), flush_millis=FLUSH_MILLIS)

    class TensorBoardWriter(keras.callbacks.Callback):
        epoch = 0
        last_write = -float("inf")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.last_write < BATCH_INTERVAL_S and batch + 1 != steps_per_epoch:
                return
            self.last_write = time.monotonic()
            step = self.epoch * steps_per_epoch + batch + 1      # steps done over the run
            shown = step + earlier_epochs * steps_per_epoch
            logs = logs or {}
            with log.as_default(step=shown):
                if "loss" in logs:
                    tf.summary.scalar("batch/loss", recipe.shown_loss(logs))      # as the epochs' and the app's
                if "categorical_accuracy" in logs:
                    tf.summary.scalar("batch/accuracy", logs["categorical_accuracy"])
                # The rate the optimizer used for this step (counted from 0), worked out when written, about once
                # a second: the whole schedule worked out at the start took 256 MB for a run of 9.6 million steps.
                rate = recipe.learning_rate_at(min(step, total_steps) - 1, total_steps, config)
                tf.summary.scalar("batch/learning_rate", float(rate))

        def write_epoch(self, record: dict) -> None:
            with log.as_default(step=earlier_epochs + record["epoch"]):
                for name in EPOCH_SCALARS:
                    if name in record:
                        tf.summary.scalar(f"epoch/{name}", record[name])
                picture = filter_picture(self.model) if self.model is not None else None
                if picture is not None:
                    tf.summary.image("filters", picture[None], description="The first layer's filters, "
                                     "each scaled on its own around grey (lighter: positive weights, darker: negative).")
            log.flush()

        def close(self) -> None:
            log.close()

    return TensorBoardWriter()
