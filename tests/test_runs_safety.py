"""A shared server's runs: fair shares, damaged files, dead trainers, queued runs that must start."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifar_core import rundir, runs
from cifar_core.process_memory import memory_mb
from cifar_core.config import TrainConfig
from conftest import fill
from test_runs import small, wait_for


@pytest.fixture
def no_trainers(monkeypatch):
    """Launching marks a run running under this test's own (live) process instead of starting TensorFlow:
    these tests are about the bookkeeping, not the training."""
    def launch(run):
        rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()),
                             started=rundir.now())
    monkeypatch.setattr(runs, "_launch", launch)


def test_one_person_cannot_fill_the_queue(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_MAX_RUNS_PER_PERSON", "2")
    runs.start(small(epochs=1), owner="eve")
    runs.start(small(epochs=1), owner="eve")
    with pytest.raises(runs.RunError, match="You already have 2 runs"):
        runs.start(small(epochs=1), owner="eve")
    assert runs.start(small(epochs=1), owner="bob").state == "queued"     # others still get a place
    for _ in range(3):
        assert runs.start(small(epochs=1), owner="teacher", admin=True)   # a teacher is not limited
    assert len([r for r in runs.list_runs() if r.status.get("owner") == "eve"]) == 2


def test_a_persons_second_run_waits_behind_everyone_elses_first(tiny_env, monkeypatch, no_trainers):
    """Eve pressed Start twice before the class did: her second run was next, and with a turn of 20 minutes
    each, the class waited 40 for one trainer."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "1")
    first, second = runs.start(small(epochs=1), owner="eve"), runs.start(small(epochs=1), owner="eve")
    bobs = runs.start(small(epochs=1), owner="bob")
    assert [runs.get(r.id).state for r in (first, second, bobs)] == ["running", "queued", "queued"]
    assert [runs.queue_position(bobs), runs.queue_position(second)] == [1, 2]
    rundir.update_status(first.path, state="stopped", ended=rundir.now())      # her turn is over
    runs.dispatch()
    assert [runs.get(bobs.id).state, runs.get(second.id).state] == ["running", "queued"]


