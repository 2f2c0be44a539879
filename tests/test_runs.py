import dataclasses
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cifar_core import data, evaluation, rundir, runs, trainer_memory
from cifar_core.config import TrainConfig


def wait_for(condition, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ended_first_when_memory_runs_out(pid: int) -> bool:
    """Whether Linux's out-of-memory killer would pick this trainer before the server (or this test):
    a trainer's memory grows with the batch a visitor picks, the server holds every visitor's session."""
    adjusted = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
    return adjusted == 1000 and int(Path(f"/proc/{pid}/oom_score").read_text()) > int(
        Path("/proc/self/oom_score").read_text())


def behind_the_server_for_the_cpu(pid: int) -> bool:
    """Whether every thread of this trainer (TensorFlow's too) has a lower CPU priority than this test,
    which stands for the server: a class's pages are answered before a trainer's next step."""
    def nice(thread: Path) -> int | None:
        try:
            return int((thread / "stat").read_text().rsplit(")", 1)[1].split()[16])
        except (OSError, IndexError):     # a thread that ended meanwhile
            return None
    found = [n for n in map(nice, Path(f"/proc/{pid}/task").iterdir()) if n is not None]
    threads_behind = len(found) > 2 and min(found) >= 10 > os.getpriority(os.PRIO_PROCESS, 0)  # Ray's workers: 15
    return threads_behind and session_behind(pid)


def session_behind(pid: int) -> bool:
    """Whether a trainer in a session of its own has its session's scheduling group behind too: where the
    kernel groups by session, nice ranks threads only within a group, and the groups share the CPU evenly."""
    group = Path(f"/proc/{pid}/autogroup")
    if os.getsid(pid) != pid or not group.exists():
        return True
    return int(group.read_text().split("nice")[1]) >= 10


def test_a_session_put_behind_while_another_was_waits_its_turn(monkeypatch):
    """Without CAP_SYS_ADMIN the kernel takes one autogroup change a tenth of a second machine-wide and
    refuses the rest (EAGAIN): of four trainers started together, three kept their share."""
    from cifar_core import cpu_priority

    class Group:
        value, refusals = 0, 2

        def read_text(self):
            return f"/autogroup-7 nice {self.value}\n"

        def write_text(self, text):
            if self.refusals:
                self.refusals -= 1
                raise BlockingIOError(11, "Resource temporarily unavailable")
            self.value = int(text)

    monkeypatch.setattr(cpu_priority.time, "sleep", lambda seconds: None)
    group = Group()
    cpu_priority._session_behind(10, group)
    assert group.value == 10 and group.refusals == 0
    cpu_priority._session_behind(5, group)              # never raised again
    assert group.value == 10


def test_a_trainer_leading_its_own_session_puts_the_session_behind_too():
    """Measured on a kernel with autogroup: at nice 10 in a session of its own, a busy trainer still took
    half of a core a busy server wanted; with its session's group at 10 too, a tenth."""
    code = ("from cifar_core import cpu_priority; cpu_priority.behind_the_server(); print('behind', flush=True); "
            "import time; time.sleep(60)")
    # This test's own session stands for the person's shell and what else they run. Its file is empty
    # where the session is the machine's first (a container's): that one is no autogroup of its own.
    terminal = Path("/proc/self/autogroup").read_text() if Path("/proc/self/autogroup").exists() else None
    own = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    shared = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)   # from a terminal
    try:
        assert own.stdout.readline() == shared.stdout.readline() == "behind\n"
        if terminal is not None:
            assert int(Path(f"/proc/{own.pid}/autogroup").read_text().split("nice")[1]) == 10
            # The terminal's session is left as it was.
            assert Path(f"/proc/{shared.pid}/autogroup").read_text() == Path("/proc/self/autogroup").read_text()
            assert Path("/proc/self/autogroup").read_text() == terminal
    finally:
        own.kill(), shared.kill(), own.wait(), shared.wait()


def small(**changes):
    return TrainConfig(arch="airbench_tiny", batch_size=8, precision="float32", **changes)


