"""The files of one run directory: the only thing the UI and a trainer share.

    config.json    TrainConfig, written before the process starts
    status.json    state, pid, owner, times, error
    metrics.jsonl  one JSON record a line, appended by the trainer
    model.keras    last checkpoint, replaced atomically
    model.test.npz the saved model's answers on the test set, written after its final checks
                   (`evaluation.save_test_probabilities`), so the app never tests it again
    STOP           its presence asks the trainer to stop after the current batch
    log.txt        the trainer's output
    snapshots/     epoch-0001.npz, ...: per epoch, the first filters, a fixed panel's
                   predictions and the per-class accuracy (format and budget in `snapshots`)

Whole-file writes go through a temporary file and `os.replace`, so a reader
sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock

STATES = ("queued", "running", "finished", "stopped", "failed")
ACTIVE = ("queued", "running")
MAX_JSON_BYTES = 1 << 20        # config and status files are a few hundred bytes

CONFIG, STATUS, METRICS, MODEL, STOP, LOG, SNAPSHOTS = (
    "config.json", "status.json", "metrics.jsonl", "model.keras", "STOP", "log.txt", "snapshots")
STARTING_COPY = "initial.keras"     # a continued run's own copy of the model it goes on from (`runs.create`)
SAVING_MODEL = ".model.tmp.keras"   # model.keras being written by the trainer (`training.save_checkpoint`)
# What only a run's trainer writes and lets go of, which a trainer killed outright (out of memory, the
# silence check) leaves behind: up to the model's size each, kept for as long as the run.
TRAINERS_OWN = (STARTING_COPY, SAVING_MODEL)
EARLIER_EPOCHS = "earlier_epochs"   # status.json of a continued run: the epochs of the run it continues
# A run stopped within its first epoch keeps what it has learned once it has trained this long: a few
# batches are no model worth the queue's time to calibrate and test, but a first epoch can take longer
# than a turn (a batch of 1 on every picture: one or two hours), and the turn must end it.
FIRST_EPOCH_KEPT_AFTER_S = 60.0


def keeps_a_model(metrics: list[dict]) -> bool:
    """Whether a run stopped now keeps a model, from its records: an epoch has ended (its checkpoint saved),
    or it has trained FIRST_EPOCH_KEPT_AFTER_S into its first."""
    return (any(m.get("kind") == "epoch" for m in metrics)
            or max((m.get("elapsed_s") or 0 for m in metrics), default=0) >= FIRST_EPOCH_KEPT_AFTER_S)
# Said after a failed run's reason: a failed run that saved a model can be continued (`runs.continue_run`).
CHECKPOINT_KEPT = "Its last checkpoint, if it saved one, is kept: Continue goes on from it."


@contextlib.contextmanager
def whole_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: moved into place when the block ends, removed if it fails.
    A reader sees the old file or the new one, never half of one; two writers at once (two sessions, two
    servers on one folder) each write a temporary file of their own; and a half-written copy never stays
    behind on a full disk to take the space the next write (the run's failure, say) needs."""
    path = Path(path)
    tmp = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with tmp:           # its close flushes, so a full disk fails here, inside the try
            yield tmp
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)
    except BaseException:
        os.unlink(tmp.name)
        raise


@contextlib.contextmanager
def model_files(dest: Path) -> Iterator[Path]:
    """A path beside the model file `dest` to save a model through with every file that goes with it
    (its card, int8 networks, test answers, closer look: each named after the model, `<stem>.<what>`):
    when the block ends each is moved to `dest`'s name, the model last; if it fails, all are removed.
    Saved straight to `dest`, a full disk or a Ctrl-C left a truncated model (the good one it replaced
    gone) under the old model's card, or int8 networks and a card measured for them beside a model then
    served without them."""
    dest = Path(dest)
    _sweep_saving(dest)
    stem = f".{dest.stem}.saving-{os.getpid()}-{time.monotonic_ns()}"
    staged = dest.with_name(stem + dest.suffix)

    def made() -> list[Path]:
        return sorted((p for p in dest.parent.iterdir() if p.name.startswith(stem + ".")), key=lambda p: p == staged)
    try:
        yield staged
    except BaseException:
        for path in made():
            path.unlink(missing_ok=True)
        raise
    # Moved with Ctrl-C held back until all are: a set half moved is worse than either whole one. And one
    # set at a time to one name: two saves to one name moving at once could leave one's model under
    # the other's card.
    held = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if held else None
    try:
        with FileLock(dest.with_name(f".{dest.name}.lock")):
            for path in made():
                os.replace(path, dest.with_name(dest.stem + path.name[len(stem):]))
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _sweep_saving(dest: Path) -> None:
    """What a save killed outright (its process gone: out of memory, SIGKILL) left beside `dest`."""
    for path in dest.parent.glob(f".{dest.stem}.saving-*"):
        pid = path.name[len(f".{dest.stem}.saving-"):].split("-", 1)[0]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (ValueError, OSError):
            pass


