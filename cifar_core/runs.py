"""Training runs as separate processes: create, start, stop, list, delete, reconcile, queue.

Each run is a directory under the CIFAR_RUNS_DIR setting (see `rundir`). At
most CIFAR_MAX_CONCURRENT_RUNS trainers run at once; later starts wait in a
queue, and each trainer, when it ends, starts the next. The queue goes in the
order Start was pressed, with one exception: a run waiting for memory (a big
batch) lets a smaller run behind it go first when that one fits now and keeps
none of the runs ahead of it waiting longer (`_dispatch`). Every change of
state happens under one file lock on the runs directory, so many sessions (or
processes) pressing Start at the same instant never launch more trainers than
the limit. With the Ray backend (`ray_backend`) every waiting run goes to the
cluster at once: the cluster's free CPUs, GPUs and memory decide when each
starts, not CIFAR_MAX_CONCURRENT_RUNS or this order. The command line's
`train` makes its run here (`create`) but trains it at once in its own
process, outside the queue and its limits.

Locally a trainer is a warm worker (see `worker`): a process that keeps
TensorFlow and the data set loaded and is handed one run after another, so a
class's queue does not pay seconds of start-up per run. CIFAR_WORKER_IDLE_S=0
goes back to a fresh `python -m cifar_core train` process per run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from cifar_core import board, evaluation, queue_wait, rundir, settings, snapshots, trainer_memory
from cifar_core import progress as timing
from cifar_core.config import MAX_NAME_CHARS, ConfigError, TrainConfig

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_children: list[subprocess.Popen] = []   # trainers this process launched (`adopt`), reaped by `_reap_children`
_children_lock = threading.Lock()        # the watcher reaps them while a page's Start adds one


RECIPE_CHANGED = "recipe_changed"   # status.json of a continued run whose parent's recipe was changed
PASSED = "passed"     # status.json: the runs waiting for memory that this one went before as it started
EARLIER_EPOCHS = rundir.EARLIER_EPOCHS
START_PRESSED = "Start pressed"     # the board's column: when the run was asked for, which may be long before it began
# What the board's and the report's two time columns measure, said once for both.
TIME_SAID = "Wall time from the run's launch to its end (or until now): start-up, training and testing."
TESTING_SAID = "Of that time, the test pass after every epoch and the final checks on the saved model."


class RunError(ValueError):
    """A run cannot be started, stopped or deleted; the message says why, for a person, and `field` names
    the setting to change where one is to blame (as a ConfigError's does)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Run:
    id: str
    path: Path
    config: dict
    status: dict

    @property
    def state(self) -> str:
        return self.status.get("state", "failed")

    @property
    def name(self) -> str:
        return self.config.get("name") or self.id

    @property
    def queue_order(self) -> tuple:
        """First come, first served: when the run was created (to the microsecond, since one process can
        create several runs within a millisecond), then its id so that the order never changes between
        two readings."""
        return self.status.get("created", 0), self.id

    @property
    def model_path(self) -> Path | None:
        path = self.path / rundir.MODEL
        return path if path.exists() else None

    def metrics(self) -> list[dict]:
        return rundir.read_metrics(self.path)

    def summary(self, metrics: list[dict] | None = None, now: float | None = None, zone: str | None = None) -> dict:
        """One row of the runs board: every value a number or text a person reads, never None. `zone`:
        the time zone its moments are written in (`progress.known_zone`), else the server's."""
        metrics = self.metrics() if metrics is None else metrics
        progress = self.progress(metrics, now)
        trained = timing.epochs_trained(self.config, self.status, metrics)
        recipe = (self.config.get("preset") or self.config.get("arch") or "–") + (
            " (changed)" if self.recipe_changed() else "")
        return {"id": self.id, "name": self.name, "recipe": recipe,
                "state": self.state,
                # Rounded down: 3.96 of 4 epochs is "3.9 / 4", never "4 / 4" while it still trains.
                "epochs": f"{math.floor(trained * 10) / 10:.1f} / {progress['epochs']}".replace(".0 /", " /"),
                # The model's one accuracy (final, whole test set, mirror TTA), known once the run has ended.
                "test accuracy": evaluation.percent(self.status.get("test_accuracy")),
                "time": timing.duration(progress["elapsed_s"]),
                "of which testing": timing.duration(timing.testing_seconds(self.status, metrics)),
                START_PRESSED: timing.clock(self.status.get("created", 0), zone)}

    def recipe_changed(self) -> bool:
        """Whether some of its recipe's settings were changed before Start, or before its parent's."""
        with contextlib.suppress(ConfigError, TypeError):     # a config from an older version: named as it is
            return bool(self.status.get(RECIPE_CHANGED) or TrainConfig.from_dict(self.config).changed_from_preset())
        return False

    def progress(self, metrics: list[dict] | None = None, now: float | None = None) -> dict:
        """How far the run has got and how long it has left (see `cifar_core.progress`)."""
        metrics = self.metrics() if metrics is None else metrics
        return timing.estimate(self.config, self.status, metrics, time.time() if now is None else now).as_dict()


def _in_a_sentence(change):
    """What a person asked of the runs (start, stop, delete, continue, clear) fails with a RunError's
    sentence, never a traceback: the runs lock held too long by others, or the disk full or unwritable."""
    @functools.wraps(change)
    def changed(*args, **kwargs):
        try:
            return change(*args, **kwargs)
        except Timeout:
            raise RunError("The server is busy with many people's runs just now; please try again in a moment.") from None
        except OSError as e:
            raise RunError(f"The runs folder could not be changed ({e.strerror or type(e).__name__}); "
                           "please try again, or tell whoever runs this server.") from None
    return changed


def runs_dir() -> Path:
    path = settings.get().runs_dir
    # Where it cannot be made (a share not mounted, a read-only disk), every page still opens, showing no
    # runs, and starting one says why in a sentence: readers need no folder, writers fail on their own.
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _lock() -> FileLock:
    return FileLock(runs_dir() / ".lock", timeout=30)


def get(run_id: str) -> Run:
    path = runs_dir() / run_id if isinstance(run_id, str) else None
    if (not run_id or path is None or "/" in run_id or "\x00" in run_id or run_id.startswith(".")
            or not os.path.lexists(path / rundir.CONFIG)):
        raise RunError(f"There is no run called {str(run_id)[:80]!r}.")
    return _read(path)


def _read(path: Path, stamps: tuple | None = None) -> Run:
    """A run as its files say; a damaged file makes it a failed run with the reason, never an error.
    Parsed again only when one of its two files has changed (`_parsed`); `stamps`, theirs if known."""
    stamps = stamps or _stamps(str(path))
    kept = _parsed.get(path)
    if kept is not None and kept[0] == stamps:
        config, status = kept[1], kept[2]
    else:
        status = rundir.read_status(path)
        try:
            config = rundir.read_object(path / rundir.CONFIG)
            TrainConfig.from_dict(config).validate(max_epochs=sys.maxsize)
        except (rundir.DamagedFile, ValueError, TypeError):
            config = {}
            status = {**status, "state": "failed",
                      "error": "Its settings file is damaged, so it cannot be shown or resumed."}
        _parsed[path] = (stamps, config, status)
    return Run(path.name, path, dict(config), dict(status))


# Every run's config and status as last parsed, under the files' stamps: the watcher looks at every run
# about once a second while one is queued or running, and reading and checking them all took 80 ms a
# time with 300 runs on the board. The files are replaced whole (rundir.atomic_write_bytes), so a
# change is a new inode; stat-ing both files of 300 runs takes a few milliseconds.
_parsed: dict[Path, tuple] = {}


def _stamp(path: str) -> tuple | None:
    """What identifies this version of a file; None when there is nothing at `path` (not even a link)."""
    try:
        found = os.stat(path)
    except OSError:
        return ("unreadable",) if os.path.lexists(path) else None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _stamps(folder: str) -> tuple:
    """Stamps of a run folder's status and config (plain strings: pathlib was most of the time taken)."""
    return _stamp(os.path.join(folder, rundir.STATUS)), _stamp(os.path.join(folder, rundir.CONFIG))


def _all() -> list[Run]:
    try:
        entries = list(os.scandir(runs_dir()))
    except FileNotFoundError:       # it could not be made: no runs yet (`runs_dir`)
        entries = []
    found = []
    for entry in entries:
        stamps = None if entry.name.startswith(".") else _stamps(entry.path)
        if stamps and stamps[1] is not None:      # a run is listed once its config exists
            found.append(_read(Path(entry.path), stamps))
    # Deleted runs. The keys copied first, in one step: a page's thread may add a run meanwhile (`board`),
    # and a set difference taken over the live keys (hashing each path in Python) failed on that.
    for gone in set(list(_parsed)) - {run.path for run in found}:
        _parsed.pop(gone, None)
    return sorted(found, key=lambda r: r.queue_order)


def list_runs() -> list[Run]:
    """Every run, newest first, with dead trainers marked as failed."""
    reconcile()
    return _all()[::-1]


def create(config: TrainConfig, owner: str = "", takes_turns: bool = False, history_from: Path | None = None,
           recipe_changed: bool = False, trained_here: bool = False) -> Run:
    """Write a queued run directory for `config` (validated first); does not start it. `takes_turns`:
    a visitor's run, which trains for at most CIFAR_RUN_TURN_MINUTES while someone else's run waits.
    `trained_here`: the command line's, made running under this process from the start: made queued, an
    app's watcher on the same folder could hand it to a trainer of its own before this one began.

    A checkpoint to continue from is copied in, and the snapshots of the run in `history_from` shared
    (`snapshots.share_history`), so the run does not depend on another run's folder surviving until it
    starts, or after.
    """
    config.validate()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    path = runs_dir() / run_id
    path.mkdir()
    try:
        if config.initial_model:
            try:
                shutil.copyfile(config.initial_model, path / rundir.STARTING_COPY)
            except FileNotFoundError:
                raise RunError("The model to go on from is gone: its run was deleted meanwhile.") from None
            config = dataclasses.replace(config, initial_model=str(path / rundir.STARTING_COPY))
        earlier = {}
        if history_from is not None:
            snapshots.share_history(history_from, path)
            # The epochs its shared snapshots count before its own: said once, not worked out from its
            # records, which a page reads up to a tick behind its snapshots.
            earlier = {EARLIER_EPOCHS: snapshots.last_epoch(path)}
        # Status first: a run is listed once its config exists, and must never be seen without its status.
        me = {"state": "running", "pid": os.getpid(), "pid_started": rundir.process_start(os.getpid()),
              "started": rundir.now(), **rundir.MACHINE} if trained_here else {"state": "queued"}
        rundir.write_json(path / rundir.STATUS, {**me, "owner": owner, "created": round(time.time(), 6),
                                                 **({"takes_turns": True} if takes_turns else {}), **earlier,
                                                 **({RECIPE_CHANGED: True} if recipe_changed else {})})
        rundir.write_json(path / rundir.CONFIG, config.to_dict())
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)     # no half-made folder, which nothing would list or prune
        raise
    return get(run_id)


