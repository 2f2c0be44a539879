"""The Train page under AppTest: what a teacher sees of a run that is someone else's, or has ended."""
import dataclasses
import json
import math
import os
import shutil
import time

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from app_pages import guide, train_parts
from cifar_core import board, evaluation, inference, rundir, runs
from cifar_core.config import FIELD_HELP, TrainConfig
from conftest import ROOT, as_teacher

TRAIN = "app_pages/train.py"


@pytest.fixture
def page(tiny_env, monkeypatch):
    monkeypatch.chdir(ROOT)

    def open_train(watch: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
        at.run()
        if watch:
            at.session_state["train_watch"] = watch
        at.switch_page(TRAIN)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return open_train


def test_someone_elses_run_has_no_stop_button_but_a_sentence(page):
    run = runs.create(TrainConfig(epochs=3, batch_size=8, name="not mine"), owner="someone-else")
    # "Running" in a process that is alive (this one), so nothing marks it failed.
    rundir.update_status(run.path, state="running", started=rundir.now(), pid=os.getpid(),
                         pid_started=rundir.process_start(os.getpid()), train_images=100)
    at = page()
    assert [h.value for h in at.header][:1] == ["not mine"]
    assert any("Someone else started this run: only they (or a teacher) can stop it." in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Stop"]
    assert "Starting" in at.get("progress")[0].proto.text   # not a bare 0%


def test_a_run_cancelled_while_it_waited_says_why_and_offers_no_model(page):
    run = runs.create(TrainConfig(epochs=3, batch_size=8, name="cancelled"), owner="someone-else")
    runs.stop(run.id, admin=True)
    at = page(watch=run.id)
    assert any("Stopped: Cancelled by the teacher before it started. It has no model to try." in i.value for i in at.info)
    assert not [s for s in at.success if "Pick it as the model" in s.value]


def test_a_run_stopped_after_its_turn_says_so_and_keeps_its_model(page):
    run = ended_run([0.60, 0.70], [1.2, 0.9], [1.5, 1.0])
    (run.path / rundir.MODEL).write_bytes(b"a checkpoint")
    rundir.update_status(run.path, state="stopped", stopped_because="Stopped after its turn of 20 minutes from its start.")
    at = page(watch=run.id)
    [said] = [i.value for i in at.info]
    assert said.startswith("Stopped after its turn of 20 minutes from its start. Test accuracy 69.4%. It took 3 min 45 s")
    assert not at.success


def test_a_selected_run_stays_selected_when_someone_starts_another(page):
    ended_run([0.6], [1.2], [1.5], name="older")
    rundir.update_status(ended_run([0.7], [1.0], [1.2], name="newer").path, created=rundir.now() + 1)
    at = page()
    table = at.dataframe[0].value
    assert list(table["name"]) == ["newer", "older"]
    at.session_state["train_board"] = {"selection": {"rows": [1], "columns": []}}   # the older run, as drawn
    at.run()

    def chosen():
        return [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]
    assert chosen() == ["**older** · finished"]
    config = TrainConfig(epochs=1, batch_size=8, name="started since")
    rundir.write_json(runs.create(config, owner="someone", trained_here=True).path / rundir.STATUS,   # never queued
                      {"state": "stopped", "owner": "someone", "created": rundir.now() + 2})
    board.invalidate()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(at.dataframe[0].value["name"])[0] == "started since"
    assert at.session_state["train_board"]["selection"]["rows"] == [2]      # moved down with its run
    assert chosen() == ["**older** · finished"]


def test_a_visitors_own_runs_are_marked_on_the_board_the_class_shares(page):
    """Among a class's thirty runs, a student's own are marked, in their browser only: the table the class
    shares is made once, unmarked, and each browser marks its own copy."""
    from app_pages import common
    at = page()
    me = common.identity.owner_id(at.session_state["owner"])
    ended_run([0.6], [1.2], [1.5], name="theirs")
    mine = ended_run([0.7], [1.0], [1.2], name="mine")
    rundir.update_status(mine.path, owner=me, created=rundir.now() + 1)
    board.invalidate()
    at.run()
    assert list(at.dataframe[0].value["name"]) == [train_parts.MINE + "mine", "theirs"]
    assert any(c.value.endswith(" " + train_parts.MINE_SAID) for c in at.caption)
    other = page()                                          # another browser: its own identity, none of these
    assert list(other.dataframe[0].value["name"]) == ["mine", "theirs"]
    assert not any(train_parts.MINE_SAID in c.value for c in other.caption)
    at.session_state["train_board"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert [m.value for m in at.markdown if m.value.startswith("**mine**")]    # its own name, under the table


def test_a_selection_sent_by_a_script_is_made_sane_and_at_most_a_few_runs_are_compared(page):
    """Streamlit passes on whatever rows a browser sends: ten thousand copies of one row, rows past the end
    and negative ones must not become ten thousand curves on every refresh."""
    from app_pages import train_parts
    names = [f"run {i}" for i in range(7)]
    for i, name in enumerate(names):
        rundir.update_status(ended_run([0.6], [1.2], [1.5], name=name).path, created=rundir.now() + i)
    at = page()
    drawn = list(at.dataframe[0].value["name"])
    at.session_state["train_board"] = {"selection": {"rows": [0] * 10_000 + [-1, 99, 2, 1, 3, 4, 5, 6],
                                                     "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    chosen = [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]
    assert chosen == [f"**{name}** · finished" for name in [drawn[i] for i in (0, 2, 1, 3, 4)]]
    # And what the session keeps is what a person could have picked, not the script's 10,000 rows, copied
    # on every refresh of the board while it is drawn.
    assert at.session_state["train_board"] == {"selection": {"rows": [0, 2, 1, 3, 4, 5, 6], "columns": []}}
    assert train_parts.MAX_PICKED == 5
    assert any(c.value.startswith("7 runs picked: here are the first 5.") for c in at.caption)
    # The comparison says what is drawn, and a screen reader hears each run's latest test figures.
    assert any(c.value.startswith("Each run has a colour of its own and a shape for its test dots: its dashed "
                                  "line") and c.value.endswith("(more, for a run stopped partway through an epoch: "
                                                               "its model is from after its last dot, and one "
                                                               "stopped in its first epoch has no dot).")
               for c in at.caption)
    (curves, half) = [c.proto for c in at.get("vega_lite_chart")]     # loss and accuracy, a column each
    assert half.alt == "The accuracy half of the chart before it."
    assert curves.alt.startswith("Line charts of loss and accuracy against epochs: dashed lines for the running "
                                 f"training figures, solid lines with dots for the test set after each epoch. "
                                 f"{drawn[0]}: after epoch 1, test loss 1.200, test accuracy 60.0%; {drawn[2]}: ")


def test_the_run_shown_above_is_not_drawn_again_when_it_is_picked_on_the_board(page):
    """Its curves, the note on reading them and its replay stood twice on the page, a screen apart, when the
    run the page showed was also the one picked in the table (as a class at the projector picks it)."""
    from app_pages.common import plain
    run = ended_run([0.6, 0.7], [1.2, 1.0], [1.5, 1.1], name="mine")
    at = page(watch=run.id)
    above = len(at.get("vega_lite_chart"))
    assert above == 2                                   # loss and accuracy, under its name
    at.session_state["train_board"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("vega_lite_chart")) == above
    assert "This run's curves and what it learned are shown above, under its name." in [c.value for c in at.caption]
    assert f"**{plain('mine')}** · finished" in [m.value for m in at.markdown]      # its buttons stay here
    # Another run picked with it: the two compared, as before.
    ended_run([0.65], [1.1], [1.4], name="another")
    board.invalidate()
    at.run()                # drawn first: a selection made on the old rows would move with its run
    at.session_state["train_board"] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    assert len(at.get("vega_lite_chart")) == above + 2


def test_two_runs_of_the_same_name_are_two_curves_not_one(page):
    """A run continued twice makes two runs named "X (continued)": the chart colours by name, and drew them as
    one zig-zagging run with one key."""
    first = ended_run([0.6, 0.7], [1.2, 1.0], [1.5, 1.1], name="mine (continued)")
    second = ended_run([0.65], [1.1], [1.4], name="mine (continued)")
    at = page()
    at.session_state["train_board"] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (curves,) = [c.proto for c in at.get("vega_lite_chart") if "Line charts of loss" in c.proto.alt]
    keys = {row["run"] for data in curves.datasets
            for row in pa.ipc.open_stream(data.data.data).read_all().to_pylist()}
    assert keys == {f"mine (continued) [{first.id}]", f"mine (continued) [{second.id}]"}
    assert f"mine (continued) [{second.id}]: after epoch 1" in curves.alt
    # Each one's buttons under the same name as its curve.
    from app_pages.common import plain
    heads = [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value]
    assert heads == [f"**{plain(f'mine (continued) [{run.id}]')}** · finished" for run in (second, first)]


def test_every_field_explains_raising_and_lowering_it(page):
    at = page()
    for field in ("arch", "optimizer", "epochs", "learning_rate", "batch_size", "train_subset", "augment", "name",
                  "seed"):
        widget = next(w for kind in ("selectbox", "number_input", "toggle", "text_input") for w in at.get(kind)
                      if w.key == ("train_name" if field == "name" else f"train_quick_{field}"))
        assert widget.help == train_parts.FORM_HELP.get(field, FIELD_HELP[field]), field


def ended_run(test_accuracies, test_losses, losses, name: str = "ended") -> runs.Run:
    """A finished run as its trainer leaves it: 225 s from start to end, 135 s of it testing."""
    run = runs.create(TrainConfig(epochs=len(losses), batch_size=100, name=name), owner="someone")
    lines = []
    for epoch, (accuracy, test_loss, loss) in enumerate(zip(test_accuracies, test_losses, losses), start=1):
        lines.append({"kind": "batch", "epoch": epoch, "step": 50, "elapsed_s": 20.0 * epoch, "wall_s": 40.0 * epoch,
                      "loss": loss, "accuracy": 0.5})
        lines.append({"kind": "epoch", "epoch": epoch, "elapsed_s": 20.0 * epoch, "wall_s": 40.0 * epoch + 20,
                      "test_s": 18.0, "loss": loss, "accuracy": 0.5, "test_loss": test_loss,
                      "test_accuracy": accuracy, "images_per_s": 250.0})
    (run.path / rundir.METRICS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    rundir.update_status(run.path, state="finished", started=1000.0, ended=1225.0, testing_s=135.0,
                         test_accuracy=0.69444, train_images=5000, test_images=10000)
    return runs.get(run.id)


def test_a_run_stopped_in_its_first_epoch_is_not_told_of_test_dots_it_does_not_have(page):
    run = runs.create(TrainConfig(epochs=3, batch_size=100, name="early"), owner="someone")
    steps = [{"kind": "batch", "epoch": 1, "step": step, "elapsed_s": step * 0.5, "wall_s": step * 0.6, "loss": 2.0,
              "accuracy": 0.2} for step in (50, 100, 150)]
    (run.path / rundir.METRICS).write_text("".join(json.dumps(line) + "\n" for line in steps))
    shutil.copyfile(inference.DEFAULT_MODEL, run.path / rundir.MODEL)     # stopped after its first minute
    rundir.update_status(run.path, state="stopped", started=1000.0, ended=1100.0, test_accuracy=0.268)
    at = page(watch=run.id)
    assert not at.exception, [e.value for e in at.exception]
    said = [c.value for c in at.caption if evaluation.ACCURACY_DEFINITION in c.value]
    assert len(said) == 1 and "It stopped before its first epoch ended, so its curves have no test dots" in said[0]
    assert "last dot" not in said[0]
    # How to read the curves without a test dot: none is drawn, nor promised to an ended run.
    assert train_parts.NO_DOT_EVER in [c.value for c in at.caption]
    assert not any("The solid line's dots" in c.value for c in at.caption)


def test_an_ended_run_shows_its_one_accuracy_its_wall_time_and_overfitting_in_words(page):
    run = ended_run([0.60, 0.70, 0.69, 0.66], [1.2, 0.9, 0.95, 1.05], [1.5, 1.0, 0.8, 0.6])
    at = page(watch=run.id)
    [done] = [s.value for s in at.success]
    assert done.startswith("Finished: test accuracy 69.4%.")      # the final model's, with the mirror: not 70.0%
    assert "It took 3 min 45 s from its start, of which testing 2 min 15 s." in done
    assert any(evaluation.ACCURACY_DEFINITION in c.value for c in at.caption)
    [warning] = [w.value for w in at.warning]
    assert "Overfitting" in warning and "after epoch 2" in warning and "from 70.0% to 66.0%" in warning
    assert "Its best test accuracy from one look (the dots) was 70.0%, after epoch 2: fewer epochs" in warning
    assert any("saw-tooth" in c.value and "the dashed line is the training" in c.value for c in at.caption)
    (curves, _) = [c.proto for c in at.get("vega_lite_chart")]
    assert curves.alt.endswith(f"{run.name}: after epoch 4, test loss 1.050, test accuracy 66.0%.")
    row = at.dataframe[0].value.iloc[0]
    assert row["test accuracy"] == "69.4%" and row["time"] == "3 min 45 s" and row["of which testing"] == "2 min 15 s"
    assert not row.isna().any() and "None" not in row.astype(str).tolist()


def test_records_missing_what_the_curves_draw_are_skipped_not_a_broken_page(page):
    """Each known field was checked only where present: an epoch with no test loss, or a step with no step
    number or loss (an older trainer, a file written by hand), broke the page for everyone watching."""
    run = ended_run([0.60, 0.70], [1.2, 0.9], [1.5, 1.0])
    records = rundir.read_metrics(run.path)
    del records[-1]["test_loss"]
    del records[-2]["step"]
    records.append({**records[0], "loss": None})
    (run.path / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
    assert len(rundir.read_metrics(run.path)) == 2
    at = page(watch=run.id)
    (curves, _) = [c.proto for c in at.get("vega_lite_chart")]
    assert curves.alt.endswith(f"{run.name}: after epoch 1, test loss 1.200, test accuracy 60.0%.")


def test_a_run_whose_test_loss_rises_while_accuracy_climbs_is_not_told_fewer_epochs_would_do(page):
    """Only the loss rose: the last epoch is the best one, so "fewer epochs would have kept it" is untrue."""
    run = ended_run([0.60, 0.70, 0.71, 0.72], [1.2, 0.9, 0.95, 1.05], [1.5, 1.0, 0.8, 0.6])
    at = page(watch=run.id)
    [warning] = [w.value for w in at.warning]
    assert "test loss rose from 0.900 to 1.050" in warning and "fewer epochs would have kept it" not in warning
    assert "is still its best, 72.0%, after epoch 4" in warning


def test_a_run_that_keeps_learning_is_not_called_overfitting(page):
    run = ended_run([0.60, 0.70, 0.74, 0.76], [1.2, 0.9, 0.8, 0.75], [1.5, 1.0, 0.8, 0.6])
    at = page(watch=run.id)
    assert not [w for w in at.warning if "Overfitting" in w.value]


def test_a_run_waiting_for_the_cluster_says_so_rather_than_a_place_in_a_queue(tiny_env, tmp_path):
    """On Ray, the cluster's scheduler decides when a run starts: there is no place in a queue to give."""
    def waiting_run(backend, folder):   # run on its own by AppTest: everything it uses comes in as arguments
        from pathlib import Path

        from app_pages import train_parts
        from cifar_core.runs import Run
        status = {"state": "queued", "created": 1.0, **({"backend": "ray", "ray_cpus": 2, "ray_gpus": 1}
                                                         if backend == "ray" else {}),
                  **({"waiting_for_mb": 6_000} if backend == "short of memory" else {})}
        train_parts.status_line(Run("r1", Path(folder), {"epochs": 1, "batch_size": 8}, status), [])

    at = AppTest.from_function(waiting_run, args=("ray", str(tmp_path)), default_timeout=60).run()
    assert [i.value for i in at.info] == ["Waiting for the cluster: it starts when a node has 2 free CPUs and 1 GPU."]
    at = AppTest.from_function(waiting_run, args=("local", str(tmp_path)), default_timeout=60).run()
    assert [i.value for i in at.info] == ["Waiting in the queue. It starts by itself when a trainer is free."]
    at = AppTest.from_function(waiting_run, args=("short of memory", str(tmp_path)), default_timeout=60).run()
    assert [i.value for i in at.info] == ["Waiting in the queue. It needs about 5.9 GB of memory to train, more than "
                                          "the runs training now leave free, so it starts by itself when one of them ends."]


def _queued_line(run_id):     # run on its own by AppTest
    from app_pages import train_parts
    from cifar_core import runs
    train_parts.status_line(runs.get(run_id), [])


def queue_says(run_id: str) -> list[str]:
    """A waiting run's status line, as the Train page draws it (without an error)."""
    at = AppTest.from_function(_queued_line, args=(run_id,), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return [i.value for i in at.info]


def test_a_run_behind_one_waiting_for_memory_says_smaller_runs_may_go_first(tiny_env):
    made = []
    for name, arch, batch in (("a", "airbench_tiny", 8), ("b", "airbench", 4096), ("c", "airbench_tiny", 8)):
        made.append(runs.create(TrainConfig(arch=arch, epochs=1, batch_size=batch), owner=name))
        time.sleep(0.01)        # the queue's order is the order they were made in
    head, big, little = made
    assert queue_says(little.id) == ["Waiting in the queue: number 3. It starts by itself after the runs ahead "
                                     "of it."]
    rundir.update_status(head.path, waiting_for_mb=6_000)
    board.invalidate()
    assert queue_says(little.id) == ["Waiting in the queue: number 3. A run ahead of it is waiting for memory; "
                                     "this one may start before it, when a trainer is free and memory allows "
                                     "both."]
    # No smaller run waits behind the big one: it never passes.
    assert queue_says(big.id) == ["Waiting in the queue: number 2. It starts by itself after the runs ahead "
                                  "of it."]
    # Every trainer taken: the queue takes the memory wait back (None, not removed) and waits for a trainer.
    rundir.update_status(head.path, waiting_for_mb=None)
    board.invalidate()
    assert queue_says(little.id) == ["Waiting in the queue: number 3. It starts by itself after the runs ahead "
                                     "of it."]


def test_a_run_passed_by_a_classmates_later_one_says_why(tiny_env):
    """People take turns in the queue (queue_wait.in_turn): a later run going first needs its reason."""
    recipe = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=8)
    first, second = runs.create(recipe, owner="eve"), runs.create(recipe, owner="eve")
    rundir.update_status(first.path, state="running", started=rundir.now())
    bobs = runs.create(recipe, owner="bob")
    board.invalidate()
    assert queue_says(second.id) == ["Waiting in the queue: number 2. It starts by itself after the runs ahead "
                                     "of it. People take turns: runs of those who have started fewer in the "
                                     "last hour go first."]
    assert queue_says(bobs.id) == ["Waiting in the queue: number 1. It starts by itself when a trainer is "
                                   "free."]


def test_a_waiting_run_is_told_when_it_can_expect_to_start(tiny_env):
    """A place in the queue and a guess of the wait, from how long its recipe's runs took on this server."""
    recipe = TrainConfig(arch="airbench_tiny", epochs=1, batch_size=8)
    done = runs.create(dataclasses.replace(recipe, name="earlier", seed=4), owner="x")
    rundir.update_status(done.path, state="finished", launched=rundir.now() - 400, ended=rundir.now() - 100)
    head, mine = (runs.create(dataclasses.replace(recipe, name=n), owner=n) for n in ("a", "b"))
    board.invalidate()
    assert queue_says(mine.id) == ["Waiting in the queue: number 2. It starts by itself after the runs ahead "
                                   "of it, in about 5 min (a guess from how long runs of the same recipes "
                                   "take on this server)."]
    assert queue_says(head.id) == ["Waiting in the queue: number 1. It starts by itself when a trainer is free, "
                                   "in less than a minute (a guess from how long runs of the same recipes "
                                   "take on this server)."]


def test_a_stop_pressed_as_an_epoch_ends_is_kept(page, monkeypatch):
    run = runs.create(TrainConfig(epochs=3, batch_size=8, name="stopping"), owner="someone")
    rundir.update_status(run.path, state="running", started=rundir.now(), pid=os.getpid(),
                         pid_started=rundir.process_start(os.getpid()), train_images=100)
    at = page(watch=run.id)
    as_teacher(at, monkeypatch)
    at.run()
    # An epoch ends just before the press: the run that takes the press is the one that redraws the page.
    (run.path / rundir.METRICS).write_text(json.dumps({"kind": "epoch", "epoch": 1, "elapsed_s": 5.0, "loss": 1.5,
                                                       "accuracy": 0.4, "test_loss": 1.4, "test_accuracy": 0.45}) + "\n")
    board.invalidate()
    next(b for b in at.button if b.label == "Stop").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert (run.path / rundir.STOP).exists()
    at.run()
    # No time left to show; an epoch has ended, so it keeps a model.
    assert at.get("progress")[0].proto.text.startswith("Stopping: after its current batch it keeps and tests")


def test_a_stop_within_the_first_epoch_does_not_promise_a_model(page, monkeypatch):
    run = runs.create(TrainConfig(epochs=3, batch_size=8, name="stopping"), owner="someone")
    rundir.update_status(run.path, state="running", started=rundir.now(), pid=os.getpid(),
                         pid_started=rundir.process_start(os.getpid()), train_images=100)
    rundir.append_metric(run.path, {"kind": "batch", "epoch": 1, "step": 3, "steps": 13, "elapsed_s": 1.0,
                                    "loss": 2.1, "accuracy": 0.2})
    rundir.request_stop(run.path)
    at = page(watch=run.id)
    assert at.get("progress")[0].proto.text.startswith(
        "Stopping: after its current batch it ends without a model, as it has trained for less than a minute")
    # Past a minute of training it keeps what it has learned, its first epoch unfinished.
    rundir.append_metric(run.path, {"kind": "batch", "epoch": 1, "step": 9, "steps": 13, "elapsed_s": 61.0,
                                    "loss": 2.0, "accuracy": 0.2})
    board.invalidate()
    at = page(watch=run.id)
    assert at.get("progress")[0].proto.text.startswith("Stopping: after its current batch it keeps and tests")


def test_all_training_pictures_says_how_many_are_kept_aside_for_sure(page):
    from cifar_core.config import MAX_TRAIN_IMAGES
    at = page()
    subset = next(w for w in at.selectbox if w.key == "train_quick_train_subset")
    kept = TrainConfig.from_preset("quick").calibration_images
    assert f"All {MAX_TRAIN_IMAGES - kept:,} ({kept:,} more kept aside)" in subset.options


def test_a_continued_runs_own_epochs_are_counted_from_the_board_not_its_file_again(tiny_env, monkeypatch):
    """Moving the replay slider of a long continued run re-read its whole metrics file (0.15 s a read)."""
    from app_pages import learning_parts
    run = runs.create(TrainConfig(epochs=2, batch_size=100, name="more"), owner="me")
    rundir.write_json(run.path / rundir.CONFIG, {**run.config, "initial_model": "parent.keras"})   # as a continued run
    rundir.append_metric(run.path, {"kind": "epoch", "epoch": 1, "elapsed_s": 5.0, "loss": 1.5, "accuracy": 0.4,
                                    "test_loss": 1.4, "test_accuracy": 0.45})
    board.invalidate()
    board.current()
    monkeypatch.setattr(runs.Run, "metrics", lambda self: pytest.fail("the metrics file read again"))
    assert learning_parts.epoch_words(runs.get(run.id), [1, 2, 3, 4], 4)[0].startswith(
        "**What it sees after its epoch 1** (4 counting")


def test_a_continued_runs_snapshots_are_counted_as_its_progress_counts_them():
    """A continued run starts with its parent's snapshots: until its own first epoch, the newest is the
    parent's, and the live view says so; after it, the heading counts its own epochs, as its progress bar
    and curves do, and the parent's too."""
    from types import SimpleNamespace

    from app_pages import learning_parts

    def run(own_epochs):        # made before continued runs said their earlier epochs: counted from records
        return SimpleNamespace(id=f"not on the board {own_epochs}", config={"initial_model": "parent.keras"},
                               state="running", status={}, metrics=lambda: [{"kind": "epoch"}] * own_epochs)
    parents = "Epoch 3 was trained by the run this one continues"
    heading, note = learning_parts.epoch_words(run(0), [1, 2, 3], 3)     # its first epoch, under way
    assert heading == "**What it sees after epoch 3**" and note.startswith(parents)
    heading, note = learning_parts.epoch_words(run(1), [1, 2, 3, 4], 3)
    assert note.startswith(parents)
    assert learning_parts.epoch_words(run(1), [1, 2, 3, 4], 4) == (
        "**What it sees after its epoch 1** (4 counting the run it continues)", None)
    assert learning_parts.epoch_words(run(2), [1, 2, 3, 4, 5], 5)[0].startswith("**What it sees after its epoch 2**")
    fresh = SimpleNamespace(config={}, status={}, metrics=lambda: [])
    assert learning_parts.epoch_words(fresh, [1], 1) == ("**What it sees after epoch 1**", None)
    # Its own first snapshot written, its epoch's record not yet on the board (up to a tick behind): the
    # count it was made with holds, where the records' count took the new snapshot for the parent's.
    said = SimpleNamespace(id="said", config={"initial_model": "parent.keras"}, state="running",
                           status={runs.EARLIER_EPOCHS: 3}, metrics=lambda: [])
    # None of its own yet: not "its own epochs are 4 to 3"; ended so, it has none to come.
    waiting = SimpleNamespace(id="waiting", config={"initial_model": "parent.keras"}, state="queued",
                              status={runs.EARLIER_EPOCHS: 3}, metrics=lambda: [])
    assert learning_parts._continued_note(waiting, [1, 2, 3]) == (
        " Epochs count from the start of the run it continues, and all of these are that run's: this run's own "
        "snapshots appear after each of its epochs.")
    failed = SimpleNamespace(**{**waiting.__dict__, "state": "failed"})
    assert "ended before an epoch of its own, so it has no snapshots of its own" in learning_parts._continued_note(failed, [1, 2, 3])
    assert learning_parts.epoch_words(failed, [1, 2, 3], 3)[1].endswith("so it has no snapshots of its own.")
    assert learning_parts._continued_note(said, [1, 2, 3, 4, 5]) == (
        " Epochs count from the start of the run it continues: its own epochs are 4 to 5.")
    assert learning_parts.epoch_words(said, [1, 2, 3, 4], 4) == (
        "**What it sees after its epoch 1** (4 counting the run it continues)", None)


def test_a_teachers_pause_is_a_toggle_and_students_are_told_why_they_cannot_start(page, monkeypatch):
    at = page()
    assert not [t for t in at.toggle if t.key == "train_hold"]      # a student has no such switch
    as_teacher(at, monkeypatch)
    at.run()
    next(t for t in at.toggle if t.key == "train_hold").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert runs.starts_on_hold()
    student = page()
    assert any("The teacher has paused new runs for now" in i.value for i in student.info)
    # The page's first sentence says what can be done meanwhile, not "press Start training" alone.
    def try_first() -> str:
        return " ".join(c.value.replace("\\", "") for c in student.caption)
    assert guide.PAGES["train"].paused_try in try_first() and guide.PAGES["train"].class_try not in try_first()
    student.button(key="FormSubmitter:new_run-Start training").click().run()
    assert any("The teacher has paused new runs for now" in e.value for e in student.error)
    next(t for t in at.toggle if t.key == "train_hold").set_value(False).run()
    assert not runs.starts_on_hold()
    student.run()
    assert guide.PAGES["train"].class_try in try_first()
    assert not any("The teacher has paused new runs" in i.value for i in student.info)
    # Paused and allowed again from elsewhere (another teacher, another tab): this switch follows the server.
    runs.hold_starts(True, admin=True)
    at.run()
    assert next(t for t in at.toggle if t.key == "train_hold").value is True
    runs.hold_starts(False, admin=True)
    at.run()
    assert next(t for t in at.toggle if t.key == "train_hold").value is False
    assert not at.exception, [e.value for e in at.exception]


def test_clearing_every_run_when_the_runs_folder_cannot_be_changed_says_so_in_a_sentence(page, monkeypatch):
    at = page()
    as_teacher(at, monkeypatch)
    at.run()

    def busy(admin):
        raise runs.RunError("The runs folder is busy just now; try again in a moment.")
    monkeypatch.setattr(runs, "clear", busy)
    at.button(key="train_clear_all").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == ["The runs folder is busy just now; try again in a moment."]


def test_a_batch_too_big_for_the_servers_memory_is_refused_under_the_batch_size(page, monkeypatch):
    """A server in a 1.5 GB container, of which the app holds 0.5 GB: a batch of 4,096 cannot train there."""
    from cifar_core import trainer_memory
    monkeypatch.setattr(trainer_memory, "limit_mb", lambda: 1_500.0)
    monkeypatch.setattr(trainer_memory, "resident_mb", lambda pid="self": 500.0)
    at = page()
    next(n for n in at.number_input if n.label == "Batch size").set_value(4096)
    at.button(key="FormSubmitter:new_run-Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (refused,) = [e.value for e in at.error]
    need = trainer_memory.gb(trainer_memory.estimate_mb(TrainConfig.from_preset("quick", batch_size=4096)), math.ceil)
    assert refused.startswith(f"A batch of 4,096 pictures needs about {need} of memory to train this network, more "
                              "than this server can give a trainer (0.9 GB): choose a batch of at most ")
    assert runs.list_runs() == []


def test_the_board_is_made_once_for_every_time_zone_and_says_each_its_own_time(page, monkeypatch):
    """Every browser's board says when Start was pressed in its own time zone. The runs' rows are made once
    for all of them: a script naming zone after zone made every run's row again for the whole class."""
    from app_pages import common
    run = ended_run([0.6], [1.2], [1.5])
    rundir.update_status(run.path, created=1_796_148_800.0)        # 2026-12-01 18:13:20 UTC
    summaries = []
    real_summary = runs.Run.summary
    monkeypatch.setattr(runs.Run, "summary", lambda self, *a, **k: summaries.append(self.id) or real_summary(self, *a, **k))
    pressed = {}
    for zone in ("Asia/Tokyo", "America/New_York", "Europe/Paris", "Australia/Sydney", "Asia/Tokyo"):
        monkeypatch.setattr(common, "visitor_zone", lambda zone=zone: zone)
        at = page()
        pressed[zone] = at.dataframe[0].value[runs.START_PRESSED].iloc[0]
    assert pressed["Asia/Tokyo"].endswith("03:13") and pressed["America/New_York"].endswith("13:13")
    assert pressed["Europe/Paris"].endswith("19:13") and pressed["Australia/Sydney"].endswith("05:13")
    assert len(summaries) <= 2          # once, or twice where the board's clock ticked on in between


def test_compared_curves_are_built_once_for_every_board_showing_them(page, monkeypatch):
    """A live board refreshes every 10 s for everyone on the Train page; with runs selected it built their
    chart anew each time (0.19 s of CPU), most of a core for a class, and, with a run training, on every
    refresh still (its points change every second). The chart is built once per set of runs; only its
    points are made again, once per change."""
    from cifar_core import charts
    ended_run([0.6, 0.7], [1.2, 1.0], [1.5, 1.1], name="first")
    second = ended_run([0.65], [1.1], [1.4], name="second")
    built, points = [], []
    real, frame = charts.curve_panels, charts.curve_frame
    monkeypatch.setattr(charts, "curve_panels", lambda *a, **k: built.append(1) or real(*a, **k))
    monkeypatch.setattr(charts, "curve_frame", lambda metrics, *a, **k: points.append(len(metrics)) or frame(
        metrics, *a, **k))
    for _ in range(3):                  # three students, or one board's three refreshes
        at = page()
        at.session_state["train_board"] = {"selection": {"rows": [0, 1], "columns": []}}
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Line charts of loss" in c.proto.alt for c in at.get("vega_lite_chart"))
    assert len(built) == 1
    rundir.append_metric(second.path, {"kind": "epoch", "epoch": 2, "elapsed_s": 60.0, "loss": 1.0, "accuracy": 0.6,
                                       "test_loss": 1.0, "test_accuracy": 0.7})
    board.invalidate()
    made = len(points)
    at.run()
    assert not at.exception and len(built) == 1            # a new record: the same chart...
    assert len(points) > made and max(points[made:]) > 1    # ...with its points made again, the new one in them


def test_a_failed_run_that_kept_a_model_can_be_continued(page):
    """Its failure says the last checkpoint is kept (a trainer killed for memory, a cluster node gone),
    but only finished and stopped runs could go on from theirs: the student could only start again."""
    from prepared_runs import finished_run
    run = finished_run("killed in epoch 3")
    rundir.update_status(run.path, state="failed", error="The trainer was killed.")
    board.invalidate()
    at = page()
    at.session_state["train_board"] = {"selection": {"rows": [0], "columns": []}}     # picked in the table
    at.run()
    assert "its last finished epoch" in at.number_input(key=f"more_{run.id}").help
    at.button(key=f"continue_{run.id}").click().run()
    assert not at.exception and at.session_state["train_watch"] != run.id
    assert runs.get(at.session_state["train_watch"]).name == "killed in epoch 3 (continued)"


def test_a_run_whose_time_left_outlasts_its_turn_says_when_its_turn_ends(tiny_env, monkeypatch):
    """A 200-epoch run read "about 1 h 40 min left" while others waited, though its turn would stop it
    20 minutes from its start: only the Start form named the turn."""
    monkeypatch.setenv("CIFAR_RUN_TURN_MINUTES", "20")

    def running_line(run_id):
        from app_pages import train_parts
        from cifar_core import board, runs
        run = runs.get(run_id)
        train_parts.status_line(run, board.current().metrics_of(run_id))

    long = runs.create(TrainConfig(arch="airbench_tiny", epochs=200, batch_size=8), owner="eve", takes_turns=True)
    rundir.update_status(long.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()),
                         started=rundir.now() - 10 * 60, train_images=800)
    for epoch in (1, 2):
        rundir.append_metric(long.path, {"kind": "batch", "epoch": epoch, "step": 100, "steps": 100,
                                         "elapsed_s": 60.0 * epoch, "wall_s": 60.0 * epoch, "loss": 1.0, "accuracy": 0.5})
        rundir.append_metric(long.path, {"kind": "epoch", "epoch": epoch, "elapsed_s": 60.0 * epoch,
                                         "wall_s": 60.0 * epoch, "loss": 1.0, "accuracy": 0.5, "test_loss": 1.0,
                                         "test_accuracy": 0.5, "images_per_s": 800.0, "test_s": 1.0})
    board.invalidate()
    text = AppTest.from_function(running_line, args=(long.id,), default_timeout=60).run().get("progress")[0].proto.text
    assert "left" in text and "turn" not in text                  # nobody else waits: it never stops
    runs.create(TrainConfig(arch="airbench_tiny", epochs=1, batch_size=8), owner="bob")     # someone else waits
    board.invalidate()
    text = AppTest.from_function(running_line, args=(long.id,), default_timeout=60).run().get("progress")[0].proto.text
    import re
    assert re.search(r" · others are waiting: its turn ends in \d+ min \d\d s, when it stops", text)


def test_a_run_picked_on_the_board_can_be_stopped_by_its_owner_or_a_teacher(page, monkeypatch):
    """Stop was only for the run the live view showed: a teacher's only way to end a student's run was
    "Clear all runs", which deleted the class's finished models too."""
    theirs = runs.create(TrainConfig(epochs=200, batch_size=8, name="hogging"), owner="someone-else")
    rundir.update_status(theirs.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()),
                         started=rundir.now(), train_images=100)
    board.invalidate()
    at = page()
    at.session_state["train_board"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not [b for b in at.button if b.key == f"board_stop_{theirs.id}"]      # not theirs to stop
    as_teacher(at, monkeypatch)
    at.run()
    at.button(key=f"board_stop_{theirs.id}").click().run()
    assert not at.exception and rundir.stop_requested(theirs.path)
    assert [t.value for t in at.toast] == ["Asked to stop after its current batch."]
    board.invalidate()
    at.run()
    assert at.button(key=f"board_stop_{theirs.id}").disabled                   # "Stopping", once asked


def test_only_a_runs_owner_or_a_teacher_is_offered_to_delete_it_and_continue_stays_within_the_limit(page, monkeypatch):
    """Delete showed on every ended run and then refused a classmate in a sentence; More epochs went to 200
    whatever the server's limit, and was refused only after Continue was pressed."""
    monkeypatch.setenv("CIFAR_MAX_EPOCHS", "20")
    theirs = ended_run([0.6], [1.2], [1.5], name="theirs")
    (theirs.path / rundir.MODEL).write_bytes(b"a checkpoint")
    board.invalidate()
    at = page()
    at.session_state["train_board"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key == f"delete_{theirs.id}"]
    assert at.number_input(key=f"more_{theirs.id}").max == 20
    as_teacher(at, monkeypatch)
    at.run()
    assert at.button(key=f"delete_{theirs.id}")


def test_a_waiting_run_is_cancelled_not_stopped(page, monkeypatch):
    """A waiting run's button said Stop, and its toast "Stopping after the current batch" of a run with none."""
    monkeypatch.setattr(runs, "_dispatch", lambda: None)      # it stays waiting: no trainer takes it meanwhile
    mine = runs.create(TrainConfig(epochs=3, batch_size=8, name="waiting"), owner="someone")
    at = page(watch=mine.id)
    as_teacher(at, monkeypatch)
    at.run()
    (cancel,) = [b for b in at.button if b.key == f"stop_{mine.id}"]
    assert cancel.label == "Cancel"
    cancel.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert runs.get(mine.id).state == "stopped"
    assert [t.value for t in at.toast] == ["Cancelled: it has left the queue."]


def test_a_server_a_class_shares_opens_train_on_the_recipe_made_for_a_class(page, monkeypatch):
    """Thirty students following "keep the Quick recipe" queued 24 minutes of runs (48 s each here); the
    recipe for a whole class takes about 20 s."""
    at = page()
    assert at.get("button_group")[0].value == "quick" and "Quick recipe" in at.caption[0].value
    monkeypatch.setenv("CIFAR_ADMIN_PASSWORD", "s3cret")
    at = page()
    assert at.get("button_group")[0].value == "class"
    assert "For a whole class recipe" in at.caption[0].value
    # The buttons say only the recipe's name (a whole sentence on a button was cut off on a phone), and the
    # line under them what it is.
    assert at.caption[1].value == "For a whole class: about 20 seconds each."
    assert train_parts.recipe_label("best") == "Best" and train_parts.recipe_label("mine") == "Mine"


def test_a_finished_run_is_tried_on_predict_with_one_press(page):
    """On a phone the sidebar's list of models is out of sight: the run's own button makes its model the one
    every page uses, for this tab and for the browser's next visit, and opens Predict."""
    from app_pages import common
    from cifar_core import remembered
    run = ended_run([0.6], [1.2], [1.5], name="mine to try")
    shutil.copyfile(inference.DEFAULT_MODEL, run.path / rundir.MODEL)
    board.invalidate()
    at = page(watch=run.id)
    [said] = [s.value for s in at.success]
    assert said.endswith("Try it with the button below, or pick it in the sidebar's list of models.")
    [button] = [b for b in at.button if b.label == "Try it on your own pictures"]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[common.ACTIVE_MODEL_KEY + common.PICKED] == run.id
    assert remembered.recall(common.identity.owner_id(at.session_state["owner"])) == run.id
    assert at.sidebar.selectbox[0].value == "Run mine to try (69.4%)"
    assert [t.value for t in at.title] == ["Try it on your own pictures"]      # Predict's


def test_a_runs_recipe_and_seed_are_said_under_its_name(tiny_env):
    # The seed repeats a run with its settings; "changed", as on the board: the recipe's name alone would
    # call a run of other settings by it.
    plain = runs.create(TrainConfig.from_preset("class", seed=7), owner="x")
    changed = runs.create(TrainConfig.from_preset("class", epochs=3, seed=8), owner="x")
    assert train_parts.run_said(plain) == "Recipe: For a whole class · seed 7"
    assert train_parts.run_said(changed) == "Recipe: For a whole class, changed · seed 8"
    assert changed.summary()["recipe"] == "class (changed)" and plain.summary()["recipe"] == "class"


@pytest.mark.parametrize("route", [False, True], ids=["buttons", "links"])
def test_each_picked_runs_buttons_are_in_a_box_of_their_own(page, monkeypatch, route):
    """One under another, a run's More epochs stood under the Continue of the run above, as if it were that
    run's: each run's name and buttons now sit in a bordered box of their own. Its downloads are links where
    the server has its downloads route (app.py), buttons where it has not (studio.py alone)."""
    from app_pages import run_downloads
    from app_pages.common import plain
    monkeypatch.setattr(run_downloads, "installed", route)
    ran = [ended_run([0.6], [1.2], [1.5], name=name) for name in ("first", "second")]
    at = page()
    at.session_state["train_board"] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    def boxes(block):
        if getattr(block, "type", None) == "flex_container" and block.proto.flex_container.border:
            yield block
        for child in getattr(block, "children", {}).values():
            yield from boxes(child)
    held = [([m.value for m in box.get("markdown")],
             [b.proto.label for kind in ("download_button", "link_button") for b in box.get(kind)])
            for box in boxes(at.main)]
    assert sorted(held) == sorted(([f"**{plain(run.name)}** · finished"], ["Report (.html)"]) for run in ran)
