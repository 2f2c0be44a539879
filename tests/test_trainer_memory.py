"""A trainer's memory, estimated before it starts, and the queue that budgets with it (`trainer_memory`)."""
import dataclasses
import importlib.util
import math
import os
import re
import subprocess
import sys
import time

import pytest

from cifar_core import rundir, runs, trainer_memory
from cifar_core.config import TrainConfig
from test_runs import small, wait_for


def measured_peak_mb(arch: str, batch: int, precision: str, archive) -> float:
    """The trainer's own peak, as benchmarks/trainer_memory.py measures it."""
    path = runs.PACKAGE_ROOT / "benchmarks" / "trainer_memory.py"
    spec = importlib.util.spec_from_file_location("trainer_memory_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark.peak_mb(arch, batch, precision, archive)[0]


@pytest.mark.parametrize("arch, batch, precision", [("airbench_small", 1024, "float32"),
                                                    ("airbench16_mini", 512, "mixed_bfloat16")])
def test_a_real_trainers_peak_is_under_its_estimate_and_near_it(real_archive, arch, batch, precision):
    """The whole data set, as a server's trainer loads it."""
    peak = measured_peak_mb(arch, batch, precision, real_archive)
    estimate = trainer_memory.estimate_mb(TrainConfig(arch=arch, batch_size=batch, precision=precision))
    assert peak < estimate < 1.4 * peak


def test_bigger_batches_and_wider_networks_need_more_and_16_bits_less():
    need = lambda **changes: trainer_memory.estimate_mb(TrainConfig(**{"precision": "float32", **changes}))
    assert need(arch="airbench", batch_size=256) < need(arch="airbench", batch_size=4096)
    assert need(arch="airbench16_mini", batch_size=4096) < need(arch="airbench", batch_size=4096)
    assert need(arch="airbench", batch_size=4096, precision="mixed_bfloat16") < need(arch="airbench", batch_size=4096)
    config = TrainConfig(arch="airbench", batch_size=4096, precision="float32")
    fits = trainer_memory.largest_batch(config, 3_000)
    assert fits % 32 == 0
    assert trainer_memory.estimate_mb(TrainConfig(arch="airbench", batch_size=fits, precision="float32")) <= 3_000
    assert trainer_memory.estimate_mb(TrainConfig(arch="airbench", batch_size=fits + 32, precision="float32")) > 3_000
    assert trainer_memory.largest_batch(config, 500) == 0


def inside(group, code: str) -> str:
    """What `code` prints, run in a Python process inside the memory cgroup `group`."""
    script = f"echo $$ > {group}/cgroup.procs && exec {sys.executable} -c \"$0\""
    out = subprocess.run(["sh", "-c", script, code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(runs.PACKAGE_ROOT)}, cwd=runs.PACKAGE_ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_in_a_container_its_own_limit_counts_not_the_machines(small_memory):
    """A school's server in a 1.3 GB container on a bigger machine: /proc/meminfo shows the machine's memory."""
    limit, available = map(float, inside(small_memory, "from cifar_core import trainer_memory as t; "
                                                       "print(t.limit_mb(), t.available_mb())").split())
    assert limit == pytest.approx(1300, abs=1)
    assert 0 < available < 1300


def test_on_cgroup_v2_the_lower_of_max_and_high_counts_from_its_group_up(tmp_path, monkeypatch):
    """This machine has cgroup v1, so version 2's files are laid out as the kernel writes them: a school's
    container (memory.max 4 GB) inside a slice whose memory.high is 3 GB, where a trainer would crawl."""
    for folder, files in {"school": {"memory.max": "max", "memory.high": str(3 << 30),
                                     "memory.current": str(2 << 30), "memory.stat": "anon 1\ninactive_file 0\n"},
                          "school/app": {"memory.max": str(4 << 30), "memory.high": "max",
                                         "memory.current": str(1 << 30),
                                         "memory.stat": f"anon 1\ninactive_file {256 << 20}\n"}}.items():
        (tmp_path / folder).mkdir(parents=True)
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text + "\n")
    read = trainer_memory._read
    monkeypatch.setattr(trainer_memory, "_read", lambda path: "0::/school/app\n" if str(path) == "/proc/self/cgroup"
                        else read(path))
    monkeypatch.setattr(trainer_memory, "CGROUP", tmp_path)
    assert trainer_memory._cgroups() == [(4 << 30, 1 << 30, 256 << 20), (3 << 30, 2 << 30, 0)]
    assert trainer_memory.limit_mb() == 3072
    assert trainer_memory.available_mb() == 1024     # the slice's 3 GB less its 2 GB, under the app's 3.25 GB


def test_a_run_that_could_never_fit_is_refused_in_a_sentence_naming_a_batch_that_fits(tiny_env, small_memory):
    code = ("from cifar_core import runs, trainer_memory as t; from cifar_core.config import TrainConfig\n"
            "try:\n"
            "    runs.start(TrainConfig(arch='airbench_tiny', batch_size=4096, precision='float32'), owner='a')\n"
            "except runs.RunError as e:\n"
            "    print(e)\n"
            "print(len(runs.list_runs()))")
    refused, listed = inside(small_memory, code).strip().splitlines()
    need = trainer_memory.gb(trainer_memory.estimate_mb(TrainConfig(arch="airbench_tiny", batch_size=4096,
                                                                    precision="float32")), math.ceil)
    assert re.fullmatch(rf"A batch of 4,096 pictures needs about {need} of memory to train this network, more than "
                        r"this server can give a trainer \(1\.[12] GB\): choose a batch of at most [\d,]+\.", refused)
    assert listed == "0"        # nothing was made
    fits = int(refused.rsplit(" ", 1)[1].rstrip(".").replace(",", ""))
    assert 0 < fits < 4096
    assert inside(small_memory, "from cifar_core import trainer_memory as t; from cifar_core.config import "
                                f"TrainConfig; print(t.refusal(TrainConfig(arch='airbench_tiny', batch_size={fits}, "
                                "precision='float32')))").strip() == "None"


def test_a_run_waits_while_the_running_ones_would_leave_it_too_little(tiny_env, monkeypatch):
    """Two trainers may run at once, but memory is short: the second waits, saying how much it needs, and
    starts once the first has ended. The first starts whatever memory is left: nothing of ours would free any."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "2")
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 100.0)
    first = runs.start(small(epochs=100), owner="a")
    second = runs.start(small(epochs=1), owner="b")
    assert [first.state, second.state] == ["running", "queued"]
    need = round(trainer_memory.estimate_mb(TrainConfig.from_dict(second.config)))
    assert second.status["waiting_for_mb"] == need
    runs.reconcile()
    assert runs.get(second.id).state == "queued"
    runs.stop(first.id, owner="a")
    wait_for(lambda: runs.get(second.id).state in ("running", "finished"), timeout=120, what="the second run to start")
    wait_for(lambda: runs.get(second.id).state == "finished", timeout=120, what="the second run to finish")
    assert rundir.read_status(second.path).get("waiting_for_mb") is None


def test_a_run_waiting_for_memory_says_so_only_while_a_trainer_is_free(tiny_env, monkeypatch):
    """Once every trainer is taken, the queue waits for a trainer: the memory figure written earlier, which
    the Train page reads aloud, is taken back, and written again when a trainer is free and memory is not."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "2")
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 100.0)
    first = runs.start(small(epochs=100), owner="a")
    second = runs.start(small(epochs=1), owner="b")
    assert second.status["waiting_for_mb"] > 0
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "1")       # the one trainer is taken
    runs.dispatch()
    assert runs.get(second.id).state == "queued"
    assert rundir.read_status(second.path).get("waiting_for_mb") is None
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "2")
    runs.dispatch()
    assert rundir.read_status(second.path).get("waiting_for_mb") == second.status["waiting_for_mb"]
    runs.stop(first.id, owner="a")
    runs.stop(second.id, owner="b")
    wait_for(lambda: runs.get(first.id).state == "stopped", what="the first run to stop")