def test_a_stopped_run_gives_its_place_back(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_MAX_RUNS_PER_PERSON", "1")
    first = runs.start(small(epochs=1), owner="eve")
    runs.stop(first.id, owner="eve")
    rundir.update_status(first.path, state="stopped")
    assert runs.start(small(epochs=1), owner="eve")


def test_pruning_never_deletes_another_persons_runs(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_KEEP_RUNS", "2")
    bobs = []
    for _ in range(3):
        run = runs.create(small(epochs=1), owner="bob")
        rundir.update_status(run.path, state="finished")
        bobs.append(run.id)
    for _ in range(51):                   # the Start+Stop storm that used to delete everybody's runs
        run = runs.start(small(epochs=1), owner="eve")
        rundir.update_status(run.path, state="stopped")
    left = runs.list_runs()
    assert {r.id for r in left} >= set(bobs)
    assert len([r for r in left if r.status.get("owner") == "eve"]) <= 3


def test_a_long_run_stops_after_its_turn_only_while_someone_else_waits(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_RUN_TURN_MINUTES", "20")
    long = runs.start(small(epochs=200, name="long"), owner="eve")
    mine_too = runs.start(small(epochs=1), owner="eve")          # her own second run waits: no reason to stop
    assert (long.state, mine_too.state) == ("running", "queued")
    rundir.update_status(long.path, started=rundir.now() - 21 * 60)
    runs.reconcile()
    assert not rundir.stop_requested(long.path)
    bob = runs.start(small(epochs=1), owner="bob")                 # someone else waits
    rundir.update_status(long.path, started=rundir.now() - 19 * 60)   # within its turn
    runs.reconcile()
    assert not rundir.stop_requested(long.path)
    rundir.update_status(long.path, started=rundir.now() - 21 * 60)   # past it, but 50 s of training: it
    rundir.append_metric(long.path, {"kind": "batch", "epoch": 1, "step": 5, "elapsed_s": 50.0,     # would
                                     "loss": 2.0, "accuracy": 0.1})                                   # keep nothing
    runs.reconcile()
    assert not rundir.stop_requested(long.path)
    rundir.append_metric(long.path, {"kind": "batch", "epoch": 1, "step": 6, "elapsed_s": 61.0,      # still in its
                                     "loss": 2.0, "accuracy": 0.1})                                    # first epoch:
    runs.reconcile()                                                   # stopped all the same (it keeps it)
    assert "turn of 20 minutes" in rundir.stop_reason(long.path)
    assert runs.get(bob.id).state == "queued"


def test_a_teachers_long_run_is_not_stopped_for_others(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_RUN_TURN_MINUTES", "20")
    long = runs.start(small(epochs=200), owner="teacher", admin=True)
    (long.path / rundir.MODEL).write_bytes(b"its first epoch's checkpoint")
    rundir.update_status(long.path, started=rundir.now() - 60 * 60)
    runs.start(small(epochs=1), owner="bob")
    runs.reconcile()
    assert not rundir.stop_requested(long.path)


def test_a_busy_or_full_runs_folder_is_a_sentence_and_leaves_no_half_made_run(tiny_env, monkeypatch, no_trainers):
    import filelock

    class Busy:
        def __enter__(self):
            raise filelock.Timeout(str(runs.runs_dir() / ".lock"))

        def __exit__(self, *exc):
            return False
    real_lock = runs._lock
    monkeypatch.setattr(runs, "_lock", Busy)
    with pytest.raises(runs.RunError, match="busy with many people's runs"):
        runs.start(small(epochs=1), owner="eve")
    monkeypatch.setattr(runs, "_lock", real_lock)
    # The model to go on from vanishes between the check and the copy: one sentence, and no folder left.
    def folders():
        return {p.name for p in runs.runs_dir().iterdir() if not p.name.startswith(".")}
    before = folders()
    with pytest.raises(runs.RunError, match="is gone"):
        runs.start(small(epochs=1, initial_model=str(runs.runs_dir() / "deleted" / "model.keras")), owner="eve")
    assert folders() == before

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(rundir, "atomic_write_bytes", full)
    with pytest.raises(runs.RunError, match=r"could not be changed \(No space left on device\)"):
        runs.start(small(epochs=1), owner="eve")
    assert folders() == before


def test_a_write_that_fills_the_disk_leaves_the_old_file_and_nothing_else(small_disk):
    status = small_disk / "status.json"
    rundir.write_json(status, {"state": "running"})
    fill(small_disk, leave=8 << 10)
    with pytest.raises(OSError):
        rundir.atomic_write_bytes(status, b"x" * (64 << 10))
    # A half-written copy left behind would take the space the next small write needs, one more each retry.
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "status.json"]
    assert rundir.read_json(status) == {"state": "running"}
    rundir.write_json(status, {"state": "failed"})
    assert rundir.read_json(status) == {"state": "failed"}


def test_a_run_that_fills_the_disk_fails_in_a_sentence_and_leaves_no_partial_model(tiny_env, small_disk, monkeypatch):
    """Its checkpoint does not fit: the half-written model is removed, so its failure still fits on the disk
    and says why; before, the trainer raised instead (and a warm worker died with it)."""
    from cifar_core import training
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(small_disk / "runs"))
    config = small(epochs=1)
    run = runs.create(config)
    fill(small_disk, leave=150 << 10)        # room for metrics and status, not for the model (400 KB)
    assert training.train(config, run.path) == "failed"
    status = rundir.read_status(run.path)
    assert status["state"] == "failed" and status["error"].startswith("The server's disk is full")
    assert not [p.name for p in run.path.iterdir() if p.name.startswith(".")]


def ended_runs(owners, trained: bool = False) -> list[str]:
    """An ended run for each of `owners`, oldest first: finished with a model, or cancelled before it started."""
    ids = []
    for owner in owners:
        run = runs.create(small(epochs=1), owner=owner)
        if trained:
            (run.path / rundir.MODEL).write_bytes(b"a model")
            rundir.update_status(run.path, state="finished")
        else:
            rundir.update_status(run.path, state="stopped", error="Cancelled before it started.")
        ids.append(run.id)
        time.sleep(0.01)
    return ids


def test_the_server_keeps_so_many_ended_runs_in_all_whoever_started_them(tiny_env, monkeypatch, no_trainers):
    monkeypatch.setenv("CIFAR_KEEP_RUNS_IN_ALL", "3")
    ended = ended_runs("abcd")                 # four people, one ended run each: new cookies are free
    runs.start(small(epochs=1), owner="e")
    left = {r.id for r in runs.list_runs()}
    assert ended[0] not in left and set(ended[1:]) <= left


def test_runs_without_a_model_make_room_before_any_trained_model_does(tiny_env, monkeypatch, no_trainers):
    """Starting and cancelling runs with new cookies must not push the class's trained models out."""
    monkeypatch.setenv("CIFAR_KEEP_RUNS_IN_ALL", "3")
    trained = ended_runs("ab", trained=True)    # two students' finished runs, the oldest on the server
    ended_runs(("x1", "x2", "x3"))             # then runs cancelled from three new cookies
    runs.start(small(epochs=1), owner="y")
    left = {r.id for r in runs.list_runs()}
    assert set(trained) <= left and len([r for r in runs.list_runs() if r.state not in rundir.ACTIVE]) == 3


def test_so_many_runs_without_a_model_are_kept_however_many_are_allowed_in_all(tiny_env, monkeypatch, no_trainers):
    """Cancelled runs keep only their reason: a thousand of them from new cookies kept the watcher and every
    board busy. The newest few stay, and no trained model goes for them."""
    monkeypatch.setattr(runs, "KEEP_WITHOUT_MODEL", 2)
    [trained] = ended_runs(["student"], trained=True)
    cancelled = ended_runs(("x1", "x2", "x3", "x4"))
    runs.start(small(epochs=1), owner="y")
    left = {r.id for r in runs.list_runs()}
    assert trained in left and set(cancelled[2:]) <= left and not set(cancelled[:2]) & left


def test_a_cancelled_run_lets_go_of_the_model_it_would_have_gone_on_from(tiny_env, no_trainers, tmp_path):
    parent = tmp_path / "parent.keras"
    parent.write_bytes(b"a model")
    runs.start(small(epochs=1), owner="a")                     # the trainer is busy: the next one waits
    waiting = runs.start(small(epochs=1, initial_model=str(parent)), owner="b")
    assert waiting.state == "queued" and (waiting.path / "initial.keras").exists()
    runs.stop(waiting.id, owner="b")
    assert not (waiting.path / "initial.keras").exists()


def test_what_a_trainer_alone_writes_goes_when_it_never_comes_back(tiny_env, no_trainers, tmp_path):
    """A continued run's copy of its starting model and a checkpoint being saved are the trainer's own to
    let go of: one killed outright (out of memory) left them in the run's folder for as long as the run was
    kept, up to 15 MB each, and a teacher's Clear left a waiting run's copy. Its last checkpoint stays."""
    parent = tmp_path / "parent.keras"
    parent.write_bytes(b"a model")
    runs.start(small(epochs=1), owner="a")                     # the trainer is busy: the next ones wait
    killed = runs.start(small(epochs=1, initial_model=str(parent)), owner="b")
    waiting = runs.start(small(epochs=1, initial_model=str(parent)), owner="c")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    rundir.update_status(killed.path, state="running", pid=gone.pid, pid_started=1)
    for name in (rundir.SAVING_MODEL, rundir.MODEL):
        (killed.path / name).write_bytes(b"half a model" if name == rundir.SAVING_MODEL else b"a checkpoint")
    assert (killed.path / rundir.STARTING_COPY).exists() and (waiting.path / rundir.STARTING_COPY).exists()
    runs.reconcile()
    assert runs.get(killed.id).state == "failed"
    assert sorted(p.name for p in killed.path.iterdir() if "keras" in p.name) == [rundir.MODEL]
    runs.clear(admin=True)
    assert runs.get(waiting.id).state == "stopped" and not (waiting.path / rundir.STARTING_COPY).exists()


def test_a_run_stopped_while_it_starts_lets_go_of_its_starting_copy(tiny_env, tmp_path):
    from cifar_core import training
    parent = tmp_path / "parent.keras"
    parent.write_bytes(b"a model")
    run = runs.create(small(epochs=1, initial_model=str(parent)), owner="a")
    rundir.request_stop(run.path)
    assert training.train(TrainConfig.from_dict(run.config), run.path) == "stopped"
    assert not (run.path / rundir.STARTING_COPY).exists()
    # A person's own model that happens to be in the run's folder (the command line's --initial-model) is theirs.
    own = tmp_path / "mine" / "best.keras"
    own.parent.mkdir()
    own.write_bytes(b"a model")
    training._let_go_of_starting_copy(small(epochs=1, initial_model=str(own)), own.parent)
    assert own.exists()


def test_a_runs_folder_named_from_where_the_server_started_is_found_by_every_trainer(tmp_path, monkeypatch):
    """CIFAR_RUNS_DIR is "runs" unless set: relative to wherever the server was started. A trainer runs from
    the package's folder, so a continued run's own copy of its starting model is written down whole: a
    relative one was looked for in the wrong folder, and, compared with the trainer's absolute run folder,
    never let go (up to 15 MB a continued run)."""
    from cifar_core import settings, training
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFAR_RUNS_DIR", "runs")
    assert settings.get().runs_dir == tmp_path / "runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", " ")          # set but empty is unset, not the folder it started in
    assert settings.get().runs_dir == tmp_path / "runs"
    monkeypatch.setenv("CIFAR_RUNS_DIR", "runs")
    parent = tmp_path / "parent.keras"
    parent.write_bytes(b"a model")
    run = runs.create(small(epochs=1, initial_model=str(parent)), owner="a")
    starting = Path(run.config["initial_model"])
    assert starting.is_absolute() and starting == tmp_path / "runs" / run.id / "initial.keras" and starting.exists()
    monkeypatch.chdir(runs.PACKAGE_ROOT)                 # where a trainer runs
    training._let_go_of_starting_copy(TrainConfig.from_dict(run.config), run.path.resolve())
    assert not starting.exists()


def test_a_queued_continued_run_finds_its_starting_model_in_a_moved_runs_folder(tmp_path, monkeypatch):
    """config.json keeps the path its starting copy had when the run was made: a runs folder moved (or
    mounted elsewhere by another machine that shares it) has it somewhere else, and the run went on from
    nothing it could find. It goes on from its own copy, wherever its folder is now."""
    import shutil
    from cifar_core import training
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "before"))
    parent = tmp_path / "parent.keras"
    parent.write_bytes(b"a model")
    run = runs.create(small(epochs=1, initial_model=str(parent)), owner="a")
    moved = tmp_path / "after" / run.id
    shutil.move(str(run.path), moved)
    config = training._own_starting_copy(TrainConfig.from_dict(run.config), moved)
    assert config.initial_model == str(moved / "initial.keras") and Path(config.initial_model).exists()
    other = TrainConfig.from_dict({**run.config, "initial_model": str(parent)})     # the command line's own model
    assert training._own_starting_copy(other, moved).initial_model == str(parent)


