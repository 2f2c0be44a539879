"""What a run's progress line and board row say: time left against a reference timeline, overfitting
spotted in words, the board's figures, and the training charts in %."""
import dataclasses
import json
import math

import pytest

from cifar_core import charts, overfitting, progress
from cifar_core.config import FIELD_HELP
from cifar_core.runs import Run


class Timeline:
    """A trainer as the run directory records it, with every phase's length known: start-up, then per
    epoch the steps, the checkpoint and test pass, then the final checks. `truth(t)` is the time left."""

    def __init__(self, epochs=10, steps=50, step_s=0.2, after_epoch_s=10.0, test_s=9.0, startup_s=8.0,
                 test_images=10_000, held_out=2_000, batch_size=100):
        self.epochs, self.steps, self.step_s, self.after_epoch_s = epochs, steps, step_s, after_epoch_s
        self.test_s, self.startup_s = test_s, startup_s
        self.final_s = progress.final_checks_s(test_s, test_images, held_out)
        self.config = {"epochs": epochs, "batch_size": batch_size, "calibration_images": held_out}
        self.status = {"state": "running", "started": 1000.0, "train_images": steps * batch_size,
                       "test_images": test_images, "calibration_images": held_out}
        self.end = 1000.0 + startup_s + epochs * (steps * step_s + after_epoch_s) + self.final_s

    def records_until(self, t: float) -> list[dict]:
        """Every record written by wall time `t` (seconds after the start), a batch record each step."""
        records, wall, elapsed = [], self.startup_s, 0.0
        for epoch in range(1, self.epochs + 1):
            for step in range(1, self.steps + 1):
                wall, elapsed = wall + self.step_s, elapsed + self.step_s
                if wall > t:
                    return records
                records.append({"kind": "batch", "epoch": epoch, "step": step, "elapsed_s": elapsed, "wall_s": wall,
                                "loss": 1.0, "accuracy": 0.5})
            wall += self.after_epoch_s
            if wall > t:
                return records
            records.append({"kind": "epoch", "epoch": epoch, "elapsed_s": elapsed, "wall_s": wall,
                            "test_s": self.test_s, "loss": 1.0, "accuracy": 0.5, "test_loss": 1.0,
                            "test_accuracy": 0.5, "images_per_s": 500.0})
        return records

    def estimate(self, t: float) -> progress.Progress:
        return progress.estimate(self.config, self.status, self.records_until(t), now=1000.0 + t)


def test_time_left_counts_the_test_passes_and_the_final_checks():
    # The tutorial's shape: an epoch's test pass takes as long as its training. The old estimate
    # (training time only) said about 41 s at epoch 2 where about 200 s were left.
    run = Timeline(epochs=10, steps=50, step_s=0.2, after_epoch_s=10.0, test_s=9.0)
    for t in (29.0, 40.0, 77.0, 150.0, 203.0):     # mid-epoch, in a test pass, between epochs
        truth = run.end - (1000.0 + t)
        left = run.estimate(t).seconds_left
        assert left == pytest.approx(truth, rel=0.02), (t, left, truth)
    p = run.estimate(33.0)
    assert p.epoch == 2 and p.phase == "training" and p.fraction == pytest.approx(33 / (run.end - 1000), rel=0.02)
    assert run.estimate(8.0 + 10.0 + 5.0).phase == "testing"


def test_before_the_first_epoch_ends_the_test_pass_is_estimated_from_the_training_speed():
    run = Timeline(epochs=4, steps=100, step_s=0.2)
    # A test pass forwards 10,000 pictures at FORWARD_SPEEDUP times the training speed (500 pictures/s).
    test_s = progress.PASS_SETUP_S + 10_000 / (500 * progress.FORWARD_SPEEDUP)
    run.after_epoch_s, run.test_s = test_s + progress.CHECKPOINT_S, test_s
    run.final_s = progress.final_checks_s(test_s, 10_000, 2_000)
    run.end = 1000.0 + run.startup_s + 4 * (100 * 0.2 + run.after_epoch_s) + run.final_s
    p = run.estimate(18.0)                         # half-way through epoch 1
    assert p.epochs_done == 0 and p.images_per_s == pytest.approx(500)
    assert p.seconds_left == pytest.approx(run.end - 1018.0, rel=0.02)
    # A trainer that timed a batch of its test pass as it started: that speed, not the guess.
    run.status["test_s_per_picture"] = 0.004
    timed = run.estimate(18.0).seconds_left
    longer_pass = progress.PASS_SETUP_S + 10_000 * 0.004 - test_s        # each of 4 passes, and the final checks
    assert timed - p.seconds_left == pytest.approx((4 + 1.4) * longer_pass)