def test_memory_enough_for_both_starts_both(tiny_env, monkeypatch):
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "2")
    # Enough for both, whatever the other test worker holds meanwhile: that both then start is what is tested.
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 4 * trainer_memory.estimate_mb(small()))
    first = runs.start(small(epochs=100), owner="a")
    second = runs.start(small(epochs=100), owner="b")
    assert [first.state, second.state] == ["running", "running"]
    for run in (first, second):
        runs.stop(run.id, owner=run.status["owner"])
    wait_for(lambda: all(r.state == "stopped" for r in runs.list_runs()), what="both to stop")


def test_runs_started_in_one_pass_count_each_other(tiny_env, monkeypatch):
    """Three trainers allowed, memory for one and a half: of three runs waiting, one starts; the next one
    counts it, though it started a moment ago and holds nothing yet."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "3")
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 1.5 * trainer_memory.estimate_mb(small()))
    waiting = []
    for name in "abc":
        waiting.append(runs.create(small(epochs=100), owner=name))
        time.sleep(0.01)        # the queue's order is the order they were made in, to the millisecond
    runs.dispatch()
    assert [runs.get(r.id).state for r in waiting] == ["running", "queued", "queued"]
    assert runs.get(waiting[1].id).status["waiting_for_mb"] == round(trainer_memory.estimate_mb(small()))
    assert "waiting_for_mb" not in runs.get(waiting[2].id).status      # behind it, in turn
    for run in waiting:
        runs.stop(run.id, admin=True)
    wait_for(lambda: all(r.state == "stopped" for r in runs.list_runs()), what="everything to stop")


@pytest.mark.parametrize("first_run, passes", [("big", True), ("little", False)])
def test_a_small_run_passes_one_waiting_for_memory_only_where_that_costs_it_no_wait(tiny_env, monkeypatch,
                                                                                 first_run, passes):
    """Three trainers allowed; a run trains, a big run waits for memory behind it, a little one comes next.
    Memory for the big run and the little one together: where the run training is big, the little one goes
    first, since the big one will fit beside it once the first has ended. Where the run training is little,
    the little one would fit now, but would then keep the big one waiting after the first has ended: it
    waits its turn."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "3")
    little = small(epochs=100)
    big = dataclasses.replace(little, arch="airbench")
    need = trainer_memory.estimate_mb
    assert need(big) > need(little) + 20
    monkeypatch.setattr(trainer_memory, "resident_mb", lambda pid="self": 0.0)    # each has all its estimate to take
    free = need(big) + need(little) + 10 if passes else 2 * need(little) + 10
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: free)
    training = runs.start(big if first_run == "big" else little, owner="a")
    waiting = runs.start(big, owner="b")
    behind = runs.start(little, owner="c")
    assert [runs.get(r.id).state for r in (training, waiting)] == ["running", "queued"]
    assert runs.get(waiting.id).status["waiting_for_mb"] == round(need(big))
    assert runs.get(behind.id).state == ("running" if passes else "queued")
    runs.reconcile()
    assert [runs.get(r.id).state for r in (waiting, behind)] == ["queued", "running" if passes else "queued"]
    for run in (training, waiting, behind):
        runs.stop(run.id, admin=True)
    wait_for(lambda: all(r.state == "stopped" for r in runs.list_runs()), what="everything to stop")