def test_a_run_deleted_while_its_report_is_kept_is_deleted_whole(tiny_env, no_trainers, monkeypatch):
    """A page keeps an ended run's report in its folder (a second's work): a delete meanwhile failed on a
    folder no longer empty, said "the runs folder could not be changed", and left half a run behind. Now
    the folder is moved out of the way first, so a write after that fails, and one already under way is
    swept up with it."""
    import shutil
    import errno
    [run_id] = ended_runs(["student"], trained=True)
    path = runs.get(run_id).path
    real_rmtree = shutil.rmtree
    late = []

    def rmtree_while_a_report_lands(folder, ignore_errors=False, **kwargs):
        if late:
            return real_rmtree(folder, ignore_errors=ignore_errors, **kwargs)
        # The report's write, already holding the folder, lands after rmtree listed it: the folder is
        # not empty when rmtree comes to remove it.
        late.append(folder)
        for child in Path(folder).iterdir():
            real_rmtree(child) if child.is_dir() else child.unlink()
        (Path(folder) / ".report-late.html").write_text("a report")
        if not ignore_errors:
            raise OSError(errno.ENOTEMPTY, "Directory not empty")
    monkeypatch.setattr(shutil, "rmtree", rmtree_while_a_report_lands)
    runs.delete(run_id, owner="student")
    with pytest.raises(OSError):        # a report written after the delete has nowhere to go
        rundir.atomic_write_bytes(path / ".report-after.html", b"a report")
    assert not path.exists() and not Path(late[0]).exists()
    assert run_id not in {r.id for r in runs.list_runs()}
    assert [p.name for p in path.parent.iterdir() if "deleting" in p.name] == []
    # One a writer still held open (NFS keeps such files) is swept the next time runs are pruned.
    stuck = path.parent / ".deleting-stuck"
    (stuck / "model.keras").parent.mkdir(parents=True)
    (stuck / "model.keras").write_bytes(b"held open elsewhere")
    runs.start(small(epochs=1), owner="student")
    assert not stuck.exists()