def test_on_the_tiny_data_the_time_left_comes_true(tiny_env, monkeypatch):
    """A real trainer (start-up, test passes, final checks): each estimate made once two epochs were done,
    while at least a quarter of the run was still to come, against when the run really ended. (After
    the first epoch alone an estimate has only that epoch's steps to go by, the trainer's warm-up among
    them: here a second or two of a run of fifteen, and estimates 39-42% long on a quiet machine, where
    a preset's minute-long epochs average it out: benchmarks/time_left.py.)

    2,000 test pictures, so that, as in the presets, testing takes about as long as training (an
    estimate from training alone was off by half). The epochs last seconds here, so a busy machine
    moves each by a good share: on a quiet one the median error was 3-5% (12-35% long while the final
    checks were thought to need half a second to set up), so it must stay within 25%. The presets,
    whose epochs last minutes, stayed within 10% (benchmarks/time_left.py), inside the 20% asked for."""
    import statistics
    import time

    from cifar_core import runs
    from cifar_core.config import TrainConfig
    from conftest import write_tiny_archive
    monkeypatch.setenv("CIFAR10_DATA", str(write_tiny_archive(tiny_env / "tested.tar.gz", test=2000)))

    def errors_of_one_run() -> list[float]:
        # 10 epochs: on a quick machine 4 ended 1.6 s after the first, too soon after start-up to leave
        # four readings between the second and the last quarter.
        run = runs.start(TrainConfig(arch="airbench_tiny", epochs=10, batch_size=4, precision="float32"))
        readings, deadline = [], time.monotonic() + 600
        while (current := runs.get(run.id)).state in ("queued", "running") and time.monotonic() < deadline:
            now = time.time()
            p = current.progress(now=now)
            if p["epochs_done"] >= 2 and p["seconds_left"] is not None:
                readings.append((now, p["seconds_left"]))
            time.sleep(0.2)  # often: on a quick machine the window between the second epoch and the last quarter is 2 s
        assert current.state == "finished", current.status.get("error")
        ended, began = current.status["ended"], current.status.get("launched") or current.status["started"]
        assert current.progress()["elapsed_s"] == pytest.approx(ended - began)
        errors = [abs(left - (ended - now)) / (ended - now) for now, left in readings
                  if ended - now >= (ended - began) / 4]
        assert len(errors) >= 4, readings
        return errors

    # A stall of the machine's own (a shared CI host once paused this 25 s run for about 7 s) makes every
    # estimate before it short, and no estimator can foresee it: the best of three runs is judged. An
    # estimator that is wrong is wrong in all three.
    tries = []
    for _ in range(3):
        tries.append(errors_of_one_run())
        if statistics.median(tries[-1]) <= 0.25:
            break
    assert statistics.median(tries[-1]) <= 0.25, [[f"{e:.0%}" for e in errors] for errors in tries]

def test_a_run_that_has_not_trained_a_step_has_no_estimate_and_an_ended_one_none_left():
    config = {"epochs": 3, "batch_size": 10}
    starting = progress.estimate(config, {"state": "running", "started": 100.0, "train_images": 100}, [], now=112.0)
    assert starting.phase == "starting" and starting.seconds_left is None and starting.elapsed_s == 12.0
    ended = progress.estimate(config, {"state": "finished", "started": 100.0, "ended": 160.0}, [], now=999.0)
    assert ended.seconds_left == 0 and ended.elapsed_s == 60.0 and ended.fraction == 1.0
    queued = progress.estimate(config, {"state": "queued"}, [], now=999.0)
    assert queued.phase == "queued" and queued.elapsed_s is None