ON_HOLD = ".starts-on-hold"      # in the runs folder: while it exists, only a teacher starts runs


def starts_on_hold() -> bool:
    """Whether a teacher has paused everyone else's new runs (`hold_starts`)."""
    return (runs_dir() / ON_HOLD).exists()


@_in_a_sentence
def hold_starts(on: bool, admin: bool) -> None:
    """A teacher's pause: while on, nobody but a teacher (or the command line) may start or continue a
    run. A visitor is a cookie and cookies are free, so per-person limits cannot stop a script starting
    runs as one new person after another; a teacher at the projector can, at once, then clear the queue."""
    if not admin:
        raise RunError("Only a teacher can pause or allow new runs.")
    if on:
        (runs_dir() / ON_HOLD).touch()
    else:
        (runs_dir() / ON_HOLD).unlink(missing_ok=True)


@_in_a_sentence
def start(config: TrainConfig, owner: str = "", admin: bool = False, history_from: Path | None = None,
          recipe_changed: bool = False) -> Run:
    """Create a run and start it now, or queue it behind the running ones.

    On a shared server each person (owner) may have at most
    CIFAR_MAX_RUNS_PER_PERSON runs queued or running, so nobody can fill the
    queue; a teacher (admin) and the command line (no owner) are not limited,
    and while a teacher holds new runs (`hold_starts`) only they may start one.
    """
    limits = settings.get()
    config.validate()
    too_big = _too_big(config, continuing=history_from is not None)
    if too_big:
        raise RunError(too_big, field="batch_size")
    if owner and not admin and starts_on_hold():
        raise RunError("The teacher has paused new runs for now: you can start one when they allow it again.")
    with _lock():
        reconcile(locked=True)
        free = _free_bytes()
        if free is not None and free < MIN_FREE_TO_START:
            raise RunError(f"The server's disk is nearly full ({free / 2**20:.0f} MB free), so no run can start: "
                           "a teacher can delete old runs on the board, or whoever runs the server can make room.")
        runs = _all()
        queued = [r for r in runs if r.state == "queued"]
        if len(queued) >= limits.max_queued_runs:
            raise RunError(f"{evaluation.counted(len(queued), 'run')} {'is' if len(queued) == 1 else 'are'} already "
                           "waiting, the most this server queues: please try again when one has started.")
        mine = [r for r in runs if r.state in rundir.ACTIVE and r.status.get("owner") == owner]
        if owner and not admin and len(mine) >= limits.max_runs_per_person:
            raise RunError(f"You already have {evaluation.counted(len(mine), 'run')} waiting or training, the most "
                           "one person may have at once here: stop one, or wait for one to finish.")
        run = create(config, owner, takes_turns=bool(owner) and not admin, history_from=history_from,
                     recipe_changed=recipe_changed)
        try:
            _dispatch()
        except OSError:     # no trainer could be started just now: the run is made and waits in the queue,
            pass            # and the watcher tries again on its next tick, rather than "please try again"
        _prune(owner, limits.keep_runs, limits.keep_runs_in_all)
    board.invalidate()     # this visitor's next rerun shows the new run, not one tick later
    return get(run.id)


