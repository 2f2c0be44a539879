"""Warm workers: trainer processes that keep TensorFlow and the data set loaded and train runs one after another.

A fresh `python -m cifar_core train` process spends seconds importing
TensorFlow and reading the data set before its first step: about 10 s of a
31 s classroom run, measured on a fast machine, and more on a busy 2-core
server. A worker (`python -m cifar_core worker`) pays that once and then
takes queued runs as `runs` hands them over.

The hand-over happens under the runs lock: `runs` marks the run running
under the worker's pid, then writes the run's id into the worker's file,
`.workers/<pid>.json` in the runs directory. A worker whose file names no
run is idle and is handed the next one; after `CIFAR_WORKER_IDLE_S` seconds
idle it removes its file and exits, so an empty queue costs no memory. The
run directory stays the only contract: STOP, metrics, checkpoints, status
and log.txt are the same whichever trainer runs a run. If a worker dies, its
pid is gone, so `runs.reconcile` marks its run failed and the next dispatch
starts a new worker for the rest of the queue. A worker started by hand
(`python -m cifar_core worker`, say before a class arrives) offers itself
as idle and is handed the first run that needs one.

A worker also keeps the last run's compiled networks (`warm_networks`): the
next run with the same recipe, a class's thirty runs say, starts training
without tracing them again, from fresh weights and a fresh optimizer.

Between runs a worker clears Keras' session, collects garbage and hands freed
heap back to the system, and resets the global state a run leaves (the dtype
policy; seeds are set by every run), so each run trains exactly as it would in
a fresh process. Every other Python object of a run is freed then, but
TensorFlow's native side keeps some memory of every network it compiled:
measured at about 20 MB a run when each run built its own (tiny runs, 2-core
AVX2 machine), and nothing measurable for runs on kept networks (twelve class
runs). So a worker retires once it has compiled networks for
CIFAR_WORKER_MAX_RUNS recipes (default 10) and a fresh one takes the queue:
memory stays bounded for one start-up per ten recipes, and a class's thirty
runs of one recipe are one worker's.
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cifar_core import rundir, runs, settings
from cifar_core.process_memory import memory_mb, restart_peak, trim_heap

DIRECTORY = ".workers"     # under the runs directory; the leading dot keeps it off the runs board
LOG = "log.txt"            # the workers' own output (each run's goes to its own log.txt)
POLL_S = 0.1               # how often an idle worker looks for a hand-over: a small file read
OTHER_MACHINES_FILE_KEPT_S = 7 * 24 * 3600   # another machine's worker file untouched this long is a dead worker's


def directory(create: bool = False) -> Path:
    # Only a writer creates it: a worker must not bring back a runs directory somebody removed.
    path = settings.get().runs_dir / DIRECTORY
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _file(pid: int) -> Path:
    """This machine's worker `pid`'s file: named for the machine (and its process namespace) too, as replicas
    on several machines, or in containers sharing one, may share the runs directory, and pids repeat."""
    where = "-".join(str(part) for part in (rundir.HOST, rundir.PID_SPACE) if part is not None)
    return directory() / f"{where}-{pid}.json"


def _read(path: Path) -> dict | None:
    try:
        info = rundir.read_object(path)
    except rundir.DamagedFile:
        return None
    return info if isinstance(info.get("pid"), int) else None


def live_workers() -> list[dict]:
    """This machine's workers whose process is still alive (caller holds the runs lock); dead ones' files
    are removed. Another machine's workers are that machine's replicas' to judge and to hand runs to."""
    found = []
    for path in sorted(directory(create=True).glob("*.json")):
        info = _read(path)
        if info and not runs._here(info):
            # Another machine's (or a container's before it was made again, whose name is gone for good):
            # a worker there rewrites its file at every run and retires within minutes idle, so one
            # untouched this long is from a worker that was killed. Parsed at every hand-over otherwise.
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > OTHER_MACHINES_FILE_KEPT_S:
                    path.unlink()
            continue
        if info and runs._alive({"pid": info["pid"], "pid_started": info.get("pid_started")}):
            found.append({**info, "file": path.name})   # where it looks: a worker from before the host names, too
        else:
            path.unlink(missing_ok=True)
    return found


def hand_over(run: runs.Run) -> None:
    """Give `run` to an idle live worker, or to a new one (caller holds the runs lock).

    The run is marked running under the worker's pid before the worker's file
    names it, so the worker never starts a run whose status still says queued.
    """
    idle = next((w for w in live_workers() if not w.get("run")), None)
    spawned = idle is None
    if spawned:
        idle = _spawn()
    file = directory() / idle.pop("file", _file(idle["pid"]).name)     # where the worker looks
    try:
        rundir.update_status(run.path, state="running", pid=idle["pid"], pid_started=idle.get("pid_started"),
                             started=rundir.now(), launched=rundir.now(), trainer="worker", error=None,
                             **rundir.MACHINE)
        rundir.write_json(file, {**idle, "run": run.id, "handed_over": rundir.now()})
    except OSError:
        # A full disk: the worker never heard of the run, so it goes back in the queue rather than showing
        # "running" under a worker that will not train it (and holding up the queue behind it).
        with contextlib.suppress(OSError):
            runs.requeue(run.path)
        if spawned:
            # Nor is a worker just started for it kept: without its file no one sees it, so the next tick
            # would start another, each loading TensorFlow and the data set (800 MB) while the disk is full.
            _end(idle["pid"])
        raise


