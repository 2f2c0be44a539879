"""The shared snapshot of the runs directory (cifar_core.board) and the server's per-rerun clean-up (app_pages.serving)."""
import json
import time

import pytest

from cifar_core import board, rundir, runs
from cifar_core.config import TrainConfig


def small(**changes):
    return TrainConfig(arch="airbench_tiny", batch_size=8, precision="float32", **changes)


@pytest.fixture
def counted_reads(tiny_env, monkeypatch):
    """How many times a run's status and settings, and its metrics, are parsed."""
    counts = {"runs": 0, "metrics": 0}
    read, read_metrics = runs._read, rundir.MetricsReader.read

    def counting_read(path):
        counts["runs"] += 1
        return read(path)

    def counting_metrics(reader):
        counts["metrics"] += 1
        return read_metrics(reader)
    monkeypatch.setattr(runs, "_read", counting_read)
    monkeypatch.setattr(rundir.MetricsReader, "read", counting_metrics)
    return counts


def finished(name: str, accuracy: float) -> runs.Run:
    run = runs.create(small(epochs=1, name=name), owner="alice")
    rundir.append_metric(run.path, {"kind": "epoch", "epoch": 1, "elapsed_s": 3.0, "loss": 1.0, "accuracy": 0.5,
                                    "test_loss": 1.1, "test_accuracy": accuracy})
    rundir.update_status(run.path, state="finished", test_accuracy=accuracy)
    return run


def test_pages_read_the_snapshot_without_touching_run_files(counted_reads):
    first = finished("one", 0.61)
    time.sleep(0.01)
    second = finished("two", 0.72)
    snapshot = board.refresh()
    assert [r.id for r in snapshot.runs] == [second.id, first.id]     # newest first
    assert snapshot.metrics_of(first.id)[0]["test_accuracy"] == 0.61
    counted_reads.update(runs=0, metrics=0)
    for _ in range(100):            # a hundred reruns, every session's, between two ticks
        assert board.current() is snapshot
    assert counted_reads == {"runs": 0, "metrics": 0}


def test_a_refresh_reads_only_the_run_that_changed_and_counts_a_version(counted_reads):
    quiet, busy = finished("quiet", 0.5), finished("busy", 0.6)
    before = board.refresh()
    counted_reads.update(runs=0, metrics=0)
    assert board.refresh().version == before.version      # nothing changed: same version, nothing parsed
    assert counted_reads == {"runs": 0, "metrics": 0}

    time.sleep(0.01)
    rundir.append_metric(busy.path, {"kind": "epoch", "epoch": 2, "elapsed_s": 6.0, "loss": 0.9, "accuracy": 0.6,
                                     "test_loss": 1.0, "test_accuracy": 0.66})
    after = board.refresh()
    assert after.version == before.version + 1
    assert counted_reads == {"runs": 1, "metrics": 1}
    assert len(after.metrics_of(busy.id)) == 2 and len(after.metrics_of(quiet.id)) == 1
    assert after.get(quiet.id) is before.get(quiet.id)    # reused as it was, not read again