# What a run may need on the disk: two copies of the largest model as a checkpoint is replaced, a continued
# run's starting copy, its test answers, snapshots, curves and log (about 30 MB), and room to spare. With
# less, a run trained for minutes failed as it saved, and a class's waited behind it for nothing.
MIN_FREE_TO_START = 100 * 2**20


def _free_bytes() -> int | None:
    """Bytes free on the runs folder's disk for this server's user, or None where that cannot be told."""
    try:
        return shutil.disk_usage(runs_dir()).free
    except OSError:
        return None


def _too_big(config: TrainConfig, continuing: bool) -> str | None:
    """Why a run of `config` could never train where its trainer would run, in a sentence, or None."""
    if settings.get().runs_backend == "ray":     # the cluster's machines, not this one
        from cifar_core import ray_backend
        return ray_backend.refusal(config, continuing)
    return trainer_memory.refusal(config, continuing=continuing)


@_in_a_sentence
def continue_run(run_id: str, epochs: int, owner: str = "", admin: bool = False) -> Run:
    """Start a new run that trains a run's checkpoint for more epochs: a finished or stopped run's, or a
    failed one's last (a trainer killed for memory, a cluster node gone: its last epoch's model is kept).

    The new run shares its parent's snapshots, epoch numbers kept, and its
    trainer numbers its own snapshots after them: one history across the two
    (its metrics.jsonl counts its own epochs from 1). They are linked in as the
    run is made, before anything is pruned or the trainer starts: it reads the
    history only at its first epoch's end.
    """
    run = get(run_id)
    if run.state not in ("finished", "stopped", "failed") or not run.model_path:
        raise RunError("Only a run that has ended with a saved model can be continued.")
    parent = TrainConfig.from_dict(run.config)
    config = dataclasses.replace(parent, epochs=epochs, initial_model=str(run.model_path),
                                 name=f"{run.name[:MAX_NAME_CHARS - 12]} (continued)", **going_on(parent))
    # Its epochs and rate are a continuation's own: whether its recipe was changed is the parent's to say.
    changed = parent.changed_from_preset() or bool(run.status.get(RECIPE_CHANGED))
    return start(config, owner, admin, history_from=run.path, recipe_changed=changed)