def test_a_started_run_really_trains_writes_metrics_and_stops_on_stop(tiny_env):
    run = runs.start(small(epochs=200, name="long"), owner="alice")
    assert run.state == "running" and run.status["pid"]
    wait_for(lambda: any(r["kind"] == "epoch" for r in run.metrics()), what="an epoch record")
    assert runs.get(run.id).status["state"] == "running"
    runs.stop(run.id, owner="alice")
    wait_for(lambda: runs.get(run.id).state == "stopped", what="the run to stop")
    assert runs.get(run.id).model_path is not None
    assert "Traceback" not in (run.path / rundir.LOG).read_text()


@pytest.mark.parametrize("idle_s", ["0", "3"], ids=["a process per run", "a warm trainer"])
def test_relative_path_settings_name_the_same_files_for_the_trainer(tiny_env, tiny_archive, monkeypatch, idle_s):
    """A trainer runs from the package's folder: `CIFAR10_DATA=cifar.tar.gz` set where the server was
    started named a file that was not there (or another one) for every run."""
    started_in = tiny_env / "class"
    started_in.mkdir()
    (started_in / "cifar.tar.gz").write_bytes(tiny_archive.read_bytes())
    monkeypatch.chdir(started_in)
    monkeypatch.setenv("CIFAR10_DATA", "cifar.tar.gz")
    monkeypatch.setenv("KERAS_HOME", "keras")
    monkeypatch.setenv("CIFAR_RUNS_DIR", "runs")
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", idle_s)
    run = runs.start(small(epochs=1), owner="alice")
    ended = wait_for(lambda: (r := runs.get(run.id)).state in ("finished", "failed", "stopped") and r,
                     what="the run to end")
    assert ended.state == "finished", ended.status.get("error")
    assert run.path.is_relative_to(started_in / "runs")


def test_a_finished_trainer_starts_the_next_queued_run_in_order(tiny_env):
    first = runs.start(small(epochs=1), owner="a")
    second = runs.start(small(epochs=1), owner="b")
    third = runs.start(small(epochs=1), owner="c")
    assert [first.state, second.state, third.state] == ["running", "queued", "queued"]
    assert [runs.queue_position(second), runs.queue_position(third)] == [1, 2]
    wait_for(lambda: runs.get(third.id).state == "finished", timeout=300, what="all three runs to finish")
    started = [runs.get(r.id).status["started"] for r in (first, second, third)]
    assert started == sorted(started)


def test_runs_created_within_one_millisecond_keep_their_order(tiny_env, monkeypatch):
    # Creating a run takes about a millisecond here, less on a faster disk: a script, or a class pressing
    # Start together, makes several within one. The queue must still be first come, first served, and read
    # the same way every time. A clock that moves 0.1 ms a reading stands in for that fast disk.
    start = time.time()
    readings = iter(range(10**6))
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: start + next(readings) * 1e-4)
        made = [runs.create(small(epochs=1)).id for _ in range(40)]
    assert [r.id for r in runs._all()] == made
    assert [r.id for r in runs.list_runs()] == made[::-1]


def test_thirty_simultaneous_starts_respect_the_limit_and_lose_nothing(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "2")
    # Memory for both, whatever the other test worker holds meanwhile: the limit is what is tested here.
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 4 * trainer_memory.estimate_mb(small()))
    monkeypatch.setenv("CIFAR_MAX_QUEUED_RUNS", "100")
    with ThreadPoolExecutor(30) as pool:
        started = list(pool.map(lambda i: runs.start(small(epochs=100), owner=f"s{i}"), range(30)))
    states = [runs.get(r.id).state for r in started]
    assert states.count("running") == 2 and states.count("queued") == 28
    assert len(runs.list_runs()) == 30
    for run in sorted(started, key=lambda r: r.state != "queued"):   # cancel the queue first
        runs.stop(run.id, admin=True)
    wait_for(lambda: all(r.state == "stopped" for r in runs.list_runs()), what="everything to stop")


