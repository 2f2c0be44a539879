"""Trainers on a Ray cluster, for when one server is not enough (CIFAR_RUNS_BACKEND=ray or RAY_ADDRESS).

`runs` hands a waiting run here instead of spawning a trainer itself. The run
goes to the cluster at once, asking for CIFAR_RAY_CPUS_PER_RUN CPUs (and a
GPU when its recipe wants one, or else the memory its trainer will take); Ray's scheduler, not our file queue, decides
on which node and when it starts. Until then the run is "queued" and waiting
for the cluster. The run directory, on storage every node sees, stays the
only contract: the trainer is the same `python -m cifar_core train --run-dir
...` command, so Stop (the STOP file), live charts, continue and the board
work unchanged.

Why a detached, named actor per run, and not a Ray task or a Ray job:
- A plain task belongs to the process that submitted it. When that driver
  exits, Ray kills its tasks, so restarting the app server would kill every
  training run. A detached actor belongs to the cluster and outlives the
  process that created it.
- Its name, `cifar-run-<run id>` in the `cifar-studio` namespace, is all a
  process needs to find it again: after a UI restart, from another server
  process, with nothing kept in memory. status.json records it (with the
  actor id), and `alive` asks `ray.get_actor` whether it still exists: Ray
  frees the name when the actor dies, with its node, its worker or the end
  of training.
- The training starts in the actor's constructor (in a thread). The cluster
  owns a detached actor's creation, so the run starts even if the server that
  submitted it is gone by then; a method call would be queued in that
  server's process and lost with it.
- Ray's job submission would also survive a restart, but it needs the
  dashboard and its HTTP dependencies (`ray[default]`) on every node, and
  another address to reach; the actor needs plain `ray`.
When the trainer ends, the actor kills itself and hands its CPUs back. A
cancelled run's actor, when it is finally scheduled, sees the run is no longer
waiting and ends at once. Ray stays an optional import: nothing here imports
it at module level, and the app never imports this module unless asked.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from cifar_core import evaluation, rundir, settings, trainer_memory
from cifar_core.config import TrainConfig

NAMESPACE = "cifar-studio"
ACTOR_PREFIX = "cifar-run-"
INSIDE_TRAINER = "CIFAR_TRAINER_ON_RAY"   # set in the environment of a trainer that Ray started
GPU_RECIPES = {"precision": "mixed_float16", "strategy": "mirrored"}   # config values that mean "train on a GPU"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

_connect_lock = threading.Lock()


def enabled() -> bool:
    return settings.get().runs_backend == "ray"


def on_ray(status: dict) -> bool:
    """Whether this run was handed to a Ray cluster (its status says so, whatever the settings say now)."""
    return status.get("backend") == "ray"


def waiting_sentence(run) -> str:
    """What a person reads while a submitted run waits for a node with room for it."""
    cpus, gpus, memory = (value if isinstance(value, int) else 0 for value in
                          (run.status.get("ray_cpus"), run.status.get("ray_gpus"), run.status.get("ray_memory_mb")))
    needs = [evaluation.counted(cpus, "free CPU"), *([evaluation.counted(gpus, "GPU")] if gpus else []),
             *([f"{trainer_memory.gb(memory)} of memory to spare"] if memory else [])]
    *first, last = needs
    return f"Waiting for the cluster: it starts when a node has {', '.join(first)}{' and ' if first else ''}{last}."


def resources(config: dict) -> tuple[int, int, int]:
    """CPUs, GPUs and MB of memory a trainer asks the cluster for. Memory as `trainer_memory` estimates it
    (the nodes taken to be like this server), so Ray places big runs where they fit rather than by CPUs
    alone, two 6 GB trainers on one 8 GB node; a GPU run's batch lives in the GPU, so it asks for none."""
    limits = settings.get()
    wants_gpu = any(config.get(field) == value for field, value in GPU_RECIPES.items())
    gpus = max(limits.ray_gpus_per_run, 1 if wants_gpu else 0)
    try:
        memory = 0 if gpus else round(trainer_memory.estimate_mb(TrainConfig.from_dict(config)))
    except (ValueError, TypeError):     # a damaged settings file: its trainer fails it in a sentence
        memory = 0
    return limits.ray_cpus_per_run, gpus, memory