def test_a_training_runs_metrics_are_parsed_once_each_line(tiny_env, monkeypatch):
    """A trainer appends a line about once a second; each tick parses only what is new, and reads what
    read_metrics reads: a half-written last line once it is whole, a replaced or shortened file afresh."""
    run = runs.create(small(epochs=1), owner="alice")
    line = {"kind": "batch", "epoch": 1, "step": 1, "steps": 9, "elapsed_s": 1.0, "loss": 2.0, "accuracy": 0.1}
    for step in range(1, 2001):
        rundir.append_metric(run.path, {**line, "step": step})
    parsed = []
    records = rundir._records
    monkeypatch.setattr(rundir, "_records", lambda data: parsed.append(len(data)) or records(data))
    reader = rundir.MetricsReader(run.path)
    assert len(reader.read()) == 2000
    with open(run.path / rundir.METRICS, "a") as f:     # the next line, half written
        f.write('{"kind": "batch", "epoch": 1, "step": 2001, "steps": 9, "elapsed_s": 2.0, "loss": 1.9')
    parsed.clear()
    assert len(reader.read()) == 2000
    assert sum(parsed) < 100                             # the half line, not the 2,000 before it
    with open(run.path / rundir.METRICS, "a") as f:
        f.write(', "accuracy": 0.2}\n')
    parsed.clear()
    assert len(reader.read()) == 2001 and sum(parsed) < 200      # the new line alone
    assert list(reader.read()) == rundir.read_metrics(run.path)
    lines = (run.path / rundir.METRICS).read_text().splitlines(keepends=True)
    (run.path / rundir.METRICS).write_text("".join(lines[:5]))     # cut short in place
    assert list(reader.read()) == rundir.read_metrics(run.path) and len(reader.read()) == 5
    rundir.atomic_write_bytes(run.path / rundir.METRICS, "".join(lines[:7]).encode())    # replaced
    assert list(reader.read()) == rundir.read_metrics(run.path) and len(reader.read()) == 7
    (run.path / rundir.METRICS).unlink()
    assert reader.read() == () and rundir.read_metrics(run.path) == []


def test_an_ended_runs_records_are_kept_thinned_and_a_running_ones_whole(tiny_env):
    """Every server process holds every kept run's records: a long run's one a second of training were a
    megabyte a run. Once it has ended, the board keeps every epoch record, each epoch's last batch record
    (the training figures at the epoch's end), and a few hundred batch records between for its curves."""
    def lines(epochs, per_epoch):
        for epoch in range(1, epochs + 1):
            for step in range(1, per_epoch + 1):
                yield {"kind": "batch", "epoch": epoch, "step": step, "steps": per_epoch, "elapsed_s": 1.0 * step,
                       "loss": 2.0, "accuracy": 0.1}
            yield {"kind": "epoch", "epoch": epoch, "elapsed_s": 1.0 * per_epoch, "loss": 1.0, "accuracy": 0.5,
                   "test_loss": 1.1, "test_accuracy": 0.45}
    ended, running = runs.create(small(epochs=4), owner="a"), runs.create(small(epochs=4), owner="b")
    for run in (ended, running):
        (run.path / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in lines(4, 600)))
    rundir.update_status(ended.path, state="finished")
    rundir.update_status(running.path, state="running")
    snapshot = board.refresh()
    whole = rundir.read_metrics(ended.path)
    kept = snapshot.metrics_of(ended.id)
    assert len(snapshot.metrics_of(running.id)) == len(whole) == 2404
    assert [r for r in kept if r["kind"] == "epoch"] == [r for r in whole if r["kind"] == "epoch"]
    batches = [r for r in kept if r["kind"] == "batch"]
    assert board.ENDED_BATCH_RECORDS <= len(batches) <= board.ENDED_BATCH_RECORDS + 4
    assert all({"epoch": e, "step": 600} in [{"epoch": r["epoch"], "step": r["step"]} for r in batches] for e in range(1, 5))
    assert kept == [r for r in whole if r in kept]                     # in order, as written
    assert ended.id not in snapshot.readers and running.id in snapshot.readers
    assert board.refresh().metrics_of(ended.id) == kept                # kept as it is while nothing changes


def test_a_change_made_here_shows_on_the_next_rerun_not_a_tick_later(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "1")
    monkeypatch.setattr(runs, "_dispatch", lambda: None)      # no trainer: this is about what pages see
    kept = finished("kept", 0.5)
    board.refresh()
    queued = runs.start(small(epochs=1, name="new"), owner="bob")
    assert board.current().get(queued.id).state == "queued"
    assert board.current().queue_position(queued.id) == 1
    runs.delete(kept.id, owner="alice")
    assert board.current().get(kept.id) is None