def test_a_run_may_not_pass_where_an_ending_that_would_start_the_waiting_one_then_would_not(monkeypatch):
    """Cases found in review, in MB: the waiting run needs 6,000 and the run behind it 1,200."""
    sizes = {"o1": 5000, "o2": 1200, "head": 6000, "small": 1200, "tiny": 200}
    monkeypatch.setattr(trainer_memory, "estimate_mb", lambda config: sizes[config.name])
    named = {name: TrainConfig(name=name) for name in sizes}
    # One trainer near its end at 5,000 MB, one long one at 1,200, 1,200 free: with the small run passing,
    # the first ending would leave the waiting run 5,000 instead of 6,200, and it would wait for the long one.
    room = trainer_memory.Room(1200, [trainer_memory.Trainer("o1", named["o1"], 5000),
                                      trainer_memory.Trainer("o2", named["o2"], 1200)])
    assert room.fits(named["small"]) and not room.fits(named["head"])
    assert not room.may_pass(named["head"], set(), named["small"])
    # Warm workers keep 900 MB each when their runs end, and only one of them trains the waiting run.
    room = trainer_memory.Room(4800, [trainer_memory.Trainer("o1", named["o2"], 1200),
                                      trainer_memory.Trainer("o2", named["o2"], 1200)])
    assert not room.may_pass(named["head"], set(), named["small"], kept_mb=900)
    # A run of 200 MB, 5,500 free: after either ending there is room for both, so it passes; but not where
    # both trainers passed the waiting run themselves, which then waits for them whatever this one does.
    room.available_mb = 5500
    assert not room.fits(named["head"])
    assert room.may_pass(named["head"], set(), named["tiny"], kept_mb=900)
    assert not room.may_pass(named["head"], {"o1", "o2"}, named["tiny"], kept_mb=900)


