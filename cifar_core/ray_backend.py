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

The server never talks to the cluster itself: a process that connects to Ray
becomes a Ray driver, and Ray ends a driver that loses the cluster's head for
a minute, which took the web server, and every visitor's session, with it; an
unreachable address made `ray.init` retry for 14 minutes, under the runs lock
that every Start and Stop waits for. Each server process has one `_Agent`, a
child process that does the talking: every call has a time limit, a head that
does not answer its port is found out in seconds, a cluster found unreachable
is not asked again for DOWN_FOR_S, and an agent that dies (Ray ends it) or
hangs is replaced at the next call.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from cifar_core import evaluation, rundir, settings, trainer_memory
from cifar_core.config import TrainConfig

NAMESPACE = "cifar-studio"
ACTOR_PREFIX = "cifar-run-"
INSIDE_TRAINER = "CIFAR_TRAINER_ON_RAY"   # set in the environment of a trainer that Ray started
GPU_RECIPES = {"precision": "mixed_float16", "strategy": "mirrored"}   # config values that mean "train on a GPU"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

CALL_TIMEOUT_S = 15      # a cluster call (connecting included) that takes longer: the cluster is unreachable.
                         # Well under the runs lock's 30 s wait: calls are made under it
DOWN_FOR_S = 30          # a cluster found unreachable is not asked again for this long
PROBE_TIMEOUT_S = 3      # for the head's port to answer before the agent tries to connect

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
    """CPUs, GPUs and MB of memory a trainer asks the cluster for. Memory as `trainer_memory` estimates it,
    so Ray places big runs where they fit rather than by CPUs alone, two 6 GB trainers on one 8 GB node;
    a GPU run's batch lives in the GPU, so it asks for none."""
    limits = settings.get()
    wants_gpu = any(config.get(field) == value for field, value in GPU_RECIPES.items())
    gpus = max(limits.ray_gpus_per_run, 1 if wants_gpu else 0)
    try:
        memory = 0 if gpus else round(trainer_memory.estimate_mb(_on_any_node(TrainConfig.from_dict(config))))
    except (ValueError, TypeError):     # a damaged settings file: its trainer fails it in a sentence
        memory = 0
    return limits.ray_cpus_per_run, gpus, memory


def _on_any_node(config: TrainConfig) -> TrainConfig:
    """`config` as its memory is worked out for a node not known yet: "auto" computes in bfloat16 only on a
    CPU that has it, and this server's CPU says nothing of the node's (32-bit numbers take about twice the
    memory a picture: an airbench run at a batch of 4,096 asked for 6.4 GB and took 7-8)."""
    return dataclasses.replace(config, precision="float32") if config.precision == "auto" else config