LOG_MOST_BYTES = 1 << 20      # a service log (the workers', the Ray agent's) past this starts again, once kept


def appended_log(path: Path):
    """`path` opened to append the output of a process about to start. Past LOG_MOST_BYTES it is moved to
    `<path>.1` first (an older one there let go; a process still writing to that one writes to nothing
    kept): a server runs for months of classes, each run a few lines, and a log nobody cut would fill its
    disk in the end. It is cut only as a process starts: one long-lived writes on past the size."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_MOST_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    return open(path, "ab")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with whole_file(path) as file:
        file.write(data)


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


class DamagedFile(ValueError):
    """A run file exists but cannot be used (bad UTF-8, bad JSON, the wrong shape, not a file)."""


def read_json(path: Path, default=None):
    """The file's JSON, or `default` when it does not exist; DamagedFile when it cannot be used."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DamagedFile(f"{path.name} is too large")
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DamagedFile(f"{path.name} cannot be read ({type(e).__name__})") from None


def read_object(path: Path) -> dict:
    """A JSON object file ({} when missing); DamagedFile when it is anything else."""
    value = read_json(path, {})
    if not isinstance(value, dict):
        raise DamagedFile(f"{Path(path).name} is not a JSON object")
    return value


STATUS_TYPES = {"state": str, "owner": str, "error": (str, type(None)), "pid": (int, type(None)),
                "pid_started": (int, type(None)), "created": (int, float), "started": (int, float, type(None)),
                "ended": (int, float, type(None)), "precision": str, "train_images": int,
                "test_accuracy": (int, float, type(None)), "per_class_accuracy": (dict, type(None)),
                "temperature": (int, float, type(None)), "host": str, "boot": (str, type(None)),
                "pid_space": (int, type(None)),
                "waiting_for_mb": (int, type(None))}
def _read_proc(read) -> str | int | None:
    try:
        return read()
    except OSError:     # no /proc: not Linux
        return None


# The machine a local trainer runs on, beside its pid in status.json (`runs._here` judges by them): replicas
# on several machines may share one runs directory, and a pid can only be checked where it was started.
# Its host name; on Linux also its boot (a run's pid from before a restart names no process of this one) and
# its process namespace: containers sharing one host name (Docker's host network) number their processes
# apart, and a replica in one found the other's live trainers dead and took their places.
HOST = socket.gethostname()
BOOT = _read_proc(lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip())
PID_SPACE = _read_proc(lambda: os.stat("/proc/self/ns/pid").st_ino)
MACHINE = {"host": HOST, "boot": BOOT, "pid_space": PID_SPACE}


def read_status(run_dir: Path) -> dict:
    """status.json with every known field of the right type; a damaged file reads as a failed run."""
    try:
        raw = read_object(Path(run_dir) / STATUS)
    except DamagedFile:
        return {"state": "failed", "error": "Its status file is damaged, so it cannot be shown or resumed."}
    status = {k: v for k, v in raw.items()
              if k not in STATUS_TYPES or (isinstance(v, STATUS_TYPES[k]) and not isinstance(v, bool))}
    if status.get("state") not in STATES:
        status.update(state="failed", error="Its status file is damaged, so it cannot be shown or resumed.")
    return status


def update_status(run_dir: Path, **changes) -> dict:
    """Merge `changes` into status.json. Callers that race hold runs' lock."""
    try:
        status = read_object(Path(run_dir) / STATUS) | changes
    except DamagedFile:
        status = dict(changes)
    write_json(Path(run_dir) / STATUS, status)
    return status