def going_on(parent: TrainConfig) -> dict:
    """What a continued run's schedule changes: its peak is the learning rate its parent's schedule ended
    at, instead of the parent's peak, so more epochs refine the model rather than shake it up again.
    Measured on a 91.67% `airbench94` model (its teachers not asked), two more epochs: back at the peak
    (1.5) 78.2%; from the rate it ended at (0.105), falling as before, 91.0%; holding 0.105, 90.6%. A
    schedule that fell to nothing (a final rate of 0: Muon's, in `quick`, `class`, `best`) goes on from
    a tenth of its peak: on a 90.66% `best` model, two more epochs from a hundredth, a tenth and three
    tenths of its 0.24 ended at 90.58%, 90.75% and 90.42%; a 72.76% `quick` model's second pass at
    74.13%, 76.14% and 76.40% (73.83% back at its peak)."""
    if parent.schedule != "triangle":
        return {}
    return {"learning_rate": parent.learning_rate * (parent.final_lr or 0.1)}


def dispatch() -> None:
    """Start queued runs while fewer than the limit are running (a trainer calls this as it ends)."""
    with _lock():
        reconcile(locked=True)
        _dispatch()


def _dispatch() -> None:
    runs = _all()
    if settings.get().runs_backend == "ray":   # every waiting run goes to the cluster at once; Ray decides when
        from cifar_core import ray_backend
        return ray_backend.dispatch(runs, _launch)
    busy = {r.id for r in runs if r.state == "running"}
    workers = []
    if settings.get().worker_idle_s > 0:
        # A worker is busy until it has tidied up after its run and says so, even once the run shows finished:
        # the next run waits for it rather than for a new worker's seconds of start-up.
        from cifar_core import worker
        workers = worker.live_workers()
        busy |= {w["run"] for w in workers if w.get("run")}
    free = settings.get().max_concurrent_runs - len(busy)
    queued = queue_wait.in_turn(runs, time.time())
    if free <= 0:       # the watcher's usual tick: no memory to weigh
        # Every trainer is taken: the queue now waits for one of them, not for memory. A figure written
        # while one was free would say otherwise; memory is weighed again when one is.
        for run in queued:
            if run.status.get("waiting_for_mb"):
                rundir.update_status(run.path, waiting_for_mb=None)
        return
    if not queued:
        return
    # Ours on this machine, as (run, settings, pid): trainers, and workers still tidying up after a run that
    # has ended (no run or settings: they hold what they hold, and will give it back).
    here = [r for r in runs if r.state == "running" and _here(r.status) and isinstance(r.status.get("pid"), int)]
    training = [(r.id, TrainConfig.from_dict(r.config), r.status["pid"]) for r in here]
    training += [(None, None, w["pid"]) for w in workers
                 if w.get("run") and w["pid"] not in {pid for _, _, pid in training}]
    room = trainer_memory.Room.now(training)
    # What the warm worker that takes the next run already holds, and what one keeps once its run ends.
    idle_mb = next((trainer_memory.resident_mb(w["pid"]) for w in workers if not w.get("run")), 0.0)
    kept_mb = trainer_memory.KEPT_BY_WORKER_MB if settings.get().worker_idle_s > 0 else 0.0
    # The runs each trainer went before as it started, held back for memory (its status says which): once
    # people took turns, a run made later was as often simply ahead in the queue.
    went_before = {r.id: set(r.status.get(PASSED) or ()) for r in here}
    held_back: list[tuple[Run, TrainConfig]] = []     # runs ahead that wait, for memory or for the ones before
    for run in queued:
        if free <= 0:
            break
        config = TrainConfig.from_dict(run.config)
        if not held_back:
            ready = _memory_for(run, config, room, idle_mb)
        else:
            # Behind a run waiting for memory (a big run a student chose, say), a smaller one may go first
            # when it fits now and keeps none of the runs ahead of it waiting any longer: the class's small
            # runs need not wait for the big one, and the big one waits no longer for them.
            ready = room.fits(config, idle_mb) and all(
                room.may_pass(ahead_config, {t.run for t in room.training if ahead.id in went_before.get(t.run, ())},
                              config, idle_mb, kept_mb)
                for ahead, ahead_config in held_back)
        if not ready:
            held_back.append((run, config))
            continue
        if held_back:
            went_before[run.id] = {ahead.id for ahead, _ in held_back}
            rundir.update_status(run.path, **{PASSED: sorted(went_before[run.id])})
        _launch(run)
        room.add(run.id, config, idle_mb)     # the next one counts this one too
        free -= 1
        idle_mb = 0.0