def refusal(config, continuing: bool = False) -> str | None:
    """Why no machine of the cluster could ever train a run of `config`, in a sentence, or None. Ray would
    otherwise keep it waiting for a node with that much memory for ever (a node offers Ray about 70% of
    its memory unless started with --memory). None too when the cluster cannot be reached: submitting
    then fails the run with that reason."""
    cpus, _, memory = resources(config.to_dict())
    if not memory:
        return None
    try:
        nodes = _agent.call("nodes")
    except Exception:    # ClusterUnavailable, or the cluster gone between calls
        return None
    # Among the nodes that could give it its CPUs: a head node that trains nothing may offer the most memory.
    largest = max((node["Resources"].get("memory", 0) for node in nodes
                   if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= cpus), default=0)
    if not largest:      # no node says what it offers: Ray decides
        return None
    return trainer_memory.refusal(_on_any_node(config), room_mb=largest / 2**20, continuing=continuing,
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
    cpus, gpus, memory = resources(run.config)
    # The CPUs it asks for are where Ray places it; TensorFlow would start a thread for every core of
    # the node all the same, and four runs on a 16-core node each take all 16.
    given = {"TF_NUM_INTRAOP_THREADS": str(cpus), "TF_NUM_INTEROP_THREADS": str(min(cpus, 2))}
    if not gpus:    # Ray hides no GPU from an actor that asked for none: it would train on one not given it
        given["CUDA_VISIBLE_DEVICES"] = ""
    try:
        actor_id = _agent.call("submit", str(run.path.resolve()), run.id, cpus, gpus, memory,
                               {**_trainer_environment(), **given})
    except ClusterUnavailable as e:
        rundir.update_status(run.path, state="failed", ended=rundir.now(), error=f"{e} The run was not started.")
        return
    except Exception as e:   # Ray refused the request (a name already taken, resources it can never offer)
        rundir.update_status(run.path, state="failed", ended=rundir.now(),
                             error=f"The Ray cluster refused this run ({type(e).__name__}: {str(e)[:200]}).")
        return
    rundir.update_status(run.path, state="queued", backend="ray", ray_actor=ACTOR_PREFIX + run.id,
                         ray_actor_id=actor_id, ray_cpus=cpus, ray_gpus=gpus, ray_memory_mb=memory, submitted=rundir.now())


def _trainer_environment() -> dict[str, str]:
    """What the trainer must see as this server does: the data, the runs directory (absolute, as every
    node mounts it at the same path) and the Keras cache. Everything else comes from the node."""
    # As this server's environment has them: a node works out a relative or "~" path for its own user.
    passed = {k: v for k, v in os.environ.items()
              if (k.startswith("CIFAR") or k == "KERAS_HOME") and k not in settings.SECRETS}
    passed["CIFAR_RUNS_DIR"] = str(settings.get().runs_dir.resolve())
    passed["CIFAR_RUNS_BACKEND"] = "ray"   # its end-of-run dispatch must never start waiting runs on its node
    return passed


def tie_to_actor() -> None:
    """End this trainer when the Ray actor that started it ends, however it ends. Ray kills an actor's
    child processes only when the actor exits by its own path: one killed outright (the node's memory
    monitor, `ray.kill` of a run the silence check gave up on) left its trainer training on, outside Ray's
    count of the node's cores and memory. Linux sends the signal asked for here when the parent goes (not
    elsewhere: then nothing is done)."""
    parent = os.environ.get(INSIDE_TRAINER, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return      # not a trainer Ray started
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(parent):   # the actor went before the line above was reached
        os._exit(1)


def dispatch(runs: list, launch) -> None:
    """Send every waiting run to the cluster at once, and fail a waiting run whose actor the cluster lost."""
    if os.environ.get(INSIDE_TRAINER):
        return   # a trainer's end-of-run dispatch: the app servers' watchers do the cluster's bookkeeping
    for run in runs:
        if run.state != "queued":
            if in_cluster_queue(run.status):
                release(run)
            continue
        if not on_ray(run.status):
            launch(run)
        elif not _actor_exists(run.status) and rundir.read_status(run.path).get("state") == "queued":
            # Lost before it started: a cluster whose head restarted keeps no detached actor. Sent again
            # once (its actor trains only a run still queued, so never twice); lost again, its nodes cannot
            # see its folder.
            if not run.status.get("ray_lost"):
                rundir.update_status(run.path, ray_lost=1)
                launch(run)
                continue
            rundir.update_status(run.path, state="failed", ended=rundir.now(), error=(
                "The cluster lost this run twice before it started: its nodes went away, or cannot see the runs "
                "directory (CIFAR_RUNS_DIR must be the same shared folder on every node)."))


def end(run) -> bool:
    """End a run's actor, and with it its trainer, or take it out of the cluster's queue (it is gone
    already where it has ended); whether the cluster answered."""
    try:
        _agent.call("kill", run.status.get("ray_actor", ""))
    except Exception:
        return False
    return True


def failure(status: dict) -> str:
    """Why a cluster run whose actor is gone ended, in a sentence: not a pid of this machine's."""
    node = status.get("ray_node")
    return (f"Its trainer on the cluster{f' (node {node})' if node else ''} ended without finishing: the node went "
            f"away, or the trainer was killed or ran out of memory (its log.txt may say). {rundir.CHECKPOINT_KEPT}")


RELEASE_TRIES_S = 600    # a cancelled run's request is asked out of the cluster's queue for this long


def release(run) -> None:
    """Take a run cancelled while it waited out of the cluster's queue, so its place (or a GPU request
    no node can meet) is not held for nothing. Its actor would end by itself once started; this is sooner.
    A cluster that does not answer is asked again on the next round, for RELEASE_TRIES_S: past that it
    is let be (the runs watcher would otherwise go through every run each second for good)."""
    ended = run.status.get("ended")
    if end(run) or isinstance(ended, (int, float)) and time.time() - ended > RELEASE_TRIES_S:
        rundir.update_status(run.path, ray_released=True)


def in_cluster_queue(status: dict) -> bool:
    """Whether a run sent to the cluster may still wait in its queue: never placed on a node, nor taken out
    (`release`). Cancelled (Stop, a teacher's Clear) as the class's last waiting run, it stayed there until
    some other run was active: placed later, each started a Ray worker for nothing, ahead of real runs."""
    return on_ray(status) and not status.get("ray_node") and not status.get("ray_released")


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
    """Whether the run's named actor exists; unknown (the cluster did not answer) counts as yes."""
    try:
        return _agent.call("exists", status.get("ray_actor", ""))
    except Exception:
        return True


def _answer(op: str, args: list):
    """One call, in the agent process: what `_Agent.call` asks of the cluster."""
    ray = connect()
    if op == "nodes":
        return ray.nodes()
    if op == "submit":
        run_path, run_id, cpus, gpus, memory, environment = args
        actor = ray.remote(Trainer).options(
            name=ACTOR_PREFIX + run_id, namespace=NAMESPACE, lifetime="detached", max_restarts=0,
            num_cpus=cpus, num_gpus=gpus, memory=memory * 2**20,
            # Every node has the project at the same path as this server (see README, hosting with Ray).
            runtime_env={"env_vars": {"PYTHONPATH": str(PACKAGE_ROOT)}},
        ).remote(run_path, environment)
        return actor._actor_id.hex()
    name = args[0]
    try:
        actor = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:   # Ray's answer for "no actor of that name": it ended or its node died
        return False
    if op == "kill":
        ray.kill(actor, no_restart=True)
    return True


def serve_agent() -> None:
    """The agent process: one JSON line in (an operation and its arguments), one out ("ok" and the
    answer, "unavailable" and why, or "error" and Ray's refusal), until the server closes the pipe. Its
    own output goes to its log: the protocol has the first stdout to itself."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        number, op, args = json.loads(line)
        try:
            reply = [number, "ok", _answer(op, args)]
        except ClusterUnavailable as e:
            reply = [number, "unavailable", str(e)]
        except Exception as e:      # Ray refused the request (a name already taken, resources it never offers)
            reply = [number, "error", f"{type(e).__name__}: {str(e)[:200]}"]
        replies.write(json.dumps(reply, default=str) + "\n")
        replies.flush()


class _Agent:
    """This server process's one line to the cluster: a child process (`serve_agent`) that is the Ray
    driver in its place, asked one thing at a time, each within CALL_TIMEOUT_S."""

    def __init__(self):
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.down_until, self.why = 0.0, ""
        self.asked = 0      # requests numbered, each reply checked against its own

    def call(self, op: str, *args):
        """The cluster's answer; ClusterUnavailable (Ray missing, the cluster unreachable, too slow), or
        RuntimeError with Ray's refusal in a sentence."""
        if not _ray_installed():
            raise ClusterUnavailable("Runs are set to train on a Ray cluster, but Ray is not installed here "
                                     "(pip install -r requirements-cluster.txt).")
        with self.lock:
            if time.monotonic() < self.down_until:
                raise ClusterUnavailable(self.why)
            try:
                _probe(settings.get().ray_address)
                kind, answer = self._ask(op, args)
            except ClusterUnavailable as e:
                self._down(str(e))
                raise
            if kind == "unavailable":
                self._down(answer)
                raise ClusterUnavailable(answer)
        if kind == "error":
            raise RuntimeError(answer)
        return answer

    def _ask(self, op: str, args) -> list:
        """[kind, answer] from the agent. An agent found dead when asked (Ray ended it) is replaced and asked
        once more, except to submit a run: the first may have reached the cluster."""
        address = settings.get().ray_address or "auto"
        for attempt in range(1 if op == "submit" else 2):
            if self.process is None or self.process.poll() is not None:
                self._start()
            self.asked += 1
            reply, hung = None, False
            try:
                self.process.stdin.write(json.dumps([self.asked, op, list(args)]) + "\n")
                self.process.stdin.flush()
                ready, _, _ = select.select([self.process.stdout], [], [], CALL_TIMEOUT_S)
                hung = not ready
                reply = json.loads(self.process.stdout.readline()) if ready else None
            except (OSError, ValueError):       # its pipe closed, or a line that is no reply: not to be trusted
                reply = None
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == self.asked:
                return reply[1:]
            self.process.kill()      # hung, dead, or out of step with its requests: a new one next time
            self.process.wait()
            self.process = None
            if hung:
                raise ClusterUnavailable(f"The Ray cluster at {address} did not answer within {CALL_TIMEOUT_S} seconds.")
        raise ClusterUnavailable(f"The Ray cluster at {address} cannot be reached: the process that talks to it "
                                 "ended (see .ray-agent.log in the runs folder).")

    def _start(self) -> None:
        runs_dir = settings.get().runs_dir
        log = rundir.appended_log(runs_dir / ".ray-agent.log") if runs_dir.is_dir() else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from cifar_core import ray_backend; ray_backend.serve_agent()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=PACKAGE_ROOT, text=True,
                # Without the server's secrets, as every process it starts: the agent needs none of them.
                env={**settings.without_secrets(), "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))})
        finally:
            if log is not subprocess.DEVNULL:
                log.close()

    def _down(self, why: str) -> None:
        self.down_until, self.why = time.monotonic() + DOWN_FOR_S, why


_agent = _Agent()


def _ray_installed() -> bool:
    if "ray" in sys.modules:
        return sys.modules["ray"] is not None     # None: known not to import
    return importlib.util.find_spec("ray") is not None


def _probe(address: str | None) -> None:
    """ClusterUnavailable at once where the head's address takes no connection: `ray.init` would retry
    it for minutes. "auto" (no address) is left to Ray."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT_S).close()
    except (OSError, ValueError):
        raise ClusterUnavailable(f"The Ray cluster at {address} cannot be reached (nothing answers there).") from None


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
        env = {**os.environ, **environment, INSIDE_TRAINER: str(os.getpid()),    # the actor's (`tie_to_actor`)
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(run_dir / rundir.LOG, "ab") as log:
            code = subprocess.call([sys.executable, "-m", "cifar_core", "train", "--run-dir", str(run_dir)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=PACKAGE_ROOT)
        if rundir.read_status(run_dir).get("state") == "running":   # it died without saying how it ended
            rundir.update_status(run_dir, state="failed", ended=rundir.now(), error=(
                f"The trainer on cluster node {node} ended with exit code {code} before finishing "
                f"(killed, or out of memory). {rundir.CHECKPOINT_KEPT}"))