def test_the_runs_that_passed_a_waiting_one_are_those_its_status_says(tiny_env, monkeypatch):
    """In queue order: a run training (5,000 MB), a big one waiting for it (6,000), a small one that passed
    the big one and trains (1,200), and another small one (1,200) with 2,500 MB free. The first run's end
    would free enough for the big run and the newcomer both, so the newcomer may go; counted the other way
    round (the first run as the one that passed), the big run would then wait on the newcomer, which
    would be held back. Which passed is what each says as it starts, not the order runs were made in:
    people take turns in the queue, so a run made later is as often simply ahead."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "4")
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", "0")                 # a process per run: nothing kept after it
    sizes = {"first": 5000, "big": 6000, "passed": 1200, "newcomer": 1200}
    monkeypatch.setattr(trainer_memory, "estimate_mb", lambda config: sizes[config.name])
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 2500.0)
    launched = []
    monkeypatch.setattr(runs, "_launch", lambda run: launched.append(run.config["name"]))
    stand_ins = []
    try:
        made = {}
        for name in sizes:
            made[name] = runs.create(small(name=name), owner=name)
            time.sleep(0.01)        # the queue's order is the order they were made in, to the millisecond
        held = {}
        for name in ("first", "passed"):      # trainers of ours here, each holding its whole estimate
            stand_ins.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
            held[stand_ins[-1].pid] = sizes[name]
            rundir.update_status(made[name].path, state="running", pid=stand_ins[-1].pid, trainer="process",
                                 host=rundir.HOST, started=rundir.now(),
                                 **({runs.PASSED: [made["big"].id]} if name == "passed" else {}))
        monkeypatch.setattr(trainer_memory, "resident_mb", lambda pid="self": held.get(pid, 0.0))
        runs.dispatch()
        assert set(launched) == {"newcomer"}           # (once a pass: nothing here marks it running)
        assert runs.get(made["big"].id).status["waiting_for_mb"] == 6000
        assert runs.get(made["newcomer"].id).status[runs.PASSED] == [made["big"].id]     # says so in its turn
    finally:
        for process in stand_ins:
            process.kill()


def test_a_run_made_later_but_ahead_in_turn_did_not_pass_the_one_waiting(tiny_env, monkeypatch):
    """Ann's run waits for memory (600 MB, 300 free); Ben's (500), made after it but ahead of it in turn, and
    another (800) train. When Ben's ends, Ann's fits: a small run (250) starting now would take that room,
    so it waits. Counted by the order runs were made in, Ben's run had passed Ann's, and the small one went."""
    monkeypatch.setenv("CIFAR_MAX_CONCURRENT_RUNS", "4")
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", "0")
    sizes = {"other": 800, "ann": 600, "ben": 500, "small": 250}
    monkeypatch.setattr(trainer_memory, "estimate_mb", lambda config: sizes[config.name])
    monkeypatch.setattr(trainer_memory, "available_mb", lambda: 300.0)
    launched = []
    monkeypatch.setattr(runs, "_launch", lambda run: launched.append(run.config["name"]))
    stand_ins, held = [], {}
    try:
        made = {}
        for name in sizes:
            made[name] = runs.create(small(name=name), owner=name)
            time.sleep(0.01)
        for name in ("other", "ben"):
            stand_ins.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
            held[stand_ins[-1].pid] = sizes[name]
            rundir.update_status(made[name].path, state="running", pid=stand_ins[-1].pid, trainer="process",
                                 host=rundir.HOST, started=rundir.now())
        monkeypatch.setattr(trainer_memory, "resident_mb", lambda pid="self": held.get(pid, 0.0))
        runs.dispatch()
        assert launched == [] and runs.get(made["ann"].id).status["waiting_for_mb"] == 600
    finally:
        for process in stand_ins:
            process.kill()


def test_each_refusal_says_what_a_person_can_change():
    config = TrainConfig(arch="airbench", batch_size=4096, precision="float32")
    fits = trainer_memory.largest_batch(config, 3_000)
    assert trainer_memory.refusal(config, room_mb=3_000).endswith(f"(2.9 GB): choose a batch of at most {fits:,}.")
    assert trainer_memory.refusal(config, room_mb=3_000, continuing=True).startswith("This run's batch of 4,096")
    assert trainer_memory.refusal(config, room_mb=3_000, continuing=True).endswith(
        f"start a new run with a batch of at most {fits:,} instead.")
    assert trainer_memory.refusal(config, room_mb=1_000).endswith("(0.9 GB): choose a smaller network.")
    assert trainer_memory.refusal(config, room_mb=500).endswith("(0.4 GB): no network fits, so please tell whoever "
                                                                "runs it.")
    assert trainer_memory.refusal(config, room_mb=trainer_memory.estimate_mb(config)) is None
