"""What only the Ray backend does: choose it from settings, survive the app server's restart, ask
for a GPU, notice a lost actor, and stay out of the way where Ray is not installed or not wanted.

The lifecycle every backend shares (start, stop, queue, continue, a killed
trainer) is in test_runs_backends.py.
"""
import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

import ray_cluster
from cifar_core import ray_backend, rundir, runs, settings, trainer_memory
from cifar_core.config import TrainConfig
from test_runs import small, wait_for


def gpu_recipe(**changes):
    return TrainConfig(arch="airbench_tiny", batch_size=8, precision="mixed_float16", **changes)

ROOT = runs.PACKAGE_ROOT


@pytest.fixture
def cluster(tiny_env, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (requirements-cluster.txt)")
    monkeypatch.delenv("CIFAR_RUNS_BACKEND", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.shared().address)
    monkeypatch.setenv("CIFAR_RAY_CPUS_PER_RUN", str(ray_cluster.WORKER_CPUS))
    yield ray_cluster.shared()
    ray_cluster.kill_trainers(tiny_env / "runs")


@pytest.fixture
def own_agent(monkeypatch):
    """A cluster agent of the test's own: one it finds unreachable, hangs or kills is never the one the
    next test talks through (its state is the server process's, and kept for DOWN_FOR_S)."""
    agent = ray_backend._Agent()
    monkeypatch.setattr(ray_backend, "_agent", agent)
    yield agent
    if agent.process is not None:
        agent.process.kill()
        agent.process.wait()


def test_the_backend_comes_from_the_settings(monkeypatch):
    monkeypatch.delenv("CIFAR_RUNS_BACKEND", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert settings.get().runs_backend == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert settings.get().runs_backend == "ray" and settings.get().ray_address == "10.0.0.5:6379"
    monkeypatch.setenv("CIFAR_RUNS_BACKEND", "local")    # an explicit choice wins
    assert settings.get().runs_backend == "local"
    monkeypatch.setenv("CIFAR_RUNS_BACKEND", "kubernetes")
    with pytest.raises(ValueError, match="^CIFAR_RUNS_BACKEND must be one of local, ray, not 'kubernetes'.$"):
        settings.get()


def test_a_gpu_recipe_asks_the_cluster_for_a_gpu_and_a_cpu_one_for_its_memory(monkeypatch):
    monkeypatch.setenv("CIFAR_RAY_CPUS_PER_RUN", "4")
    memory = round(trainer_memory.estimate_mb(small()))
    assert ray_backend.resources(small().to_dict()) == (4, 0, memory)
    assert ray_backend.resources(gpu_recipe().to_dict()) == (4, 1, 0)      # its batch lives in the GPU
    assert ray_backend.resources({**small().to_dict(), "strategy": "mirrored"}) == (4, 1, 0)
    big = TrainConfig.from_preset("best", batch_size=4096)
    in_float32 = round(trainer_memory.estimate_mb(dataclasses.replace(big, precision="float32")))
    assert ray_backend.resources(big.to_dict())[2] == in_float32 > 4 * memory
    # This server computing in bfloat16 says nothing of the node Ray picks: "auto" asks for float32's memory.
    monkeypatch.setattr(trainer_memory, "cpu_bfloat16", lambda: True)
    assert ray_backend.resources(big.to_dict())[2] == in_float32 > trainer_memory.estimate_mb(big)
    monkeypatch.setenv("CIFAR_RAY_GPUS_PER_RUN", "1")    # a cluster of GPU workers: every run takes one
    assert ray_backend.resources(small().to_dict()) == (4, 1, 0)


def test_a_trainer_on_the_cluster_gets_no_gpu_it_did_not_ask_for_and_never_the_teacher_password(
        tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_BACKEND", "ray")
    monkeypatch.setenv("CIFAR_ADMIN_PASSWORD", "s3cret")
    sent = []
    monkeypatch.setattr(ray_backend._agent, "call", lambda what, *args: sent.append(args) or "actor-id")
    ray_backend.submit(runs.create(small(epochs=1), owner="a"))
    ray_backend.submit(runs.create(gpu_recipe(), owner="b"))
    (_, _, _, gpus, _, environment), (_, _, _, gpus_too, _, environment_too) = sent
    assert gpus == 0 and environment["CUDA_VISIBLE_DEVICES"] == ""
    assert gpus_too == 1 and "CUDA_VISIBLE_DEVICES" not in environment_too     # Ray sets the one it gives
    assert "CIFAR_ADMIN_PASSWORD" not in environment and "CIFAR_ADMIN_PASSWORD" not in runs.trainer_environment()
    # Nor the process that talks to the cluster for the server.
    started = []
    monkeypatch.setattr(ray_backend.subprocess, "Popen", lambda *args, **kwargs: started.append(kwargs["env"]))
    ray_backend._Agent()._start()
    assert started and "CIFAR_ADMIN_PASSWORD" not in started[0] and "PYTHONPATH" in started[0]


def test_without_ray_installed_a_start_fails_with_one_sentence(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_RUNS_BACKEND", "ray")
    monkeypatch.setitem(sys.modules, "ray", None)     # what `import ray` does where it is not installed
    run = runs.start(small(epochs=1), owner="a")
    assert run.state == "failed"
    assert run.status["error"] == ("Runs are set to train on a Ray cluster, but Ray is not installed here "
                                   "(pip install -r requirements-cluster.txt). The run was not started.")


def test_the_local_backend_and_the_first_page_never_import_ray(tiny_env):
    code = ("import sys; import app_pages.home, app_pages.common; from cifar_core import runs; "
            "from cifar_core.config import TrainConfig; runs.create(TrainConfig(epochs=1)); runs.list_runs(); "
            "from cifar_core import settings; print(settings.get().runs_backend, "
            "sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "CIFAR_RUNS_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120, check=True)
    assert out.stdout.strip() == "local []"


def test_a_run_outlives_the_server_that_started_it(cluster):
    """The app server is a Ray driver; a restart ends it. The run was submitted as a detached, named
    actor, so it trains on, and a new server process finds it again by name."""
    code = ("import sys; from cifar_core import runs; from cifar_core.config import TrainConfig; "
            "run = runs.start(TrainConfig(arch='airbench_tiny', batch_size=8, precision='float32', epochs=3), "
            "owner='alice'); print('ray' in sys.modules, run.id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    driver, run_id = out.stdout.strip().splitlines()[-1].split()     # its process has exited: the "server" is gone
    # Never a Ray driver itself (its agent process is): Ray ends a driver that loses the head for a minute.
    assert driver == "False"
    status = json.loads((runs.get(run_id).path / rundir.STATUS).read_text())
    assert status["backend"] == "ray" and status["ray_actor"] == f"cifar-run-{run_id}" and status["ray_actor_id"]
    wait_for(lambda: runs.get(run_id).metrics(), what="the first metrics")
    # Reconcile asks Ray, not a pid here: never "ended" for want of a local process (a quick machine may
    # have finished the tiny run meanwhile, as its trainer says).
    assert [r.state for r in runs.list_runs()] in (["running"], ["finished"])
    assert runs.get(run_id).status["ray_node"]    # the address of the node Ray chose
    wait_for(lambda: runs.get(run_id).state == "finished", what="the run to finish")
    wait_for(lambda: not ray_backend._actor_exists(status), what="the actor to hand its CPU back")
    assert runs.list_runs()[0].state == "finished"


def test_a_run_no_node_can_take_waits_for_the_cluster_until_cancelled(cluster):
    run = runs.start(gpu_recipe(epochs=1), owner="a")   # the test cluster has no GPU
    assert run.state == "queued" and run.status["ray_gpus"] == 1
    assert ray_backend.waiting_sentence(run) == "Waiting for the cluster: it starts when a node has 1 free CPU and 1 GPU."
    runs.reconcile()
    assert runs.get(run.id).state == "queued"      # still waiting: Ray decides, and it has nowhere to put it
    runs.stop(run.id, owner="a")
    runs.reconcile()                               # takes its request out of the cluster's queue
    assert runs.get(run.id).status["ray_released"] is True
    assert not ray_backend._actor_exists(run.status)
    assert runs.get(run.id).state == "stopped"


def test_a_run_bigger_than_any_nodes_memory_is_refused_naming_a_batch_that_fits(cluster):
    """The test cluster's worker node offers 4 GB: Ray would keep a 6 GB trainer waiting for ever."""
    with pytest.raises(runs.RunError, match=r"^A batch of 4,096 pictures needs about \d+\.\d GB of memory to train "
                       r"this network, more than any machine of the cluster offers a trainer \(4\.0 GB\): choose a "
                       r"batch of at most ([\d,]+)\.$") as refused:
        runs.start(TrainConfig.from_preset("best", batch_size=4096, epochs=1), owner="a")
    assert refused.value.field == "batch_size" and runs.list_runs() == []
    fits = int(refused.value.args[0].rsplit(" ", 1)[1].rstrip(".").replace(",", ""))
    config = TrainConfig.from_preset("best", batch_size=fits, epochs=1)
    assert ray_backend.resources(config.to_dict())[2] <= ray_cluster.WORKER_MEMORY_MB
    assert ray_backend.refusal(config) is None


def test_a_waiting_run_says_what_it_waits_for():
    def said(**status):
        return ray_backend.waiting_sentence(SimpleNamespace(status=status))
    assert said(ray_cpus=2, ray_gpus=0, ray_memory_mb=6_450) == ("Waiting for the cluster: it starts when a node has "
                                                                "2 free CPUs and 6.3 GB of memory to spare.")
    assert said(ray_cpus=1, ray_gpus=1, ray_memory_mb=0) == ("Waiting for the cluster: it starts when a node has "
                                                            "1 free CPU and 1 GPU.")
    assert said(ray_cpus=1) == "Waiting for the cluster: it starts when a node has 1 free CPU."


def test_a_run_whose_actor_dies_is_marked_failed(cluster):
    run = runs.start(small(epochs=200), owner="a")
    wait_for(lambda: runs.get(run.id).metrics(), what="the first metrics")
    ray_backend.end(run)
    wait_for(lambda: runs.list_runs()[0].state == "failed", what="reconcile to notice")
    error = runs.get(run.id).status["error"]
    node = runs.get(run.id).status["ray_node"]       # its node, not a pid of some other machine's
    assert error.startswith(f"Its trainer on the cluster (node {node}) ended without finishing") and "\n" not in error


def test_an_agent_that_dies_or_hangs_is_replaced_and_the_server_lives_on(cluster, own_agent, monkeypatch):
    """Ray ends a driver that loses the cluster's head for a minute: the server's agent, not the server."""
    assert ray_backend._agent.call("nodes")
    ray_backend._agent.process.kill()
    assert ray_backend._agent.call("nodes")          # a new agent, at the next call
    import signal
    os.kill(ray_backend._agent.process.pid, signal.SIGSTOP)      # it hangs (a cluster that does not answer)
    monkeypatch.setattr(ray_backend, "CALL_TIMEOUT_S", 1)
    with pytest.raises(ray_backend.ClusterUnavailable, match="did not answer within"):
        ray_backend._agent.call("nodes")
    with pytest.raises(ray_backend.ClusterUnavailable):       # not asked again for a while: at once
        ray_backend._agent.call("nodes")
    own_agent.down_until = 0.0
    monkeypatch.setattr(ray_backend, "CALL_TIMEOUT_S", 60)
    assert ray_backend._agent.call("nodes")


def test_an_unreachable_cluster_fails_a_start_in_seconds_not_minutes(tiny_env, own_agent, monkeypatch):
    """ray.init retried a closed port for 14 minutes, under the runs lock every Start and Stop waits for."""
    import socket
    import time
    pytest.importorskip("ray", reason="Ray is not installed (requirements-cluster.txt)")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    began = time.monotonic()
    run = runs.start(small(epochs=1), owner="a")
    # Seconds, however busy the machine, where Ray itself retried for 820 s under the runs lock.
    assert run.state == "failed" and time.monotonic() - began < 60
    assert run.status["error"] == (f"The Ray cluster at 127.0.0.1:{port} cannot be reached (nothing answers "
                                   "there). The run was not started.")
    from cifar_core import ray_backend
    monkeypatch.setattr(ray_backend, "_probe", lambda address: pytest.fail("the cluster was asked again at once"))
    assert runs.start(small(epochs=1), owner="b").state == "failed"


def test_on_a_cluster_a_run_waits_for_anothers_turn_only_once_ray_has_not_placed_it_for_a_while():
    """Every Start anywhere made a queued run for the seconds Ray takes to start it, and stopped every
    cluster run past its 20-minute turn while nodes stood free."""
    import time
    from pathlib import Path
    for status, waits in [({"state": "queued"}, True),
                          ({"state": "queued", "backend": "ray", "submitted": time.time() - 5}, False),
                          ({"state": "queued", "backend": "ray", "submitted": time.time() - 600}, True)]:
        assert runs._waits(runs.Run("r", Path("r"), {}, status)) is waits, status


def test_a_run_the_cluster_lost_before_it_started_is_sent_again_once(tiny_env, monkeypatch):
    """A head restarted without its detached actors lost every queued run, each failed blaming the set-up."""
    run = runs.create(small(epochs=1), owner="a")
    rundir.update_status(run.path, backend="ray", ray_actor=f"cifar-run-{run.id}")
    monkeypatch.setattr(ray_backend, "_actor_exists", lambda status: False)
    sent = []
    for _ in range(2):
        ray_backend.dispatch([runs.get(run.id)], sent.append)
    assert [r.id for r in sent] == [run.id]                       # once again, then it fails
    status = runs.get(run.id).status
    assert status["state"] == "failed" and status["error"].startswith("The cluster lost this run twice")


def test_a_silent_cluster_run_has_its_actor_ended_as_a_hung_trainer_is(tiny_env, monkeypatch):
    """A hung trainer on a node stayed "running" for ever: Stop wrote a file nobody read, Delete refused."""
    run = runs.create(small(epochs=1), owner="a")
    rundir.update_status(run.path, state="running", backend="ray", ray_actor=f"cifar-run-{run.id}",
                         ray_node="10.0.0.7", started=rundir.now())
    monkeypatch.setenv("CIFAR_RUN_STALL_S", "1")
    monkeypatch.setattr(ray_backend, "alive", lambda status: True)         # the cluster says it is there
    ended = []
    monkeypatch.setattr(ray_backend, "end", lambda r: ended.append(r.id))
    monkeypatch.setattr(runs, "_dispatch", lambda: None)
    runs.reconcile()
    import time
    time.sleep(1.2)
    assert runs.reconcile() == [run.id] and ended == [run.id]
    assert "made no progress for 1 seconds" in runs.get(run.id).status["error"]


def test_the_agents_replies_are_each_its_own_request(tiny_env, monkeypatch):
    """A line out of step (any output that is no reply) left every later call with the previous call's
    answer: `exists` given a node list, `submit` storing True as an actor id."""
    import subprocess
    replies = ("import json, sys\n"
               "print('a line that is no reply', flush=True) if {noisy} else None\n"
               "for line in sys.stdin:\n"
               "    number, op, args = json.loads(line)\n"
               "    print(json.dumps([number, 'ok', op]), flush=True)\n")

    def agent(noisy: bool):
        def start(self):
            self.process = subprocess.Popen([sys.executable, "-c", replies.format(noisy=noisy)], text=True,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        monkeypatch.setattr(ray_backend._Agent, "_start", start)
    monkeypatch.setattr(ray_backend, "_ray_installed", lambda: True)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fresh = ray_backend._Agent()
    agent(noisy=True)
    with pytest.raises(ray_backend.ClusterUnavailable, match="the process that talks to it ended"):
        fresh.call("nodes")                          # out of step twice: never an answer to another request
    fresh.down_until = 0.0
    agent(noisy=False)
    assert [fresh.call(op) for op in ("nodes", "exists", "nodes")] == ["nodes", "exists", "nodes"]
    fresh.process.kill()


def test_the_last_waiting_run_cancelled_is_taken_out_of_the_clusters_queue(tiny_env, monkeypatch):
    """Its request was let go only by a round that some other queued or running run set off: cancelled
    as the class's last, each stayed in Ray's queue, to start a Ray worker for nothing later."""
    monkeypatch.setenv("CIFAR_RUNS_BACKEND", "ray")
    ended = []
    monkeypatch.setattr(ray_backend, "end", lambda run: ended.append(run.id) or True)
    monkeypatch.setattr(ray_backend._agent, "call", lambda what, *args: [] if what == "nodes" else "actor-id")
    run = runs.start(small(epochs=1), owner="a")
    assert run.status.get("backend") == "ray" and run.state == "queued"
    runs.stop(run.id, owner="a")                                   # nothing else queued or running now
    watcher = runs.watch(interval=0.05)
    try:
        wait_for(lambda: runs.get(run.id).status.get("ray_released"), timeout=30, what="its request let go")
    finally:
        watcher.stop()
    assert ended == [run.id]