def _memory_for(run: Run, config: TrainConfig, room: trainer_memory.Room, idle_mb: float) -> bool:
    """Whether `run` can start beside our trainers on this machine without memory running out (`room`); if
    not, its status says how much it waits for. With none of ours running it starts whatever memory is
    left: waiting would free nothing, and the kernel ends a trainer first."""
    if not room.training or room.fits(config, idle_mb):
        if run.status.get("waiting_for_mb"):
            rundir.update_status(run.path, waiting_for_mb=None)
        return True
    need = round(trainer_memory.estimate_mb(config))
    if run.status.get("waiting_for_mb") != need:      # written once, not on every tick of the watcher
        rundir.update_status(run.path, waiting_for_mb=need)
    return False


def trainer_environment() -> dict[str, str]:
    """The environment of a trainer (or a warm worker) on this machine: it runs from the package's folder,
    wherever the server was started, so the package is on its path and the path settings are absolute."""
    return {**settings.without_secrets(), **settings.paths_for_trainers(),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}


def _launch(run: Run) -> None:
    if settings.get().runs_backend == "ray":   # Ray's scheduler, not this queue, picks the node and the time
        from cifar_core import ray_backend
        return ray_backend.submit(run)
    if settings.get().worker_idle_s > 0:   # a warm worker: TensorFlow and the data set already loaded
        from cifar_core import worker
        return worker.hand_over(run)
    # A fresh process per run (CIFAR_WORKER_IDLE_S=0): seconds of imports each, but nothing shared.
    env = trainer_environment()
    # Running before the process exists, so a trainer that fails at once is never overwritten.
    rundir.update_status(run.path, state="running", pid=None, started=rundir.now(), launched=rundir.now(),
                         trainer="process", **rundir.MACHINE)
    try:
        with open(run.path / rundir.LOG, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cifar_core", "train", "--run-dir", str(run.path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=PACKAGE_ROOT, start_new_session=True)  # its own session: a server restart does not kill it
    except OSError as e:    # no process (out of memory or of processes): said so, not "ended or killed"
        rundir.update_status(run.path, state="failed", ended=rundir.now(), error=(
            f"The server could not start a trainer for it ({e.strerror or type(e).__name__}); please try again "
            "in a moment."))
        return
    adopt(process)
    rundir.update_status(run.path, pid=process.pid, pid_started=rundir.process_start(process.pid))


def queue_position(run: Run) -> int | None:
    """1 for the next run to start, 2 for the one after, ...; None if not queued."""
    queued = [r.id for r in queue_wait.in_turn(_all(), time.time())]
    return queued.index(run.id) + 1 if run.id in queued else None


def _may_change(run: Run, owner: str, admin: bool) -> None:
    if not admin and run.status.get("owner", "") != owner:
        raise RunError("Only the person who started this run (or a teacher) can change it.")


@_in_a_sentence
def stop(run_id: str, owner: str = "", admin: bool = False) -> Run:
    """Ask a running trainer to stop after its current batch; a queued run is cancelled at once."""
    with _lock():
        run = get(run_id)
        _may_change(run, owner, admin)
        # A teacher ending someone else's run says so: its owner read "Stopped" as their own doing.
        by_teacher = admin and run.status.get("owner", "") != owner
        if run.state == "queued":
            rundir.update_status(run.path, state="stopped", ended=rundir.now(),
                                 error=f"Cancelled{' by the teacher' if by_teacher else ''} before it started.")
            rundir.let_go_of_trainers_own(run.path)     # the copy of the model it would have gone on from
        elif run.state == "running" and not rundir.stop_requested(run.path):     # a second press keeps the reason
            rundir.request_stop(run.path, "Stopped by the teacher." if by_teacher else "")
    board.invalidate()
    return get(run_id)


@_in_a_sentence
def delete(run_id: str, owner: str = "", admin: bool = False) -> None:
    with _lock():
        run = get(run_id)
        _may_change(run, owner, admin)
        if run.state == "running":
            raise RunError("This run is still training: stop it before deleting it.")
        _remove(run.path)
    from cifar_core import ray_backend
    if ray_backend.in_cluster_queue(run.status):   # cancelled, its request still in the cluster's queue: the
        ray_backend.end(run)                       # next round, which would take it out, finds no folder (asked
    board.invalidate()                             # outside the lock: a hung cluster keeps nobody else waiting)


def _remove(path: Path) -> None:
    """Delete a run's folder: first out of the way under a hidden name, which nothing lists, so that a file
    written into it meanwhile (its report, kept by a page; a trainer's last status) fails instead of
    making the folder not empty, or leaving a run of one file behind, half deleted."""
    gone = path.with_name(f".deleting-{path.name}")
    path.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)
    if gone.exists():                  # a file written by a writer that already held the folder open
        shutil.rmtree(gone, ignore_errors=True)


KEEP_WITHOUT_MODEL = 100    # ended runs that left no model, kept on the server for their reasons: the newest