def test_the_board_row_shows_live_progress_and_never_none(tmp_path):
    run = Timeline(epochs=10, steps=50)
    metrics = run.records_until(33.0)              # half-way through epoch 2
    row = Run("r1", tmp_path, {"epochs": 10, "batch_size": 100, "preset": "tutorial", "name": "live"},
              {**run.status, "created": 1000.0}).summary(metrics, now=1033.0)
    assert row["epochs"] == "1.5 / 10" and row["time"] == "33 s" and row["of which testing"] == "9 s"
    assert row["test accuracy"] == "–"
    assert not any(value is None or "None" in str(value) for value in row.values()), row
    ended = Run("r2", tmp_path, {"epochs": 2, "batch_size": 100}, {
        "state": "finished", "started": 1000.0, "ended": 1225.0, "testing_s": 135.0, "test_accuracy": 0.69444,
        "train_images": 5000, "created": 999.0}).summary(Timeline(epochs=2).records_until(1e9), now=5000.0)
    assert ended["test accuracy"] == "69.4%" and ended["time"] == "3 min 45 s"
    assert ended["of which testing"] == "2 min 15 s" and ended["epochs"] == "2 / 2"


def test_the_board_says_when_a_run_changed_its_recipe(tmp_path):
    """A "quick" run whose student changed the network and the epochs is not quick's recipe: the board says so.
    A name, the device or a continued run's epochs and learning rate are no change to the recipe."""
    from cifar_core.config import TrainConfig

    def recipe(config: TrainConfig) -> str:
        return Run("r", tmp_path, config.to_dict(), {"state": "queued", "created": 1.0}).summary([], now=2.0)["recipe"]
    assert recipe(TrainConfig.from_preset("quick", name="mine", precision="float32")) == "quick"
    as_saved = json.loads(json.dumps(TrainConfig.from_preset("class").to_dict()))       # its tuples now lists
    assert Run("r", tmp_path, as_saved, {"state": "queued", "created": 1.0}).summary([], now=2.0)["recipe"] == "class"
    assert recipe(TrainConfig.from_preset("quick", arch="tutorial", epochs=10)) == "quick (changed)"
    assert recipe(TrainConfig.from_preset("quick", epochs=5, initial_model="/runs/a/model.keras")) == "quick"
    # Continue, as the app does it: more epochs from a lower learning rate, twice over
    from cifar_core import runs
    for preset in ("quick", "class", "best", "airbench94"):
        once = TrainConfig.from_preset(preset, epochs=3, initial_model="/runs/a/model.keras")
        once = dataclasses.replace(once, **runs.going_on(once))
        twice = dataclasses.replace(once, **runs.going_on(once))
        assert runs.going_on(once) and recipe(once) == recipe(twice) == preset
    assert recipe(TrainConfig(arch="tutorial")) == "tutorial"
    older = {**TrainConfig.from_preset("best").to_dict(), "retired_setting": 1}     # written by an older version
    assert Run("r", tmp_path, older, {"state": "queued", "created": 1.0}).summary([], now=2.0)["recipe"] == "best"


def test_the_board_says_when_start_was_pressed_in_the_visitors_time_zone(tmp_path):
    """A server in a container keeps UTC; a class reads its own clock. Only a zone this machine knows is
    taken from a browser: anything else is the server's."""
    pressed = 1_796_148_800.0      # 2026-12-01 18:13:20 UTC
    run = Run("r", tmp_path, {"epochs": 1, "batch_size": 100}, {"state": "queued", "created": pressed})
    assert run.summary([], now=pressed, zone="UTC")["Start pressed"] == "01 Dec 18:13"
    assert run.summary([], now=pressed, zone="Asia/Kolkata")["Start pressed"] == "01 Dec 23:43"
    assert run.summary([], now=pressed, zone="America/New_York")["Start pressed"] == "01 Dec 13:13"
    for sent in ("../../etc/passwd", "/etc/localtime", "Mars/Olympus", "", "x" * 10_000, None, 3, ["UTC"]):
        assert progress.known_zone(sent) is None
    assert progress.known_zone("Europe/Paris") == "Europe/Paris"
    assert run.summary([], now=pressed)["Start pressed"] == progress.clock(pressed)     # the server's own