def test_a_deleted_run_and_a_damaged_status_file_do_not_break_the_snapshot(tiny_env):
    run = finished("soon damaged", 0.5)
    board.refresh()
    time.sleep(0.01)
    (run.path / rundir.STATUS).write_text("{not json")
    snapshot = board.refresh()
    assert snapshot.get(run.id).state == "failed"
    runs.delete(run.id, admin=True)
    assert board.refresh().runs == ()


def test_the_snapshot_follows_the_runs_directory_setting(tiny_env, monkeypatch, tmp_path):
    finished("here", 0.5)
    assert len(board.refresh().runs) == 1
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert board.current().runs == ()


def test_the_watcher_leaves_the_lock_alone_while_nothing_is_queued_or_running(tiny_env, monkeypatch):
    finished("done", 0.5)
    calls = []
    monkeypatch.setattr(runs, "reconcile", lambda *a, **k: calls.append(1) or [])
    watcher = runs.Watcher(0.05)
    try:
        time.sleep(0.5)
        assert calls == []
        queued = runs.create(small(epochs=1, name="waiting"), owner="carol")
        deadline = time.monotonic() + 60
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert calls, "a queued run is reconciled (and so started) by the watcher"
        assert board.current().get(queued.id) is not None
    finally:
        watcher.stop()


def test_streamlit_no_longer_clears_keras_after_every_rerun():
    keras = pytest.importorskip("keras")
    from streamlit.runtime.scriptrunner import script_runner

    from app_pages import serving
    original = script_runner._clean_problem_modules
    try:
        assert serving.keep_keras_session()
        keras.layers.Dense(2, name=None)
        before = keras.layers.Dense(2).name
        script_runner._clean_problem_modules()          # what Streamlit calls after every run
        after = keras.layers.Dense(2).name
        assert after != before, "the session was cleared: layer names started again from the first"
    finally:
        script_runner._clean_problem_modules = original


def test_the_server_config_turns_off_the_full_collection_after_every_rerun():
    import tomllib
    from pathlib import Path
    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    assert "serving.keep_keras_session()" in (
        Path(__file__).resolve().parent.parent / "studio.py").read_text()


def test_a_model_dropped_after_a_freeze_is_freed_at_the_next_load():
    """A loaded model is frozen out of the collector's view; once the cache drops it (a Keras model is
    full of reference cycles), the next load's freeze must still free it."""
    import gc
    import weakref

    from app_pages import serving

    class Layer:
        pass

    try:
        model = Layer()
        model.node = Layer()
        model.node.layer = model            # a cycle, as a Keras layer and its nodes make
        dropped = weakref.ref(model)
        serving.freeze_loaded()             # the model loaded: frozen with everything else alive
        del model                           # the cache lets it go
        serving.freeze_loaded()             # another model loaded
        assert dropped() is None, "a model frozen once and let go stays in memory for good"
    finally:
        gc.unfreeze()


def test_models_load_one_at_a_time_whoever_asks(monkeypatch):
    """Thirty students picking new runs at once, or one flicking through forty, load one model at a time,
    so loading takes at most one of the server's cores."""
    import threading

    from conftest import AtOnce

    from app_pages import common, serving
    from cifar_core import inference

    loading = AtOnce()
    monkeypatch.setattr(inference, "load_model", loading.returning(object))
    monkeypatch.setattr(inference, "predict", lambda *args, **kwargs: None)
    monkeypatch.setattr(serving, "freeze_loaded", lambda: None)
    common.models_kept().clear()
    common._checkpoint.clear()
    try:
        loads = [threading.Thread(target=common._model, args=(f"/runs/{i}/model.keras", 1.0, f"visitor {i}"))
                 for i in range(4)]
        loads.append(threading.Thread(target=common._checkpoint, args=("/runs/live/model.keras", 1.0)))
        for load in loads:
            load.start()
        for load in loads:
            load.join()
    finally:
        common.models_kept().clear()
        common._checkpoint.clear()
    assert loading.most == 1