def _prune(owner: str, keep: int, keep_in_all: int) -> None:
    """Delete `owner`'s oldest ended runs beyond `keep`: making room never costs anyone else a run. Past
    `keep_in_all` ended runs on the server, the oldest go too: a visitor is known by a cookie, and one who
    keeps starting and cancelling runs with new cookies would otherwise fill the disk and slow the
    watcher, which looks at every run. Runs that left no model (cancelled, failed, stopped before their
    first epoch) go first, so such a visitor's runs make room before any student's trained model does, and
    past KEEP_WITHOUT_MODEL of them the oldest go anyway: a thousand cancelled runs kept the watcher and
    every board busy (0.16 s of CPU a second) for a reason a page shows once."""
    for left in runs_dir().glob(".deleting-*"):       # a delete whose folder a writer kept open (NFS, say)
        shutil.rmtree(left, ignore_errors=True)
    ended = [r for r in _all() if r.state not in rundir.ACTIVE]
    mine = [r for r in ended if r.status.get("owner", "") == owner]
    doomed = {r.id for r in mine[:max(0, len(mine) - keep)]}
    without_model = [r for r in ended if r.model_path is None and r.id not in doomed]      # oldest first
    doomed |= {r.id for r in without_model[:max(0, len(without_model) - KEEP_WITHOUT_MODEL)]}
    left = sorted((r for r in ended if r.id not in doomed), key=lambda r: r.model_path is not None)   # stable: oldest first
    doomed |= {r.id for r in left[:max(0, len(left) - keep_in_all)]}
    for run in ended:
        if run.id in doomed:
            with contextlib.suppress(OSError):
                _remove(run.path)


@_in_a_sentence
def clear(admin: bool) -> int:
    """A teacher's reset: cancel every queued run, stop every running one, delete every ended one.
    Returns how many runs were affected."""
    if not admin:
        raise RunError("Only a teacher can clear everybody's runs.")
    with _lock():
        reconcile(locked=True)
        everything = _all()
        for run in everything:
            if run.state == "queued":
                rundir.update_status(run.path, state="stopped", ended=rundir.now(), error="Cleared by the teacher.")
                rundir.let_go_of_trainers_own(run.path)
            elif run.state == "running":
                rundir.request_stop(run.path, "Cleared by the teacher.")
            else:
                with contextlib.suppress(OSError):
                    _remove(run.path)
    board.invalidate()
    return len(everything)


def _alive(status: dict) -> bool:
    """Whether the trainer that status.json names is still running: the same pid *and* the same
    process start time, so a pid reused by an unrelated process does not keep a dead run alive."""
    if status.get("backend") == "ray":   # its trainer is on some node of the cluster: ask Ray, not our pids
        from cifar_core import ray_backend
        return ray_backend.alive(status)
    pid = status.get("pid")
    if not pid:
        return False
    if not _here(status):   # another replica's machine: its pid means nothing here, and the silence check
        return True         # (`_stalled`) still ends the run if that trainer hangs or its machine goes away
    _reap_children()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError):
        return False
    try:
        if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return False
    except OSError:
        return True     # no /proc (not Linux): the pid check is all there is
    recorded = status.get("pid_started")
    return recorded is None or rundir.process_start(pid) == recorded


def _reap_children() -> None:
    """Reap this process's finished trainers and workers so they do not linger as zombies, and forget
    them: a term of class runs launches thousands."""
    with _children_lock:
        _children[:] = [child for child in _children if child.poll() is None]


def adopt(process: subprocess.Popen) -> None:
    """Count a trainer or worker this process started among those it reaps."""
    with _children_lock:
        _children.append(process)


def _take_back_runs_no_worker_holds(running: list[Run]) -> None:
    """A run marked running under a live warm worker of this machine whose file does not name it: handed
    over by a server killed between the two writes (`worker.hand_over`), or left so by a full disk. It held
    a trainer's place, and the class's queue, until the silence check 15 minutes later, and was lost
    then. Back in the queue if it never trained, else failed now (the worker has moved on)."""
    given = [run for run in running if run.status.get("trainer") == "worker" and _here(run.status)]
    if not given:
        return
    from cifar_core import worker
    held = {w.get("run") for w in worker.live_workers()}
    for run in given:
        if run.id in held or rundir.read_status(run.path).get("state") != "running":   # read again: just ended
            continue
        # Under a worker gone (killed, out of memory) since this pass's death check looked: that check's to
        # say on the next pass, as such ("ended without finishing"), not "training something else".
        if not _alive(run.status):
            continue
        if not (run.path / rundir.METRICS).exists():
            requeue(run.path)
        else:
            rundir.update_status(run.path, state="failed", ended=_last_heard(run), error=(
                "The warm trainer it was given to is training something else: it stopped this run without "
                f"saying so (a full disk?). {rundir.CHECKPOINT_KEPT}"))


def requeue(path: Path) -> None:
    """Put a run that never trained back in the queue, as if never given to a trainer."""
    rundir.update_status(path, state="queued", pid=None, pid_started=None, started=None, launched=None, trainer=None)


