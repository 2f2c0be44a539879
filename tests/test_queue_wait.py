"""When a waiting run can expect to start: the queue played forward on the server's trainers, from how
long runs of the same recipes took here, and no guess where a length cannot be told."""
from pathlib import Path

import pytest

from cifar_core import progress, queue_wait
from cifar_core.runs import Run

NOW = 10_000.0
CLASS = {"preset": "class", "epochs": 1, "batch_size": 100}
BEST = {"preset": "best", "epochs": 10, "batch_size": 512}


def finished(run_id, config, took, ended=NOW - 100):
    return Run(run_id, Path(run_id), {**config, "name": run_id, "seed": 3},
               {"state": "finished", "launched": ended - took, "started": ended - took + 2, "ended": ended})


def queued(run_id, config, created, owner="", takes_turns=True):
    return Run(run_id, Path(run_id), {**config, "name": run_id},
               {"state": "queued", "created": created, "owner": owner, "takes_turns": takes_turns})


def running(run_id, config, elapsed, step_s=0.1, steps=100, owner="", takes_turns=True):
    """A run `elapsed` seconds into one epoch of `steps` steps of `step_s` each, its test pass timed."""
    status = {"state": "running", "launched": NOW - elapsed, "started": NOW - elapsed, "train_images": steps * 100,
              "test_images": 1000, "calibration_images": 0, "test_s_per_picture": 0.0, "owner": owner,
              "takes_turns": takes_turns}
    records = [{"kind": "batch", "epoch": 1, "step": s, "elapsed_s": s * step_s, "wall_s": s * step_s}
               for s in range(1, int(elapsed / step_s) + 1)]
    return Run(run_id, Path(run_id), {**config, "batch_size": 100, "epochs": 1}, status), records


def starts(runs, records=None, trainers=1, turn_s=0, stopping=frozenset()):
    records = records or {}
    return queue_wait.expected_starts(runs, lambda i: records.get(i, []), trainers, turn_s, NOW, stopping)


def test_the_runs_ahead_take_as_long_as_their_recipe_took_here():
    trainer, records = running("now", CLASS, elapsed=4.0)      # 100 steps of 0.1 s: 6 s of training left
    waiting = [queued(f"q{i}", CLASS, created=i) for i in range(3)]
    done = [finished("old1", CLASS, 18.0), finished("old2", CLASS, 20.0, ended=NOW - 50), finished("old3", CLASS, 30.0)]
    got = starts([trainer, *waiting, *done], {"now": records})
    left = got["q0"]
    assert left == progress.estimate(trainer.config, trainer.status, records, NOW).seconds_left == pytest.approx(8.9)
    assert got["q1"] == pytest.approx(left + 20.0) and got["q2"] == pytest.approx(left + 40.0)   # the median


def test_people_take_turns_in_the_queue():
    """A run goes behind those of everyone who has started fewer runs in the last hour, its person's own
    waiting runs ahead of it counted: a student's second run no longer goes before the class's first."""
    ann, _ = running("a1", CLASS, elapsed=60, owner="ann")
    waiting = [queued("a2", CLASS, 1, owner="ann"), queued("b1", CLASS, 2, owner="ben"),
               queued("c1", CLASS, 3, owner="cy"), queued("a3", CLASS, 4, owner="ann"),
               queued("b2", CLASS, 5, owner="ben")]
    long_ago = Run("c0", Path("c0"), CLASS, {"state": "finished", "owner": "cy", "started": NOW - 2 * 3600})
    assert [r.id for r in queue_wait.in_turn([ann, *waiting, long_ago], NOW)] == ["b1", "c1", "a2", "b2", "a3"]
    lately = Run("c0", Path("c0"), CLASS, {"state": "finished", "owner": "cy", "started": NOW - 1800})
    assert [r.id for r in queue_wait.in_turn([ann, *waiting, lately], NOW)] == ["b1", "a2", "c1", "b2", "a3"]
    # The guesses follow the same order: one trainer, class runs of 20 s.
    got = starts([ann, *waiting, long_ago, finished("old", CLASS, 20.0)])
    assert got["b1"] < got["c1"] < got["a2"] < got["b2"] < got["a3"]


def test_two_trainers_take_the_queue_two_at_a_time():
    waiting = [queued(f"q{i}", CLASS, created=i) for i in range(5)]
    got = starts([*waiting, finished("old", CLASS, 20.0)], trainers=2)
    assert [got[f"q{i}"] for i in range(5)] == [0.0, 0.0, 20.0, 20.0, 40.0]


def test_no_guess_behind_a_run_whose_recipe_has_not_been_timed_here():
    waiting = [queued("q0", CLASS, 0), queued("q1", BEST, 1), queued("q2", CLASS, 2)]
    got = starts([*waiting, finished("old", CLASS, 20.0)])
    assert got == {"q0": 0.0, "q1": 20.0}      # q1's own start is known, not its length


