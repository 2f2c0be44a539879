"""The run lifecycle on each backend: the local subprocess queue (the default) and a Ray cluster.

Each test runs against both. The Ray one starts a real local cluster (a head
and a worker node as separate processes, see `ray_cluster`) and is skipped
only where Ray is not installed. Where the backends differ by design (who
decides when a waiting run starts), the test says what each one promises.
"""
import os

import pytest

import ray_cluster
from cifar_core import rundir, runs
from test_runs import behind_the_server_for_the_cpu, ended_first_when_memory_runs_out, small, wait_for


@pytest.fixture(params=["local", "ray"])
def backend(request, tiny_env, monkeypatch):
    monkeypatch.delenv("CIFAR_RUNS_BACKEND", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if request.param == "ray":
        pytest.importorskip("ray", reason="Ray is not installed (requirements-cluster.txt)")
        monkeypatch.setenv("RAY_ADDRESS", ray_cluster.shared().address)
        monkeypatch.setenv("CIFAR_RAY_CPUS_PER_RUN", str(ray_cluster.WORKER_CPUS))   # one run fills the worker
    yield request.param
    ray_cluster.kill_trainers(tiny_env / "runs")


def waiting(run_id: str, backend: str) -> bool:
    """A run that has not started yet: behind the local queue, or submitted and waiting for the cluster."""
    run = runs.get(run_id)
    if backend == "ray":
        return run.state == "queued" and run.status.get("backend") == "ray" and bool(run.status.get("ray_actor"))
    return run.state == "queued" and runs.queue_position(run) is not None


def test_a_run_trains_stops_on_stop_and_the_person_limit_holds(backend):
    first = runs.start(small(epochs=200, name="long"), owner="alice")
    second = runs.start(small(epochs=200), owner="alice")
    assert waiting(second.id, backend)
    with pytest.raises(runs.RunError, match="You already have 2 runs"):
        runs.start(small(epochs=1), owner="alice")
    assert runs.stop(second.id, owner="alice").state == "stopped"     # cancelled while it waited
    wait_for(lambda: any(r["kind"] == "epoch" for r in runs.get(first.id).metrics()), what="an epoch record")
    assert runs.get(first.id).state == "running"
    runs.stop(first.id, owner="alice")
    wait_for(lambda: runs.get(first.id).state == "stopped", what="the run to stop")
    assert runs.get(first.id).model_path is not None
    assert "Traceback" not in (first.path / rundir.LOG).read_text()
    runs.reconcile()    # a cancelled run is never started afterwards, by the queue or by the cluster
    assert runs.get(second.id).state == "stopped" and not (second.path / rundir.METRICS).exists()


def test_a_waiting_run_starts_after_the_first_and_a_finished_run_continues(backend):
    first = runs.start(small(epochs=1, name="base"), owner="a")
    second = runs.start(small(epochs=1), owner="b")
    assert waiting(second.id, backend)
    wait_for(lambda: runs.get(second.id).state == "finished", timeout=400, what="both runs to finish")
    wait_for(lambda: runs.get(first.id).state == "finished", what="the first run to finish")
    # One at a time (the queue's limit, or the worker's one CPU): whichever started second began after the
    # other ended. The local queue keeps the order; Ray's scheduler may not, and does not have to.
    earlier, later = sorted((runs.get(first.id).status, runs.get(second.id).status), key=lambda s: s["started"])
    assert earlier["ended"] <= later["started"]
    if backend == "local":
        assert runs.get(first.id).status["started"] == earlier["started"]
    more = runs.continue_run(first.id, 1, owner="a")
    wait_for(lambda: runs.get(more.id).state == "finished", what="the continued run")
    assert len([m for m in runs.get(more.id).metrics() if m["kind"] == "epoch"]) == 1


def test_a_killed_trainer_is_marked_failed_with_one_sentence(backend):
    run = runs.start(small(epochs=200), owner="a")
    wait_for(lambda: runs.get(run.id).metrics(), what="the first metrics")
    assert ended_first_when_memory_runs_out(runs.get(run.id).status["pid"])    # as the kernel does when memory runs out
    assert behind_the_server_for_the_cpu(runs.get(run.id).status["pid"])
    os.kill(runs.get(run.id).status["pid"], 9)
    wait_for(lambda: runs.list_runs()[0].state == "failed", what="the death to be noticed")
    error = runs.get(run.id).status["error"]
    assert error.endswith(".") and "\n" not in error and "Traceback" not in error
    assert "before finishing" in error or "without finishing" in error