def _here(status: dict) -> bool:
    """Whether the pid a status (or a worker's file) names is this machine's to judge (`rundir.MACHINE`):
    its host, and, from the same boot, its process namespace; one from before a restart here is judged
    here too (its trainer is gone, whatever runs under that pid now). Older records name the host alone,
    or nothing."""
    if status.get("host", rundir.HOST) != rundir.HOST:
        return False
    if status.get("boot") is None or status.get("boot") != rundir.BOOT:
        return True
    return status.get("pid_space") == rundir.PID_SPACE


def reconcile(locked: bool = False) -> list[str]:
    """Mark running runs whose trainer process has died as failed; return their ids."""
    if not locked:
        with _lock():
            return reconcile(locked=True)
    dead = []
    everything = _all()
    for run in everything:
        if run.state == "running" and not _alive(run.status):
            rundir.update_status(run.path, state="failed", ended=_last_heard(run), error=_died(run.status))
            rundir.let_go_of_trainers_own(run.path)
            dead.append(run.id)
        elif run.state == "running" and (hung := _stalled(run)):
            if run.status.get("backend") == "ray":
                from cifar_core import ray_backend
                ray_backend.end(run)
            elif _here(run.status):       # a pid on another machine is some other process here
                _kill(run.status.get("pid"))
            rundir.update_status(run.path, state="failed", ended=_last_heard(run), error=(
                f"{hung}, so it was ended; the runs after it go on. {rundir.CHECKPOINT_KEPT}"))
            dead.append(run.id)
    for gone in _heard.keys() - {run.id for run in everything if run.state == "running" and run.id not in dead}:
        del _heard[gone]
    _take_back_runs_no_worker_holds([run for run in everything if run.state == "running" and run.id not in dead])
    _end_long_turns(everything)
    _dispatch()    # also starts a queued run that a free slot has been waiting for
    return dead


def _died(status: dict) -> str:
    """Why a run whose trainer is gone ended, in a sentence."""
    if status.get("backend") == "ray":
        from cifar_core import ray_backend
        return ray_backend.failure(status)
    return (f"The training process (pid {status.get('pid')}) ended without finishing: it was killed or ran out "
            f"of memory (a smaller batch needs less). {rundir.CHECKPOINT_KEPT}")


RAY_START_GRACE_S = 120    # a run on a cluster waits this long for Ray to place it before it counts as waiting


def _waits(run: Run) -> bool:
    """Whether a run waits for a trainer that another's long run holds. On a cluster, Ray starts a queued
    run as soon as a node has room, in seconds: only one it has not placed for a while waits, or every
    Start anywhere stopped every cluster run past its turn, while nodes stood free."""
    if run.state != "queued":
        return False
    if run.status.get("backend") == "ray":
        submitted = run.status.get("submitted")
        return isinstance(submitted, (int, float)) and time.time() - submitted > RAY_START_GRACE_S
    return True


def _end_long_turns(runs: list[Run]) -> None:
    """Stop a visitor's run that has run CIFAR_RUN_TURN_MINUTES (wall time from its start, its test passes
    included: the trainer is held as long) while another person's run waits: one
    student's 200 epochs of `best` would otherwise hold the trainer for hours while the class queues.
    It stops as Stop does, what it has learned kept (within its first epoch too: a batch of 1 on every
    picture takes an hour or two over that epoch alone; `rundir.FIRST_EPOCH_KEPT_AFTER_S`), and can be
    continued once the queue is free. Alone on a laptop nobody else waits, so it never stops; teachers'
    and the command line's runs never do."""
    turn = settings.get().run_turn_minutes
    for run in runs:
        if turn_left(run, runs) == 0 and not rundir.stop_requested(run.path) and _has_learned(run):
            rundir.request_stop(run.path, (
                f"Stopped after its turn of {evaluation.counted(turn, 'minute')} from its start (tests included), "
                "because other people's runs were waiting. What it has learned is kept: continue it when the "
                "queue is free."))


def _has_learned(run: Run) -> bool:
    """Whether a run stopped now keeps a model: it saved one, or has trained long enough to keep its first
    epoch unfinished. A turn counts from the start, loading and building included: a turn of a minute
    would otherwise stop a run that keeps nothing, under a reason saying it was kept."""
    return bool(run.model_path) or rundir.keeps_a_model(rundir.read_metrics(run.path))


def turn_left(run: Run, runs: list[Run]) -> float | None:
    """Seconds until a visitor's running `run` has had its turn (0: it has), where another person's run
    waits among `runs`; None where nothing will end it (no one else waits, a teacher's run, no turns)."""
    turn = settings.get().run_turn_minutes * 60
    started = run.status.get("started")
    if not (run.state == "running" and run.status.get("takes_turns") and turn and isinstance(started, (int, float))):
        return None
    if not {r.status.get("owner", "") for r in runs if _waits(r)} - {run.status.get("owner", "")}:
        return None
    return max(0.0, started + turn - time.time())


def _last_heard(run: Run) -> float:
    """When the run's trainer last wrote to its folder: where a dead trainer's run ends. The app may
    notice the death hours later (nobody had it open), and the board should not count those hours."""
    return round(min(_written(run) or time.time(), time.time()), 3)