def test_a_teacher_can_clear_everything(tiny_env, no_trainers):
    running = runs.start(small(epochs=1), owner="a")
    queued = runs.start(small(epochs=1), owner="b")
    ended = runs.create(small(epochs=1), owner="c")
    rundir.update_status(ended.path, state="finished")
    with pytest.raises(runs.RunError):
        runs.clear(admin=False)
    assert runs.clear(admin=True) == 3
    assert runs.get(queued.id).state == "stopped"
    assert (running.path / rundir.STOP).exists()
    with pytest.raises(runs.RunError):
        runs.get(ended.id)


@pytest.mark.parametrize("damage", [
    lambda p: (p / rundir.STATUS).write_bytes(b"\xff\xfe{not utf-8"),
    lambda p: (p / rundir.STATUS).write_text("[1, 2, 3]"),
    lambda p: (p / rundir.STATUS).write_text('{"state": "running", "pid": "12"'),
    lambda p: (p / rundir.STATUS).write_text('{"state": "dancing"}'),
    lambda p: ((p / rundir.CONFIG).unlink(), (p / rundir.CONFIG).mkdir()),
    lambda p: (p / rundir.CONFIG).write_text('{"epochs": "many"}'),
    lambda p: (p / rundir.CONFIG).write_text('{"nonsense": 1}'),
    lambda p: (p / rundir.CONFIG).write_text("[" * 100_000),
], ids=["bad-utf8", "json-list", "half-written", "unknown-state", "config-folder", "config-types",
        "config-unknown", "deep-nesting"])
