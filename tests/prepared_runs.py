"""Finished runs for tests that need one to choose, without training one: the run-directory files a
trainer leaves behind (config.json, status.json, metrics.jsonl, model.keras), with the bundled model as
the checkpoint. Written status first and config last: a run is listed only once its config exists, so
no watcher ever sees it queued and starts a trainer for it."""
from __future__ import annotations

import secrets
import shutil
import time

from cifar_core import data, inference, rundir, runs
from cifar_core.config import TrainConfig


def finished_run(name: str, accuracy: float = 0.8125, epochs: int = 3) -> runs.Run:
    path = runs.runs_dir() / (time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3))
    path.mkdir()
    shutil.copyfile(inference.DEFAULT_MODEL, path / rundir.MODEL)
    for epoch in range(1, epochs + 1):
        for step in (10, 20):
            rundir.append_metric(path, {"kind": "batch", "epoch": epoch, "step": step, "elapsed_s": 20.0 * epoch + step,
                                        "loss": 2.0 / (epoch + step / 20), "accuracy": 0.25 * epoch ** 0.5})
        rundir.append_metric(path, {"kind": "epoch", "epoch": epoch, "elapsed_s": 20.0 * epoch + 20,
                                    "loss": 1.9 / epoch, "accuracy": 0.25 * epoch ** 0.5,
                                    "test_loss": 1.7 / epoch, "test_accuracy": 0.24 * epoch ** 0.5,
                                    "images_per_s": 900.0})
    now = rundir.now()
    rundir.write_json(path / rundir.STATUS, {
        "state": "finished", "owner": "", "created": now - 100, "started": now - 90, "ended": now,
        "test_accuracy": accuracy, "per_class_accuracy": {c: accuracy for c in data.CLASS_NAMES}})
    rundir.write_json(path / rundir.CONFIG, TrainConfig.from_preset("quick", epochs=epochs, name=name).to_dict())
    return runs.get(path.name)