def _written(run: Run) -> float | None:
    """The newest time on the run's status and metrics files (None: neither is there)."""
    return max((p.stat().st_mtime for p in (run.path / rundir.STATUS, run.path / rundir.METRICS) if p.exists()),
               default=None)


# Per running run: what its files' newest time was and when this process saw it change (its monotonic
# clock); the CPU seconds its trainer (on this machine) had used at the last look that found it working, and
# when that was.
_heard: dict[str, tuple[float | None, float, float | None, float]] = {}
BUSY_SHARE = 0.02     # of one core: a silent trainer using more than this, over the stall time, is still working
SILENT_WORK_MOST = 10     # stall times: silent work this long is a hang, however busy (a loop that spins)


def _stalled(run: Run) -> str | None:
    """Why a trainer (a process, a warm worker, or one on a cluster) is taken to hang, in a sentence's first
    half; None while it is not. It hangs when it has written nothing for CIFAR_RUN_STALL_S seconds: a
    trainer appends a metrics line every second while it trains, so silence that long means it hangs, and
    a hung worker would hold up everyone queued behind it.

    Some of a trainer's work writes nothing (an epoch's test pass, the checks on its saved model), and
    kept behind a busy server (`cpu_priority`) it can take ten times as long: so a trainer on this machine
    still using the CPU (more than BUSY_SHARE of a core over that time) is working, not hung, for up to
    SILENT_WORK_MOST stall times; past that, a trainer busy but silent is spinning in a loop.

    The silence is timed on this process's monotonic clock from when it saw the files change, not as
    the wall clock's distance from their times: a clock set forward, or a laptop waking from a lunch
    break's sleep (during which the trainer slept too), would otherwise end every training run at once."""
    if run.status.get("trainer") not in ("worker", "process") and run.status.get("backend") != "ray":
        return None
    written, now = _written(run), time.monotonic()
    cpu = _cpu_here(run.status)
    seen = _heard.get(run.id)
    if seen is None or seen[0] != written:
        _heard[run.id] = (written, now, cpu, now)
        return None
    _, heard, cpu_then, looked = seen
    stall = settings.get().run_stall_s
    if now - heard > SILENT_WORK_MOST * stall:
        return (f"The trainer wrote nothing for {round(now - heard)} seconds while it kept the CPU busy (a loop "
                "that never ends)")
    if cpu is not None and (cpu_then is None or cpu - cpu_then > BUSY_SHARE * (now - looked)):
        _heard[run.id] = (written, heard, cpu, now)      # working (or its CPU first read): timed from here
        return None
    return f"The trainer made no progress for {stall} seconds" if now - looked > stall else None


def _cpu_here(status: dict) -> float | None:
    """CPU seconds a local trainer has used, where its process is the one its status names; else None."""
    if status.get("backend") == "ray" or not _here(status):
        return None
    return rundir.process_cpu_s(status.get("pid"), status.get("pid_started"))     # None for a pid reused


def _kill(pid) -> None:
    """End a hung trainer (its pid and start time were just checked by `_alive`): a worker goes
    with its run, and the next dispatch starts a fresh one for the queue."""
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


WATCH_ERROR_REPEAT_S = 60.0    # the watcher's same failure, said again after this long


class Watcher:
    """Every `interval` seconds, in a daemon thread until `stop()`: refreshes the board snapshot every
    session reads (`board`), and reconciles the runs directory while any run is queued or running, or
    cancelled while it waited for a cluster that may still hold its request (`ray_backend.release`)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.runs_dir = settings.get().runs_dir
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="runs-watch", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from cifar_core.ray_backend import in_cluster_queue
        said, said_at = "", 0.0
        while not self._stop.wait(self.interval):
            try:
                _reap_children()    # the day's last trainers too, which no reconcile looks at once the queue is empty
                if settings.get().runs_dir != self.runs_dir:
                    continue    # settings changed under this process (tests do): leave other directories alone
                # Nothing queued or running: no trainer can die and no run can start, so no lock and no reads.
                cluster = settings.get().runs_backend == "ray"      # where a cancelled run's request is let go
                if any(r.state in rundir.ACTIVE or cluster and in_cluster_queue(r.status) for r in board.refresh().runs):
                    reconcile()
                    board.refresh()
            except Exception as e:   # a full disk, a busy lock or a setting gone bad must not end the watch
                # Said once, and again a minute on while it lasts: every tick of a day's full disk is 8 MB
                # of the server's log.
                line = f"runs.watch: {type(e).__name__}: {e}"
                if line != said or time.monotonic() - said_at > WATCH_ERROR_REPEAT_S:
                    print(line, file=sys.stderr)
                    said, said_at = line, time.monotonic()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


_watch_lock = threading.Lock()
_watcher: Watcher | None = None


def watch(interval: float = board.TICK_S) -> Watcher:
    """Start (once per process and runs directory) the watcher that marks dead trainers failed
    and starts a queued run as soon as a slot is free, whether or not anybody has a page open.
    Several server processes may each run one: the file lock keeps them in step."""
    global _watcher
    with _watch_lock:
        if _watcher is not None and _watcher.alive() and _watcher.runs_dir != settings.get().runs_dir:
            _watcher.stop()
        if _watcher is None or not _watcher.alive():
            _watcher = Watcher(interval)
    return _watcher