def test_a_damaged_run_is_a_failed_run_not_a_broken_page(tiny_env, no_trainers, damage):
    good = runs.create(small(epochs=1, name="good"), owner="a")
    bad = runs.create(small(epochs=1, name="bad"), owner="b")
    damage(bad.path)
    listed = {r.id: r for r in runs.list_runs()}
    assert listed[good.id].state == "queued" or listed[good.id].state == "running"
    assert listed[bad.id].state == "failed"
    assert "damaged" in listed[bad.id].status["error"]
    assert listed[bad.id].summary()["state"] == "failed"       # the board can still show it
    assert listed[bad.id].progress()["fraction"] == 0.0
    runs.delete(bad.id, admin=True)                            # and a teacher can remove it


def test_bad_metrics_lines_are_skipped_not_fatal(tiny_env):
    run = runs.create(small(epochs=2), owner="a")
    good_batch = '{"kind": "batch", "epoch": 1, "step": 1, "elapsed_s": 1.0, "loss": 2.0, "accuracy": 0.1}'
    good_epoch = ('{"kind": "epoch", "epoch": 1, "elapsed_s": 2.0, "loss": 1.5, "accuracy": 0.3, '
                  '"test_loss": 1.4, "test_accuracy": 0.4, "images_per_s": 100.0}')
    (run.path / rundir.METRICS).write_text("\n".join([
        good_batch, "[1, 2]", '"text"', '{"kind": "epoch", "epoch": 1}', '{"kind": "batch", "epoch": "x"}',
        '{"kind": "batch", "epoch": 1, "step": 2, "elapsed_s": 1.5, "loss": "high", "accuracy": 0.2}',
        "\xff garbage", good_epoch, '{"kind": "batch", "epo']))
    records = runs.get(run.id).metrics()
    assert [r["kind"] for r in records] == ["batch", "epoch"]
    assert runs.get(run.id).summary()["epochs"] == "1 / 2"      # the one good epoch record counts


def test_a_queued_run_with_a_free_slot_starts_by_itself(tiny_env, no_trainers):
    run = runs.create(small(epochs=1), owner="a")      # queued, and nobody presses Start again
    assert runs.get(run.id).state == "queued"
    watcher = runs.watch(interval=0.2)
    try:
        wait_for(lambda: runs.get(run.id).state == "running", timeout=60, what="the watcher to start it")
    finally:
        watcher.stop()


def test_a_reused_pid_does_not_keep_a_dead_run_running(tiny_env):
    # A live process whose command line even mentions cifar_core, but which is not the run's trainer:
    # the pid is right, the start time is not.
    impostor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cifar_core"])
    try:
        time.sleep(0.2)
        run = runs.create(small(epochs=1), owner="a")
        rundir.update_status(run.path, state="running", pid=impostor.pid,
                             pid_started=rundir.process_start(impostor.pid) - 100)
        runs.reconcile()
        assert runs.get(run.id).state == "failed"
        honest = runs.create(small(epochs=1), owner="b")
        rundir.update_status(honest.path, state="running", pid=impostor.pid,
                             pid_started=rundir.process_start(impostor.pid))
        runs.reconcile()
        assert runs.get(honest.id).state == "running"
    finally:
        impostor.kill()
        impostor.wait()
    runs.reconcile()
    assert runs.get(honest.id).state == "failed"


def test_replicas_on_two_machines_judge_only_their_own_trainers(tiny_env, monkeypatch):
    """A runs directory shared by replicas on several machines: a pid names a process only on the machine
    that started it. Another machine's trainer is not failed for being absent here, nor its worker's file
    removed; if it falls silent it is failed, and no process here that happens to have its pid is killed."""
    from cifar_core import worker
    monkeypatch.setenv("CIFAR_RUN_STALL_S", "2")
    monkeypatch.setattr(runs, "_dispatch", lambda: None)        # this test is about judging, not starting
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])   # a process here
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        theirs = runs.create(small(epochs=1), owner="a")
        rundir.update_status(theirs.path, state="running", pid=bystander.pid, trainer="worker", host="lab-pc-2")
        ours = runs.create(small(epochs=1), owner="b")
        rundir.update_status(ours.path, state="running", pid=gone.pid, trainer="worker", host=rundir.HOST)
        remote = worker.directory(create=True) / "lab-pc-2-4242.json"
        rundir.write_json(remote, {"pid": 4242, "host": "lab-pc-2", "run": None})
        with runs._lock():
            assert worker.live_workers() == []        # not this machine's to hand a run to, nor to remove
        assert remote.exists()
        # ... until it has been untouched longer than any worker lives: a container made again has a new
        # name, and its killed workers' files were kept for good, each read at every hand-over.
        killed = worker.directory() / "old-container-77.json"
        rundir.write_json(killed, {"pid": 77, "host": "old-container", "run": None})
        os.utime(killed, (time.time() - worker.OTHER_MACHINES_FILE_KEPT_S - 60,) * 2)
        with runs._lock():
            assert worker.live_workers() == []
        assert remote.exists() and not killed.exists()
        runs.reconcile()
        assert runs.get(theirs.id).state == "running" and runs.get(ours.id).state == "failed"
        time.sleep(3)                                 # the other machine's trainer falls silent
        runs.reconcile()
        assert runs.get(theirs.id).state == "failed" and "no progress" in runs.get(theirs.id).status["error"]
        assert bystander.poll() is None               # the pid was another machine's: nothing here was killed
    finally:
        bystander.kill()
        bystander.wait()