def test_a_run_nearly_done_never_reads_as_done_while_it_still_works(tmp_path):
    """98 steps of 100 is "0.9 / 1" on the board, not "1 / 1"; an estimate that ran out while the run
    still works says so, not "about 0 s left"."""
    from app_pages.train_parts import progress_text
    run = Timeline(epochs=1, steps=100)
    row = Run("r", tmp_path, {"epochs": 1, "batch_size": 100}, {**run.status, "created": 1000.0}).summary(
        run.records_until(8.0 + 98 * 0.2 + 0.05), now=1028.0)
    assert row["epochs"] == "0.9 / 1"
    late = progress.estimate(run.config, run.status, run.records_until(1e9), now=run.end + 30)
    said = progress_text(dataclasses.asdict(late))
    # Past the checks it counts, it names the search that follows them, so the bar says what it still does:
    # not late (the estimate leaves the search out), and one epoch, not "1 epochs".
    assert late.seconds_left == 0 and said.startswith("Its one epoch done: ") and said.endswith(" · finishing")
    assert "then finding what its maps answer most (for Look inside)" in said and "longer than expected" not in said
    training_late = dataclasses.replace(late, phase="training")
    assert progress_text(dataclasses.asdict(training_late)).endswith("taking longer than expected, nearly done")
    assert "about 30 s left" in progress_text(dataclasses.asdict(
        progress.estimate(run.config, run.status, run.records_until(1e9), now=run.end - 30)))


def test_durations_read_as_people_say_them():
    assert [progress.duration(s) for s in (None, math.nan, 0.4, 59.6, 61, 3599, 3725)] == \
        ["–", "–", "0 s", "1 min 00 s", "1 min 01 s", "59 min 59 s", "1 h 02 min"]


def epochs(*rows):
    """Epoch records from (training loss, test loss, test accuracy) rows."""
    return [{"kind": "epoch", "epoch": i + 1, "elapsed_s": 10.0 * (i + 1), "loss": loss, "accuracy": 0.5,
             "test_loss": test_loss, "test_accuracy": test_accuracy, "images_per_s": 1.0}
            for i, (loss, test_loss, test_accuracy) in enumerate(rows)]


def test_overfitting_is_flagged_when_training_improves_and_the_test_gets_worse():
    found = overfitting.detect(epochs((1.5, 1.2, 0.60), (1.0, 0.90, 0.70), (0.8, 0.95, 0.69), (0.6, 1.05, 0.67)))
    assert found is not None and found.accuracy_fell and found.loss_rose
    assert found.first_epoch == 2 and found.last_epoch == 4
    assert found.test_accuracy == (0.70, 0.67) and found.test_loss == (0.90, 1.05) and found.train_loss == (1.0, 0.6)
    assert (found.best_epoch, found.best_accuracy) == (2, 0.70)
    only_loss = overfitting.detect(epochs((1.0, 0.90, 0.70), (0.8, 0.93, 0.71), (0.6, 1.00, 0.71)))
    assert only_loss is not None and only_loss.loss_rose and not only_loss.accuracy_fell


def test_overfitting_names_the_best_epoch_of_the_whole_run_and_the_training_loss_from_where_it_turned():
    """Test accuracy 60, 70, 68, 69, 67%: the window (epochs 3-5) turned after epoch 4, but the best
    model of the run was after epoch 2."""
    found = overfitting.detect(epochs((1.5, 1.2, 0.60), (1.0, 0.90, 0.70), (0.9, 0.95, 0.68), (0.8, 0.93, 0.69),
                                      (0.6, 1.05, 0.67)))
    assert found is not None and found.first_epoch == 4 and found.train_loss == (0.8, 0.6)
    assert (found.best_epoch, found.best_accuracy) == (2, 0.70)