def test_starts_from_separate_processes_share_the_limit(tiny_env):
    code = ("from cifar_core import runs; from cifar_core.config import TrainConfig; "
            "runs.start(TrainConfig(arch='airbench_tiny', epochs=100, precision='float32'))")
    env = {**os.environ, "PYTHONPATH": str(runs.PACKAGE_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    states = [r.state for r in runs.list_runs()]
    assert states.count("running") <= 1 and len(states) == 4
    for run in sorted(runs.list_runs(), key=lambda r: r.state != "queued"):
        runs.stop(run.id, admin=True)
    wait_for(lambda: all(r.state == "stopped" for r in runs.list_runs()), what="everything to stop")


def test_a_killed_trainer_is_marked_failed_with_the_reason(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", "0")     # a process of its own (warm workers: test_runs_backends)
    run = runs.start(small(epochs=200), owner="a")
    wait_for(lambda: run.metrics(), what="the first metrics")
    assert runs.get(run.id).status["trainer"] == "process"
    assert ended_first_when_memory_runs_out(run.status["pid"])
    assert behind_the_server_for_the_cpu(run.status["pid"])
    os.kill(run.status["pid"], 9)
    wait_for(lambda: runs.list_runs()[0].state == "failed", what="reconcile to notice")
    assert "ended without finishing" in runs.get(run.id).status["error"]


def test_the_queue_limit_refuses_with_a_sentence(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_MAX_QUEUED_RUNS", "1")
    first = runs.start(small(epochs=100))
    second = runs.start(small(epochs=1))
    with pytest.raises(runs.RunError, match=r"^1 run is already waiting, the most this server queues: please try "
                                            r"again when one has started\.$"):
        runs.start(small(epochs=1))
    runs.stop(second.id)
    runs.stop(first.id)
    wait_for(lambda: runs.get(first.id).state == "stopped", what="the run to stop")


def test_only_the_owner_or_a_teacher_may_stop_or_delete(tiny_env):
    run = runs.create(small(epochs=1), owner="alice")
    with pytest.raises(runs.RunError, match="Only the person who started"):
        runs.stop(run.id, owner="bob")
    with pytest.raises(runs.RunError, match="Only the person who started"):
        runs.delete(run.id, owner="bob")
    assert runs.stop(run.id, owner="bob", admin=True).state == "stopped"
    runs.delete(run.id, owner="alice")
    with pytest.raises(runs.RunError, match="There is no run"):
        runs.get(run.id)


def test_a_teacher_stopping_someone_elses_run_says_so_and_a_second_press_keeps_why(tiny_env):
    """The student read "Stopped" as their own doing; a second press of Stop wiped the reason given."""
    import os
    waiting = runs.create(small(epochs=1), owner="alice")
    assert runs.stop(waiting.id, owner="teacher", admin=True).status["error"] == \
        "Cancelled by the teacher before it started."
    mine = runs.create(small(epochs=1), owner="alice")
    assert runs.stop(mine.id, owner="alice").status["error"] == "Cancelled before it started."
    running = runs.create(small(epochs=50), owner="alice")
    rundir.update_status(running.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()))
    runs.stop(running.id, owner="teacher", admin=True)
    assert rundir.stop_reason(running.path) == "Stopped by the teacher."
    runs.stop(running.id, owner="alice")                    # pressed again, by its owner
    assert rundir.stop_reason(running.path) == "Stopped by the teacher."


def test_old_runs_are_pruned_beyond_the_keep_limit(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_KEEP_RUNS", "2")
    old = []
    for _ in range(3):
        run = runs.create(small(epochs=1))
        rundir.update_status(run.path, state="finished")
        old.append(run.id)
        time.sleep(0.01)
    fresh = runs.start(small(epochs=1))
    remaining = {r.id for r in runs.list_runs()}
    assert old[0] not in remaining and {old[1], old[2], fresh.id} <= remaining
    wait_for(lambda: runs.get(fresh.id).state == "finished", what="the run to finish")


def test_an_invalid_config_never_creates_a_run(tiny_env):
    with pytest.raises(ValueError, match="Learning rate"):
        runs.start(small(epochs=1, learning_rate=-1.0))
    assert runs.list_runs() == []


def test_ids_from_outside_cannot_escape_the_runs_directory(tiny_env):
    for bad in ("../etc", "", ".lock", "a/b"):
        with pytest.raises(runs.RunError):
            runs.get(bad)


def test_a_finished_run_can_be_continued_from_its_checkpoint(tiny_env):
    first = runs.start(small(epochs=1, name="base"), owner="alice")
    wait_for(lambda: runs.get(first.id).state == "finished", what="the first run")
    more = runs.continue_run(first.id, 2, owner="alice")
    assert more.name == "base (continued)" and more.config["epochs"] == 2
    # It goes on at the rate its parent's schedule ended at, not back up at the peak.
    parent = runs.get(first.id).config
    assert more.config["learning_rate"] == pytest.approx(parent["learning_rate"] * parent["final_lr"])
    assert more.config["initial_model"].startswith(str(more.path))   # its own copy of the checkpoint
    wait_for(lambda: runs.get(more.id).state == "finished", what="the continued run")
    assert len([m for m in runs.get(more.id).metrics() if m["kind"] == "epoch"]) == 2
    assert not Path(more.config["initial_model"]).exists(), "the copy it started from is let go once loaded"
    queued = runs.create(small(epochs=1))
    with pytest.raises(runs.RunError, match="Only a run that has ended with a saved model"):
        runs.continue_run(queued.id, 2)
    # A run that failed after saving a model (its trainer killed for memory, a cluster node gone) goes on
    # from that model: the failure says its last checkpoint is kept.
    rundir.update_status(first.path, state="failed", error="The trainer was killed.")
    assert runs.continue_run(first.id, 1, owner="alice").config["epochs"] == 1


def test_a_continued_run_peaks_at_the_rate_its_parent_ended_at():
    best = TrainConfig.from_preset("airbench94")
    assert runs.going_on(best) == {"learning_rate": pytest.approx(1.5 * 0.07)}
    assert runs.going_on(dataclasses.replace(best, final_lr=0.0)) == {"learning_rate": pytest.approx(0.15)}
    assert runs.going_on(TrainConfig.from_preset("best")) == {"learning_rate": pytest.approx(0.024)}   # Muon's
    assert runs.going_on(TrainConfig.from_preset("tutorial")) == {}      # a constant rate goes on as it was


def test_progress_and_summary_for_the_board(tiny_env):
    run = runs.start(small(epochs=2, name="board"), owner="a")
    wait_for(lambda: runs.get(run.id).state == "finished", what="the run")
    run = runs.get(run.id)
    summary = run.summary()
    assert summary["name"] == "board" and summary["epochs"] == "2 / 2" and summary["state"] == "finished"
    assert summary["test accuracy"] == evaluation.percent(run.status["test_accuracy"])   # the final model's, mirrored
    assert run.progress()["fraction"] == 1.0
    assert set(run.status["per_class_accuracy"]) == set(data.CLASS_NAMES)

    from cifar_core import report
    page = report.html(run)
    assert "<h1>board</h1>" in page and "Test accuracy per class" in page and "airbench_tiny" in page


def test_a_processs_cpu_is_read_only_where_it_is_the_process_that_started_then():
    """The stall check counts a trainer's CPU as work: a pid reused by another busy process must not keep a
    dead run 'working'. One read of /proc/<pid>/stat gives both its CPU and its start."""
    me, started = os.getpid(), rundir.process_start(os.getpid())
    assert rundir.process_cpu_s(me, started) > 0
    assert rundir.process_cpu_s(me) == pytest.approx(rundir.process_cpu_s(me, started), abs=0.1)
    assert rundir.process_cpu_s(me, started + 1) is None and rundir.process_cpu_s(None) is None


def test_a_service_log_past_its_size_starts_again_with_the_last_one_kept(tmp_path, monkeypatch):
    """The workers' and the Ray agent's logs were appended to for as long as the server ran: a few lines a
    run, months of classes, and no end."""
    monkeypatch.setattr(rundir, "LOG_MOST_BYTES", 100)
    log = tmp_path / "log.txt"
    for line in range(12):
        with rundir.appended_log(log) as file:
            file.write(f"line {line:02d} of a worker's output\n".encode())
    kept = log.with_name("log.txt.1")
    assert log.stat().st_size <= 100 + 30 and kept.stat().st_size <= 100 + 30     # a line past the size at most
    assert log.read_text().endswith("line 11 of a worker's output\n")
    assert kept.read_text().endswith(f"line {11 - len(log.read_text().splitlines()):02d} of a worker's output\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt", "log.txt.1"]