def test_a_worker_from_before_host_names_is_handed_its_run_where_it_looks(tiny_env):
    """A server upgraded mid-lesson finds an idle worker of the old code, whose file is "<pid>.json": the run
    it hands over goes into that file, which the worker reads, not into one it never would."""
    from cifar_core import worker
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        old_style = worker.directory(create=True) / f"{idle.pid}.json"
        rundir.write_json(old_style, {"pid": idle.pid, "pid_started": rundir.process_start(idle.pid), "run": None})
        run = runs.create(small(epochs=1), owner="a")
        with runs._lock():
            worker.hand_over(runs.get(run.id))
        assert rundir.read_json(old_style)["run"] == run.id and runs.get(run.id).status["pid"] == idle.pid
    finally:
        idle.kill()
        idle.wait()


def test_when_memory_runs_out_the_trainer_goes_not_the_server(tiny_env, small_memory):
    """The kernel's out-of-memory killer ends the largest process unless told otherwise. A stand-in for the
    server holding 1 GB (thirty visitors' sessions) and a trainer (0.4 GB for TensorFlow alone) cannot both fit in
    1.3 GB: the trainer goes, as it does on the code before only when it is the larger."""
    inside = f"echo $$ > {small_memory}/cgroup.procs && exec "
    server = subprocess.Popen(["sh", "-c", inside + f"{sys.executable} -c 'import time, numpy as np; "
                               "held = np.ones(1 << 27); time.sleep(120)'"])
    try:
        # The server holds its memory before the trainer starts: on a busy machine its numpy import and its
        # writing 1 GB can take longer than the trainer's start, and a server still growing when the trainer is
        # ended asks for memory the dying trainer has not yet given back, so the kernel ends it too.
        wait_for(lambda: memory_mb(server.pid)[0] > 1000, what="the server to hold its 1 GB")
        run = runs.create(small(epochs=1), owner="a")
        rundir.update_status(run.path, state="running", pid=None)     # as the app marks a run it starts a trainer for
        trainer = subprocess.run(["sh", "-c", inside + f"{sys.executable} -m cifar_core train --run-dir {run.path}"],
                                 cwd=runs.PACKAGE_ROOT, capture_output=True, timeout=300)
        assert trainer.returncode == -9, trainer.stderr.decode()[-2000:]      # SIGKILL, from the kernel
        assert server.poll() is None
        assert "oom_kill 1" in (small_memory / "memory.oom_control").read_text()
    finally:
        server.kill()
        server.wait()


def test_a_run_found_dead_later_ends_when_its_trainer_was_last_heard(tiny_env):
    # Nobody had the app open when the trainer was killed an hour ago: the board must not charge that hour.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = runs.create(small(epochs=1), owner="a")
    started = time.time() - 3_700
    rundir.update_status(run.path, state="running", pid=gone.pid, launched=started, started=started)
    rundir.append_metric(run.path, {"kind": "batch", "epoch": 1, "step": 1, "loss": 2.0})
    last_heard = time.time() - 3_600
    for name in (rundir.STATUS, rundir.METRICS):
        os.utime(run.path / name, (last_heard, last_heard))
    runs.reconcile()
    dead = runs.get(run.id)
    assert dead.state == "failed"
    assert dead.status["ended"] == pytest.approx(last_heard, abs=1)
    assert dead.summary()["time"] == runs.timing.duration(100)


def test_process_start_names_one_process():
    here = rundir.process_start(os.getpid())
    assert isinstance(here, int) and here > 0
    assert rundir.process_start(os.getpid()) == here
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert rundir.process_start(child.pid) is None