def refusal(config, continuing: bool = False) -> str | None:
    """Why no machine of the cluster could ever train a run of `config`, in a sentence, or None. Ray would
    otherwise keep it waiting for a node with that much memory for ever (a node offers Ray about 70% of
    its memory unless started with --memory). None too when the cluster cannot be reached: submitting
    then fails the run with that reason."""
    cpus, _, memory = resources(config.to_dict())
    if not memory:
        return None
    try:
        nodes = connect().nodes()
    except Exception:    # ClusterUnavailable, or the cluster gone between calls
        return None
    # Among the nodes that could give it its CPUs: a head node that trains nothing may offer the most memory.
    largest = max((node["Resources"].get("memory", 0) for node in nodes
                   if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= cpus), default=0)
    if not largest:      # no node says what it offers: Ray decides
        return None
    return trainer_memory.refusal(config, room_mb=largest / 2**20, continuing=continuing,
                                  where="any machine of the cluster offers a trainer")


class ClusterUnavailable(RuntimeError):
    """Ray is missing or its cluster cannot be reached; the message says so in one sentence."""


def connect():
    """The `ray` module, connected to the cluster once per process."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("Runs are set to train on a Ray cluster, but Ray is not installed here "
                                 "(pip install -r requirements-cluster.txt).") from None
    address = settings.get().ray_address or "auto"
    with _connect_lock:
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=False)
            except Exception as e:   # ConnectionError, or RuntimeError when no cluster is found at "auto"
                raise ClusterUnavailable(f"The Ray cluster at {address} cannot be reached "
                                         f"({type(e).__name__}).") from None
    return ray


def submit(run) -> None:
    """Hand a queued run to the cluster; it stays queued ("waiting for the cluster") until Ray starts it.
    A cluster that cannot be reached fails the run with the reason, so Start never hangs or retries forever."""
    try:
        ray = connect()
        cpus, gpus, memory = resources(run.config)
        actor = ray.remote(Trainer).options(
            name=ACTOR_PREFIX + run.id, namespace=NAMESPACE, lifetime="detached", max_restarts=0,
            num_cpus=cpus, num_gpus=gpus, memory=memory * 2**20,
            # Every node has the project at the same path as this server (see README, hosting with Ray).
            runtime_env={"env_vars": {"PYTHONPATH": str(PACKAGE_ROOT)}},
        ).remote(str(run.path.resolve()), _trainer_environment())
    except ClusterUnavailable as e:
        rundir.update_status(run.path, state="failed", ended=rundir.now(), error=f"{e} The run was not started.")
        return
    except Exception as e:   # Ray refused the request (a name already taken, resources it can never offer)
        rundir.update_status(run.path, state="failed", ended=rundir.now(),
                             error=f"The Ray cluster refused this run ({type(e).__name__}: {str(e)[:200]}).")
        return
    rundir.update_status(run.path, state="queued", backend="ray", ray_actor=ACTOR_PREFIX + run.id,
                         ray_actor_id=actor._actor_id.hex(), ray_cpus=cpus, ray_gpus=gpus, ray_memory_mb=memory, submitted=rundir.now())


def _trainer_environment() -> dict[str, str]:
    """What the trainer must see as this server does: the data, the runs directory (absolute, as every
    node mounts it at the same path) and the Keras cache. Everything else comes from the node."""
    passed = {k: v for k, v in os.environ.items() if k.startswith("CIFAR") or k == "KERAS_HOME"}
    passed["CIFAR_RUNS_DIR"] = str(settings.get().runs_dir.resolve())
    passed["CIFAR_RUNS_BACKEND"] = "ray"   # its end-of-run dispatch must never start waiting runs on its node
    return passed


def dispatch(runs: list, launch) -> None:
    """Send every waiting run to the cluster at once, and fail a waiting run whose actor the cluster lost."""
    if os.environ.get(INSIDE_TRAINER):
        return   # a trainer's end-of-run dispatch: the app servers' watchers do the cluster's bookkeeping
    for run in runs:
        if run.state != "queued":
            if on_ray(run.status) and not run.status.get("ray_node") and not run.status.get("ray_released"):
                _release(run)
            continue
        if not on_ray(run.status):
            launch(run)
        elif not _actor_exists(run.status) and rundir.read_status(run.path).get("state") == "queued":
            rundir.update_status(run.path, state="failed", ended=rundir.now(), error=(
                "The cluster lost this run before it started: its node went away, or cannot see the runs "
                "directory (CIFAR_RUNS_DIR must be the same shared folder on every node)."))


def _release(run) -> None:
    """Take a run cancelled while it waited out of the cluster's queue, so its place (or a GPU request
    no node can meet) is not held for nothing. Its actor would end by itself once started; this is sooner."""
    try:
        ray = connect()
        ray.kill(ray.get_actor(run.status.get("ray_actor", ""), namespace=NAMESPACE), no_restart=True)
    except ValueError:
        pass          # already gone
    except Exception:
        return        # the cluster did not answer: try again on the next round
    rundir.update_status(run.path, ray_released=True)


def alive(status: dict) -> bool:
    """Whether a run's trainer is still on the cluster: its named actor exists. Unknown counts as alive,
    so a cluster that cannot be reached for a moment never fails a run."""
    if os.environ.get(INSIDE_TRAINER):
        return True   # see dispatch: a trainer does not connect to the cluster just to check on others
    if _actor_exists(status):
        return True
    # The actor ends right after its trainer writes the final state; a status read just before that
    # must not turn a finished run into a failed one.
    run_id = str(status.get("ray_actor", ""))[len(ACTOR_PREFIX):]
    return bool(run_id) and rundir.read_status(settings.get().runs_dir / run_id).get("state") != "running"


def _actor_exists(status: dict) -> bool:
    try:
        ray = connect()
    except ClusterUnavailable:
        return True
    try:
        ray.get_actor(status.get("ray_actor", ""), namespace=NAMESPACE)
    except ValueError:   # Ray's answer for "no actor of that name": it ended or its node died
        return False
    except Exception:    # the cluster did not answer: unknown
        return True
    return True


class Trainer:
    """The actor that runs one trainer on whichever node Ray picked (wrapped by `ray.remote` in `submit`)."""

    def __init__(self, run_dir: str, environment: dict):
        threading.Thread(target=self._train, args=(Path(run_dir), environment), daemon=True).start()

    def _train(self, run_dir: Path, environment: dict) -> None:
        import ray
        try:
            self._run_trainer(run_dir, environment, ray.util.get_node_ip_address())
        finally:
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)   # hand the CPUs back

    @staticmethod
    def _run_trainer(run_dir: Path, environment: dict, node: str) -> None:
        from filelock import FileLock
        # Under the runs lock, so a Stop pressed at this instant either cancels the run before it
        # starts or finds it running (and its trainer sees the STOP file).
        with FileLock(run_dir.parent / ".lock", timeout=60):
            if rundir.read_status(run_dir).get("state") != "queued":
                return   # cancelled while it waited for the cluster
            rundir.update_status(run_dir, state="running", pid=None, started=rundir.now(), ray_node=node)
        env = {**os.environ, **environment, INSIDE_TRAINER: "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(run_dir / rundir.LOG, "ab") as log:
            code = subprocess.call([sys.executable, "-m", "cifar_core", "train", "--run-dir", str(run_dir)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=PACKAGE_ROOT)
        if rundir.read_status(run_dir).get("state") == "running":   # it died without saying how it ended
            rundir.update_status(run_dir, state="failed", ended=rundir.now(), error=(
                f"The trainer on cluster node {node} ended with exit code {code} before finishing "
                "(killed, or out of memory); the last checkpoint, if any, is kept."))
