"""Limits and paths, read from environment variables at call time.

A laptop needs none of them; a hosted copy sets them. Reading them on every
call (not at import) lets tests and the trainer subprocess see the values of
their own environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


# Settings no trainer (nor any process the server starts) needs, kept out of their environments (a cluster
# node's user could read them): `without_secrets`.
SECRETS = ("CIFAR_ADMIN_PASSWORD",)


@dataclass(frozen=True)
class Settings:
    data: Path | None          # CIFAR10_DATA: a cifar-10-python.tar.gz or a folder holding cifar-10-batches-py/
    runs_dir: Path             # CIFAR_RUNS_DIR: where run directories live
    max_concurrent_runs: int   # CIFAR_MAX_CONCURRENT_RUNS: trainers running at once; the rest queue
    max_queued_runs: int       # CIFAR_MAX_QUEUED_RUNS: waiting runs accepted before Start is refused
    max_epochs: int            # CIFAR_MAX_EPOCHS: the most epochs one run may ask for
    max_runs_per_person: int   # CIFAR_MAX_RUNS_PER_PERSON: runs one visitor may have queued or running at once
    keep_runs: int             # CIFAR_KEEP_RUNS: ended runs kept per person; their older ones are pruned
    keep_runs_in_all: int      # CIFAR_KEEP_RUNS_IN_ALL: ended runs kept on the server; the oldest are pruned
    admin_password: str | None  # CIFAR_ADMIN_PASSWORD: unlocks teacher controls on a hosted copy
    worker_idle_s: int         # CIFAR_WORKER_IDLE_S: a warm trainer waits this long for the next run; 0: a process per run
    run_stall_s: int           # CIFAR_RUN_STALL_S: a running run silent this long is failed and its trainer killed
    run_turn_minutes: int      # CIFAR_RUN_TURN_MINUTES: a visitor's run trains at most this long while others wait (0: no limit)
    worker_max_runs: int       # CIFAR_WORKER_MAX_RUNS: recipes one warm trainer compiles before a fresh one replaces it
    runs_backend: str          # CIFAR_RUNS_BACKEND: "local" (a subprocess queue here) or "ray"; "ray" when RAY_ADDRESS is set
    ray_address: str | None    # RAY_ADDRESS: the Ray cluster's head ("host:6379"), or "auto" on a node of it
    ray_cpus_per_run: int      # CIFAR_RAY_CPUS_PER_RUN: CPUs each trainer asks the cluster for
    ray_gpus_per_run: int      # CIFAR_RAY_GPUS_PER_RUN: GPUs every trainer asks for (a GPU recipe asks for 1 anyway)
    upload_session_mb: int     # CIFAR_UPLOAD_SESSION_MB: uploaded pictures one browser (all its tabs) may hold at once
    upload_server_mb: int      # CIFAR_UPLOAD_SERVER_MB: uploaded pictures the whole server holds at once
    upload_session_files: int  # CIFAR_UPLOAD_SESSION_FILES: uploaded pictures one browser (all its tabs) may hold at once
    trainer_nice: int          # CIFAR_TRAINER_NICE: a trainer's nice value (0-19): above the server's, so pages come first


def _int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value}.")
    return value


def _path(name: str) -> str:
    """A path setting's text; refused where it is not UTF-8 (a folder named in Latin-1): a page cannot send
    such a name, nor key what it keeps by it."""
    raw = os.environ.get(name, "").strip()
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        shown = raw.encode("utf-8", "replace").decode("utf-8")
        raise ValueError(f"{name} names a path that is not UTF-8 text ({shown}): rename that folder or file, "
                         "or use another.") from None
    return raw


def get() -> Settings:
    data = _path("CIFAR10_DATA")
    return Settings(
        # Absolute, as runs_dir: a trainer reads it from the package's folder.
        data=Path(data).expanduser().absolute() if data else None,
        # Absolute: the paths written into runs (a continued run's starting model) are read by trainers
        # that run from the package's folder, wherever the server was started.
        # Set but empty is unset: as "", it was the folder the server started in (a checkout's root).
        runs_dir=Path(_path("CIFAR_RUNS_DIR") or "runs").expanduser().absolute(),
        max_concurrent_runs=_int("CIFAR_MAX_CONCURRENT_RUNS", 1, minimum=1),
        max_queued_runs=_int("CIFAR_MAX_QUEUED_RUNS", 60, minimum=1),   # 0 would refuse every Start
        max_epochs=_int("CIFAR_MAX_EPOCHS", 200, minimum=1),
        max_runs_per_person=_int("CIFAR_MAX_RUNS_PER_PERSON", 2, minimum=1),
        keep_runs=_int("CIFAR_KEEP_RUNS", 50, minimum=1),
        keep_runs_in_all=_int("CIFAR_KEEP_RUNS_IN_ALL", 1000, minimum=1),
        admin_password=os.environ.get("CIFAR_ADMIN_PASSWORD") or None,
        worker_idle_s=_int("CIFAR_WORKER_IDLE_S", 300),
        run_stall_s=_int("CIFAR_RUN_STALL_S", 900, minimum=1),
        run_turn_minutes=_int("CIFAR_RUN_TURN_MINUTES", 20),
        worker_max_runs=_int("CIFAR_WORKER_MAX_RUNS", 10, minimum=1),
        runs_backend=_backend(),
        ray_address=os.environ.get("RAY_ADDRESS", "").strip() or None,
        ray_cpus_per_run=_int("CIFAR_RAY_CPUS_PER_RUN", 2, minimum=1),
        ray_gpus_per_run=_int("CIFAR_RAY_GPUS_PER_RUN", 0),
        upload_session_mb=_int("CIFAR_UPLOAD_SESSION_MB", 30, minimum=1),
        upload_server_mb=_int("CIFAR_UPLOAD_SERVER_MB", 200, minimum=1),
        upload_session_files=_int("CIFAR_UPLOAD_SESSION_FILES", 100, minimum=1),
        trainer_nice=_int("CIFAR_TRAINER_NICE", 10, maximum=19),
    )


def without_secrets() -> dict[str, str]:
    """This process's environment but SECRETS: for the processes it starts (trainers, a picture decoded
    apart), which need none of them."""
    return {name: value for name, value in os.environ.items() if name not in SECRETS}


def paths_for_trainers() -> dict[str, str]:
    """The path settings as absolute paths, for the environment of a trainer on this machine: a trainer
    runs from the package's folder, so a relative path it read itself named another file than the
    server's (or none). (A Ray node works out its own, for its own user.)"""
    current = get()
    paths = {"CIFAR_RUNS_DIR": str(current.runs_dir.resolve())}
    if current.data is not None:
        paths["CIFAR10_DATA"] = str(current.data)
    if os.environ.get("KERAS_HOME", "").strip():
        paths["KERAS_HOME"] = str(keras_home())
    return paths


def keras_home() -> Path:
    """Keras' folder, as an absolute path: KERAS_HOME, or ~/.keras where it is unset. An empty KERAS_HOME
    is taken as unset: as an empty path it named whatever folder a process happened to start in."""
    return Path(os.environ.get("KERAS_HOME", "").strip() or Path.home() / ".keras").expanduser().absolute()


BACKENDS = ("local", "ray")


def _backend() -> str:
    """Where trainers run: CIFAR_RUNS_BACKEND if set, else Ray when RAY_ADDRESS names a cluster, else here."""
    raw = os.environ.get("CIFAR_RUNS_BACKEND", "").strip().lower()
    if not raw:
        return "ray" if os.environ.get("RAY_ADDRESS", "").strip() else "local"
    if raw not in BACKENDS:
        raise ValueError(f"CIFAR_RUNS_BACKEND must be one of {', '.join(BACKENDS)}, not {raw!r}.")
    return raw