@pytest.mark.parametrize("changes, field", [
    ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"), ({"seed": 1.5}, "seed"),
    ({"name": "x" * 50_000}, "name"), ({"name": "two\nlines"}, "name"), ({"name": 7}, "name"),
    ({"epochs": 10**30}, "epochs"), ({"learning_rate": 10**400}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"), ({"batch_size": True}, "batch_size"),
    ({"train_subset": 10**12}, "train_subset"), ({"arch": ["airbench"]}, "arch"),
    ({"optimizer": None}, "optimizer"), ({"precision": {}}, "precision"), ({"preset": "fastest"}, "preset"),
    ({"initial_model": 5}, "initial_model"), ({"lookahead": "yes"}, "lookahead"),
    ({"zoom": 3.0}, "zoom"), ({"zoom": -0.1}, "zoom"), ({"zoom": "0.2"}, "zoom"),
    ({"distill_from": "a.keras"}, "distill_from"), ({"distill_from": ["a.keras"] * 5}, "distill_from"),
    ({"distill_from": [""]}, "distill_from"), ({"distill_from": [7]}, "distill_from"),
])
def test_every_field_is_checked_by_type_and_range_before_a_run_exists(tiny_env, changes, field):
    from cifar_core.config import ConfigError
    with pytest.raises(ConfigError) as error:
        runs.start(TrainConfig(**{**small().to_dict(), **changes}), owner="a")
    assert error.value.field == field and "\n" not in str(error.value) and len(str(error.value)) < 200
    assert runs.list_runs() == []


def test_the_watcher_survives_errors(tiny_env, monkeypatch):
    calls = []

    def failing():
        calls.append(1)
        raise OSError("disk full")
    monkeypatch.setattr(runs.board, "refresh", failing)     # the watcher's first step each round
    watcher = runs.watch(interval=0.05)
    try:
        wait_for(lambda: len(calls) >= 3, timeout=60, what="several rounds")
        assert watcher.alive()
    finally:
        watcher.stop()
    assert not watcher.alive()


def test_the_watcher_survives_a_setting_gone_bad(tiny_env, monkeypatch):
    """A setting read on each round that no longer reads (a test's non-UTF-8 path, in the same process)
    ended the watch thread for good: no queued run started after it."""
    from cifar_core import settings
    real, calls = settings.get, []

    def bad():
        calls.append(1)
        raise ValueError("CIFAR10_DATA names a path that is not UTF-8 text")
    watcher = runs.watch(interval=0.05)
    try:
        monkeypatch.setattr(settings, "get", bad)
        wait_for(lambda: len(calls) >= 3, timeout=60, what="several rounds")
        assert watcher.alive()
    finally:
        monkeypatch.setattr(settings, "get", real)
        watcher.stop()


def test_a_teacher_can_pause_everyone_elses_new_runs(tiny_env, no_trainers):
    """Cookies are free, so a script can start runs as one new person after another: a teacher's pause stops
    every new run but a teacher's and the command line's, and lifting it lets everyone start again."""
    with pytest.raises(runs.RunError, match="Only a teacher can pause"):
        runs.hold_starts(True, admin=False)
    runs.hold_starts(True, admin=True)
    assert runs.starts_on_hold()
    with pytest.raises(runs.RunError, match="The teacher has paused new runs for now"):
        runs.start(small(epochs=1), owner="new-cookie")
    assert runs.list_runs() == []
    runs.start(small(epochs=1), owner="teacher", admin=True)
    runs.start(small(epochs=1))                              # the command line
    runs.hold_starts(False, admin=True)
    assert not runs.starts_on_hold()
    runs.start(small(epochs=1), owner="new-cookie")
    assert len(runs.list_runs()) == 3


def test_a_trainer_that_cannot_be_started_leaves_the_run_made_and_said_why(tiny_env, monkeypatch):
    """Start makes the run, then launches its trainer: a launch that fails does not turn into "the runs
    folder could not be changed, please try again" for a run that exists and waits; a process that could
    not be made is said so, not "ended or killed"."""
    import errno
    import subprocess

    def no_worker(run):
        raise OSError(errno.ENOSPC, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(runs, "_launch", no_worker)
        run = runs.start(small(epochs=1), owner="alice")
    assert run.state == "queued" and len(runs._all()) == 1        # (list_runs would launch it, here)

    def no_process(*args, **kwargs):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", "0")          # a fresh process per run
    monkeypatch.setattr(subprocess, "Popen", no_process)
    runs.reconcile()
    status = rundir.read_status(run.path)
    assert status["state"] == "failed"
    assert status["error"] == ("The server could not start a trainer for it (Resource temporarily unavailable); "
                               "please try again in a moment.")


def test_a_continued_changed_recipe_is_still_called_changed(tiny_env, no_trainers):
    """A continuation's epochs and rate are its own, so they are no change to its recipe; but a "quick" run
    of 6 epochs, "quick (changed)" on the board, was plain "quick" once continued, twice over."""
    parent = runs.create(TrainConfig.from_preset("quick", epochs=6, batch_size=64), owner="eve")
    rundir.update_status(parent.path, state="finished")
    (parent.path / rundir.MODEL).write_bytes(b"its checkpoint")
    assert runs.get(parent.id).summary()["recipe"] == "quick (changed)"
    child = runs.continue_run(parent.id, epochs=1, owner="eve")
    rundir.update_status(child.path, state="finished")
    (child.path / rundir.MODEL).write_bytes(b"its checkpoint")
    grandchild = runs.continue_run(child.id, epochs=1, owner="eve")
    assert [runs.get(r.id).summary()["recipe"] for r in (child, grandchild)] == ["quick (changed)"] * 2
    plain = runs.create(TrainConfig.from_preset("quick"), owner="bob")      # continued as it was: still plain
    rundir.update_status(plain.path, state="finished")
    (plain.path / rundir.MODEL).write_bytes(b"its checkpoint")
    assert runs.continue_run(plain.id, epochs=1, owner="bob").summary()["recipe"] == "quick"


def test_a_process_that_numbers_its_processes_apart_is_another_machine():
    """Two containers on one machine sharing its host name (Docker's host network) each number their own
    processes: a replica in one read the other's live trainer by a pid of its own and failed the run."""
    import json
    import shutil
    if not shutil.which("unshare"):
        pytest.skip("no unshare here")
    seen = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c",
                           "import json; from cifar_core import rundir; print(json.dumps(rundir.MACHINE))"],
                          capture_output=True, text=True, cwd=runs.PACKAGE_ROOT)
    if seen.returncode:
        pytest.skip(f"no process namespace of its own here: {seen.stderr.strip()[-200:]}")
    other = json.loads(seen.stdout)
    assert (other["host"], other["boot"]) == (rundir.HOST, rundir.BOOT) and other["pid_space"] != rundir.PID_SPACE
    assert not runs._here(other) and runs._here(rundir.MACHINE)