@pytest.mark.parametrize("rows", [
    [(1.5, 1.2, 0.60), (1.0, 0.9, 0.70), (0.8, 0.8, 0.74)],          # both getting better: learning
    [(0.6, 0.9, 0.70), (0.8, 1.0, 0.66), (1.0, 1.1, 0.62)],          # both getting worse: not overfitting
    [(1.0, 0.900, 0.700), (0.9, 0.905, 0.698), (0.8, 0.910, 0.697)],  # changes below the noise
    [(1.0, 0.9, 0.70), (0.8, 1.2, 0.60)],                            # too few epochs to tell
    # The training loss fell, then rose again past where the test turned: a rate too high, not overfitting
    # (it was said to have "kept falling", 0.500 to 0.900)
    [(1.0, 1.0, 0.60), (0.5, 0.9, 0.65), (0.9, 1.2, 0.58)],
])
def test_overfitting_is_not_flagged_otherwise(rows):
    assert overfitting.detect(epochs(*rows)) is None


def test_every_train_field_says_what_raising_or_lowering_it_does():
    numbers = ("epochs", "batch_size", "learning_rate", "train_subset")
    for field in numbers:
        assert "Raise it:" in FIELD_HELP[field] and "Lower it:" in FIELD_HELP[field], field
    assert "On:" in FIELD_HELP["augment"] and "Off:" in FIELD_HELP["augment"]
    for field in ("arch", "optimizer", "name", *numbers, "augment"):
        assert "\n" not in FIELD_HELP[field] and len(FIELD_HELP[field]) < 300


def metrics_of(epochs_count=3):
    records = []
    for e in range(1, epochs_count + 1):
        records += [{"kind": "batch", "epoch": e, "step": s, "elapsed_s": e * 10 + s, "loss": 2 / e,
                     "accuracy": 0.3 + 0.1 * e} for s in (1, 2)]
        records.append({"kind": "epoch", "epoch": e, "elapsed_s": e * 10 + 2, "loss": 2 / e, "accuracy": 0.3 + e / 10,
                        "test_loss": 1.0, "test_accuracy": 0.5, "images_per_s": 1.0})
    return records


def test_accuracy_is_drawn_in_percent_and_a_colour_is_a_run_on_every_chart():
    import pandas as pd
    one = charts.training_curves(charts.curve_frame(metrics_of(), "a")).to_dict()
    accuracy = one["hconcat"][1]["layer"][0]["encoding"]["y"]
    assert accuracy["axis"]["format"] == ".0%"
    # One run: both its lines in the first compared run's colour, told apart by dash (and the test dots).
    for panel in one["hconcat"]:
        assert [layer["encoding"]["color"] for layer in panel["layer"][:2]] == [{"value": charts.RUN_COLOURS[0]}] * 2
        assert panel["layer"][0]["encoding"]["strokeDash"]["legend"]["symbolStrokeColor"] == charts.RUN_COLOURS[0]
    both = pd.concat([charts.curve_frame(metrics_of(), "a"), charts.curve_frame(metrics_of(2), "b")])
    spec = charts.training_curves(both, colour_by="run").to_dict()
    for panel in spec["hconcat"]:
        for layer in panel["layer"][:2]:       # lines and test dots both coloured by their run
            assert layer["encoding"]["color"]["field"] == "run"
        assert all(layer["mark"]["opacity"] == 0 for layer in panel["layer"][2:])     # accuracy's bounds: unseen
        assert panel["layer"][0]["encoding"]["strokeDash"]["field"] == "series"    # training or test: the dash
    colour = spec["hconcat"][0]["layer"][0]["encoding"]["color"]
    assert colour["scale"]["domain"] == ["a", "b"]
    assert len(set(colour["scale"]["range"][:2])) == 2 and colour["legend"] is not None


def test_an_epoch_is_its_whole_batches_when_the_pictures_do_not_divide():
    # best: 49,000 pictures in batches of 1,024 are 47 steps an epoch (872 pictures wait for the next shuffle).
    config, status = {"batch_size": 1024}, {"state": "running", "train_images": 49_000}
    batch = {"kind": "batch", "epoch": 2, "elapsed_s": 1.0, "wall_s": 1.0, "loss": 1.0, "accuracy": 0.5}
    assert progress.epochs_trained(config, status, [dict(batch, step=47)]) == 2.0
    assert progress.epochs_trained(config, status, [dict(batch, step=23)]) == pytest.approx(1 + 23 / 47)