def test_a_recipe_first_timed_by_its_running_run():
    trainer, records = running("now", CLASS, elapsed=4.0)
    got = starts([trainer, queued("q0", CLASS, 0), queued("q1", CLASS, 1)], {"now": records})
    assert got["q1"] - got["q0"] == pytest.approx(4.0 + 8.9)   # its 4 s behind it and 8.9 ahead


def test_a_running_run_not_yet_timed_leaves_no_guess():
    trainer, _ = running("now", BEST, elapsed=0.0)
    assert starts([trainer, queued("q0", CLASS, 0), finished("old", CLASS, 20.0)], {"now": []}) == {}


def test_a_visitors_long_run_ends_at_its_turn_when_someone_else_waits():
    waiting = [queued("long", BEST, 0, owner="ann"), queued("mine", CLASS, 1, owner="bob")]
    got = starts([*waiting, finished("old", BEST, 3_600.0)], turn_s=1_200)
    assert got["mine"] == 1_200.0 + queue_wait.STOPPING_S           # then its last batch and final checks
    # A teacher's run, or one whose owner is the only one waiting, keeps the trainer its whole length.
    waiting = [queued("long", BEST, 0, owner="ann", takes_turns=False), queued("mine", CLASS, 1, owner="bob")]
    assert starts([*waiting, finished("old", BEST, 3_600.0)], turn_s=1_200)["mine"] == 3_600.0
    waiting = [queued("long", BEST, 0, owner="ann"), queued("mine", CLASS, 1, owner="ann")]
    assert starts([*waiting, finished("old", BEST, 3_600.0)], turn_s=1_200)["mine"] == 3_600.0


def test_a_cluster_or_a_wait_for_memory_has_no_line_to_play_forward():
    ray = Run("q0", Path("q0"), CLASS, {"state": "queued", "created": 0, "backend": "ray"})
    assert starts([ray, finished("old", CLASS, 20.0)]) == {}
    short = Run("q0", Path("q0"), CLASS, {"state": "queued", "created": 0, "waiting_for_mb": 6_000})
    assert starts([short, finished("old", CLASS, 20.0)]) == {}


def test_only_finished_runs_time_a_recipe():
    stopped = Run("s", Path("s"), CLASS, {"state": "stopped", "launched": 0.0, "ended": 3.0})
    assert starts([queued("q0", CLASS, 0), queued("q1", CLASS, 1), stopped]) == {"q0": 0.0}


@pytest.mark.parametrize("seconds, said", [(0, "in less than a minute"), (59, "in less than a minute"),
                                           (150, "in about 2 min"), (89 * 60, "in about 89 min"),
                                           (2 * 3600 + 7 * 60, "in about 2 h 10 min"), (3 * 3600, "in about 3 h")])
def test_a_guess_is_said_roughly(seconds, said):
    assert queue_wait.roughly(seconds) == said


def test_a_run_asked_to_stop_frees_its_trainer_soon():
    """Stopped, a three-hour run ends after its batch and final checks: the runs behind it wait that long,
    not its three hours."""
    trainer, records = running("long", BEST, elapsed=300.0, step_s=100.0)
    assert starts([trainer, queued("q0", CLASS, 0)], {"long": records})["q0"] > 3_600
    assert starts([trainer, queued("q0", CLASS, 0)], {"long": records}, stopping={"long"})["q0"] == queue_wait.STOPPING_S


def test_a_running_visitors_turn_counts_from_its_trainers_start():
    """Its turn runs from the trainer's own start, not from leaving the queue (start-up in between)."""
    trainer, records = running("long", BEST, elapsed=100.0, step_s=20.0, owner="ann")
    trainer.status["started"] = NOW - 40.0          # 60 s of start-up before its first step
    got = starts([trainer, queued("q0", CLASS, 0, owner="bob")], {"long": records}, turn_s=1_200)
    assert got["q0"] == 1_200 - 40 + queue_wait.STOPPING_S


def test_only_this_servers_runs_time_a_recipe():
    """A cluster's runs, or another machine's sharing the folder, say nothing of this server's speed."""
    elsewhere = finished("gpu", CLASS, 2.0)
    elsewhere.status["host"] = "another-machine"
    cluster = finished("ray", CLASS, 3.0)
    cluster.status["backend"] = "ray"
    waiting = [queued("q0", CLASS, 0), queued("q1", CLASS, 1)]
    assert starts([*waiting, elsewhere, cluster]) == {"q0": 0.0}
    assert starts([*waiting, elsewhere, cluster, finished("here", CLASS, 20.0)])["q1"] == 20.0