def test_a_run_from_before_this_machine_restarted_is_judged_here_and_found_dead(tiny_env, monkeypatch):
    """A trainer's status names its machine's boot: after a restart (a laptop's, a container's) its pid is
    this boot's to judge, and its run fails at once; judged as another machine's, a command-line run (no
    silence check) held the queue for good."""
    monkeypatch.setattr(runs, "_dispatch", lambda: None)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = runs.create(small(epochs=1))
    rundir.update_status(run.path, state="running", pid=gone.pid, started=rundir.now(),
                         **{**rundir.MACHINE, "boot": "an earlier boot", "pid_space": 1})
    runs.reconcile()
    assert runs.get(run.id).state == "failed"
    legacy = runs.create(small(epochs=1))       # written before boots were named: the host alone
    rundir.update_status(legacy.path, state="running", pid=gone.pid, started=rundir.now(), host=rundir.HOST)
    runs.reconcile()
    assert runs.get(legacy.id).state == "failed"


def test_the_command_lines_run_is_never_queued_for_the_apps_trainers(tiny_env, no_trainers):
    """Made queued, then marked running as its training began, a command-line run could be handed to an
    app's trainer in between: two trainers writing one folder."""
    run = runs.create(small(epochs=1), trained_here=True)
    assert run.state == "running" and run.status["pid"] == os.getpid() and runs._here(run.status)
    runs.reconcile()                    # the app's watcher: nothing to start, nothing dead
    assert runs.get(run.id).state == "running" and runs.get(run.id).status["pid"] == os.getpid()


def test_the_watcher_says_a_lasting_failure_once_a_minute_and_reaps_the_last_trainers(tiny_env, monkeypatch, capsys):
    """A full disk all day: each tick (every second) printed the same line, 8 MB of the server's log a day.
    And the day's last trainer stayed a zombie until the next run, as only a reconcile reaped them."""
    from cifar_core import board

    def full_disk():
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(board, "refresh", full_disk)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    runs.adopt(done)
    watcher = runs.Watcher(interval=0.05)
    try:
        wait_for(lambda: done not in runs._children, timeout=30, what="the watcher to reap the ended trainer")
        time.sleep(0.5)           # ten more ticks of the same failure
    finally:
        watcher.stop()
    assert capsys.readouterr().err.count("No space left on device") == 1
    assert done.returncode == 0


def test_a_run_does_not_start_on_a_disk_too_full_to_keep_it(tiny_env, no_trainers, monkeypatch):
    """It trained for minutes and failed as it saved, the class's runs waiting behind it for nothing."""
    import shutil
    real = shutil.disk_usage

    def nearly_full(path):
        return real(path)._replace(free=40 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    with pytest.raises(runs.RunError, match=r"disk is nearly full \(40 MB free\)"):
        runs.start(small(epochs=1), owner="a")
    assert runs.list_runs() == []
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert runs.start(small(epochs=1), owner="a").state in rundir.ACTIVE