def append_metric(run_dir: Path, record: dict) -> None:
    # NaN is not JSON: write it as null so every reader can parse the line.
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(clean) + "\n")
        f.flush()


RECORD_FIELDS = {"epoch": int, "step": int, "elapsed_s": float, "loss": float, "accuracy": float,
                 "test_loss": float, "test_accuracy": float, "images_per_s": float}


# The fields each kind of record must have, as the trainer writes them: the curves draw every one of them.
REQUIRED = {"batch": ("epoch", "elapsed_s", "step", "loss", "accuracy"),
            "epoch": ("epoch", "elapsed_s", "test_loss", "test_accuracy")}


def _valid_record(record) -> bool:
    """A record every reader can use: a known kind, its required fields there, and each known field a
    number (or null where it is not required)."""
    if not isinstance(record, dict) or record.get("kind") not in REQUIRED:
        return False
    if any(record.get(field) is None for field in REQUIRED[record["kind"]]):
        return False
    for field, kind in RECORD_FIELDS.items():
        value = record.get(field)
        if value is None:
            continue
        numeric = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
    return True


def _records(data: bytes) -> list[dict]:
    """The usable records of metrics lines; a damaged line is skipped, so one bad line never breaks a
    chart or the board."""
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if _valid_record(record):
            records.append(record)
    return records


def read_metrics(run_dir: Path) -> list[dict]:
    """All usable records. A half-written last line (the trainer mid-write) and any damaged
    line are skipped, so one bad line never breaks a chart or the board."""
    return list(MetricsReader(run_dir).read())


class MetricsReader:
    """One run's metrics as a watcher reads them, again and again: `read_metrics`' records, parsing only
    the lines completed since the last read. A trainer only appends, about once a second, and a long run's
    file of 11,000 lines took 0.15 s to parse whole. Read from the start again when the file was replaced
    or cut short."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / METRICS
        self.place = (None, 0)      # (inode, bytes of whole lines parsed)
        self.parsed: tuple = ()     # their records

    def read(self) -> tuple:
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                inode = info.st_ino
                if inode != self.place[0] or info.st_size < self.place[1]:
                    self.place, self.parsed = (inode, 0), ()
                f.seek(self.place[1])
                new = f.read()
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            self.place, self.parsed = (None, 0), ()
            return ()
        whole = new.rfind(b"\n") + 1
        self.parsed += tuple(_records(new[:whole]))
        self.place = (inode, self.place[1] + whole)
        # A last line without its newline yet is read as read_metrics reads it, and again next time.
        return self.parsed + tuple(_records(new[whole:]))


def _stat(pid: int | str | None) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which is in parentheses and may hold spaces):
    field 3 on, so Linux's field n is at n - 3. None where there is no such process (or no /proc)."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def process_cpu_s(pid: int | str | None, started: int | None = None) -> float | None:
    """CPU seconds process `pid` ("self": this one) has used so far, all its threads (Linux: its user and
    system time, fields 14 and 15), or None where that cannot be read, or where the process is not the
    one that `started` then (`process_start`: a pid reused by another), read from the one file."""
    fields = _stat(pid)
    if fields is None or (started is not None and int(fields[19]) != started):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_start(pid: int | None) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux: field 22), or None where that cannot be
    read.

    A pid and its start time name one process for good: a pid reused by
    another process later has another start time.
    """
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def let_go_of_trainers_own(run_dir: Path) -> None:
    """Remove what the run's trainer left half done (`TRAINERS_OWN`), once it is gone or never started."""
    for name in TRAINERS_OWN:
        with contextlib.suppress(OSError):
            (Path(run_dir) / name).unlink(missing_ok=True)


def stop_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / STOP).exists()


def request_stop(run_dir: Path, reason: str = "") -> None:
    """Ask the run's trainer to stop after its current batch; `reason`, a sentence the run keeps as why
    it stopped (empty: its owner or a teacher asked)."""
    (Path(run_dir) / STOP).write_text(reason)


def stop_reason(run_dir: Path) -> str | None:
    """Why the run was asked to stop, or None: its owner asked, or nobody did."""
    try:
        return (Path(run_dir) / STOP).read_text(errors="replace").strip() or None
    except OSError:
        return None


def now() -> float:
    return round(time.time(), 3)
