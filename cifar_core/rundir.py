"""The files of one run directory: the only thing the UI and a trainer share.

    config.json    TrainConfig, written before the process starts
    status.json    state, pid, owner, times, error
    metrics.jsonl  one JSON record a line, appended by the trainer
    model.keras    last checkpoint, replaced atomically
    STOP           its presence asks the trainer to stop after the current batch
    log.txt        the trainer's output

Whole-file writes go through a temporary file and `os.replace`, so a reader
sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

ACTIVE = ("queued", "running")   # states are queued, running, finished, stopped, failed

CONFIG, STATUS, METRICS, MODEL, STOP, LOG = (
    "config.json", "status.json", "metrics.jsonl", "model.keras", "STOP", "log.txt")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def read_status(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / STATUS, {})


def update_status(run_dir: Path, **changes) -> dict:
    """Merge `changes` into status.json. Callers that race hold runs' lock."""
    status = read_status(run_dir) | changes
    write_json(Path(run_dir) / STATUS, status)
    return status


def append_metric(run_dir: Path, record: dict) -> None:
    # NaN is not JSON: write it as null so every reader can parse the line.
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(clean) + "\n")
        f.flush()


def read_metrics(run_dir: Path) -> list[dict]:
    """All complete records; a half-written last line (the trainer mid-write) is skipped."""
    try:
        text = (Path(run_dir) / METRICS).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def stop_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / STOP).exists()


def now() -> float:
    return round(time.time(), 3)