def _end(pid: int) -> None:
    """End a worker this process has just started (reaped by `runs.reconcile`, like every child)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _spawn() -> dict:
    log = rundir.appended_log(directory(create=True) / LOG)
    process = subprocess.Popen([sys.executable, "-m", "cifar_core", "worker"], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=runs.trainer_environment(), cwd=runs.PACKAGE_ROOT,
                               start_new_session=True)   # its own session: a server restart does not kill it
    log.close()
    runs.adopt(process)
    return {"pid": process.pid, "pid_started": rundir.process_start(process.pid), "born": rundir.now(),
            **rundir.MACHINE}


def release_memory() -> None:
    """Forget the last run: Keras' global state, unreachable objects, then the freed heap itself."""
    import keras
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")   # build_model restores it, but a failed run may not have
    gc.collect()
    trim_heap()


@contextlib.contextmanager
def _output_to(path: Path):
    """Send this process's stdout and stderr (TensorFlow's C++ logging too) to `path` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        with contextlib.suppress(OSError):   # a full disk: the output is lost, the worker's own must come back
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (target, *saved):
            os.close(fd)


def _train_one(run_id: str, dataset, networks) -> str:
    """Train one handed-over run in this process; every failure ends up in its status, never here."""
    from cifar_core import training
    path = settings.get().runs_dir / run_id
    if not path.is_dir():   # removed after it was handed over: nothing to train, nowhere to say so
        return "failed"
    with _output_to(path / rundir.LOG):
        try:
            config = training.load_config(path)
        except (OSError, ValueError, TypeError) as e:
            rundir.update_status(path, state="failed", ended=rundir.now(),
                                 error=f"Its settings could not be read ({type(e).__name__}), so it was not trained.")
            return "failed"
        before, _ = memory_mb()
        restart_peak()
        state = training.train(config, path, dataset=dataset, networks=networks)
    _, peak = memory_mb()
    release_memory()
    now, _ = memory_mb()
    with contextlib.suppress(OSError):   # the run may already have been deleted
        # Before, at the run's peak and after it: what one run costs on top of the warm worker.
        rundir.update_status(path, trainer_before_mb=before, trainer_peak_mb=peak, trainer_memory_mb=now)
    return state


def _train_handed_over(run_id: str, dataset, networks) -> str:
    """`_train_one`, where a full disk (writing the run's log or status) fails that run with the reason
    in its status where it still can be written, and the worker goes on: a run left "running" under a
    live worker would hold a trainer's place until the silence check, minutes later."""
    from cifar_core import training
    try:
        return _train_one(run_id, dataset, networks)
    except OSError as e:
        with contextlib.suppress(OSError):      # not even that: the watcher finds the run silent, in time
            rundir.update_status(settings.get().runs_dir / run_id, state="failed", ended=rundir.now(),
                                 error=training._failure(e))
        return "failed"


def _load_data():
    """The data set, once; None when it cannot be had, so each run's trainer reports why in its own status."""
    from cifar_core import data
    try:
        return data.load()
    except Exception as e:   # DataError, or a download that cannot happen offline
        print(f"worker {os.getpid()}: no data set yet ({e}); each run will try again", flush=True)
        return None


def serve() -> int:
    """The worker's life: import and load once, then train whatever is handed over until idle too long."""
    me = os.getpid()
    booted = time.monotonic()
    import keras  # noqa: F401  (the slow import, paid once here rather than by every run)

    from cifar_core.warm_networks import WarmNetworks
    dataset = _load_data()
    networks = WarmNetworks()
    trim_heap()
    with runs._lock():
        if _read(_file(me)) is None:   # started by hand (say, before a class arrives): offer ourselves, idle
            directory(create=True)
            rundir.write_json(_file(me), {"pid": me, "pid_started": rundir.process_start(me), "born": rundir.now(),
                                          **rundir.MACHINE})
    print(f"worker {me}: ready in {time.monotonic() - booted:.1f} s", flush=True)
    idle_since = time.monotonic()
    trained = 0
    while True:
        info = _read(_file(me))
        if info is None:   # our file is gone (runs directory cleared or removed): nobody can reach us
            return 0
        if info.get("run"):
            started = time.monotonic()
            state = _train_handed_over(info["run"], dataset, networks)
            if dataset is None:
                dataset = _load_data()
            print(f"worker {me}: run {info['run']} {state} in {time.monotonic() - started:.1f} s; "
                  f"memory {memory_mb()[0]:.0f} MB", flush=True)
            trained += 1
            retire = networks.built >= settings.get().worker_max_runs
            with runs._lock():
                if retire:   # leave first, so the next run goes to a fresh worker rather than to us
                    _file(me).unlink(missing_ok=True)
                else:
                    rundir.write_json(_file(me), {**info, "run": None})
                runs.reconcile(locked=True)   # starts the next queued run: most likely here, as we are idle
            if retire:
                print(f"worker {me}: retiring after {trained} runs; a fresh worker takes the next", flush=True)
                return 0
            idle_since = time.monotonic()
            continue
        if time.monotonic() - idle_since > settings.get().worker_idle_s:
            with runs._lock():
                latest = _read(_file(me))
                if latest is None or not latest.get("run"):
                    _file(me).unlink(missing_ok=True)
                    print(f"worker {me}: idle for {settings.get().worker_idle_s:g} s, exiting", flush=True)
                    return 0
            continue
        time.sleep(POLL_S)
