"""When a waiting run starts: its turn among everyone's (`in_turn`), and a guess from how long runs of the
same recipes take on this server.

A place in the queue ("number 17") tells a student little: seventeen `class` runs are a few minutes,
seventeen `best` runs are the rest of the week. The guess plays the queue forward on this server's
trainers. Each running run frees its trainer when its own progress estimate says it ends, or soon after
a Stop (a batch, then its final checks: STOPPING_S), or when its turn does if someone else waits. Each
run ahead then holds a trainer as long as the latest runs of its recipe took on this server, start to end,
tests included (the median of LAST_RUNS); a recipe none of whose runs has finished here yet, as long as its
running runs are expected to take in all; a visitor's run at most its turn, where someone else waits
behind it. Where a run's length cannot be told either way, it still gets its own start, but the runs behind
it get none: a number made up would be worse than none. Pure but for the clock: runs in, seconds out.
"""
from __future__ import annotations

import heapq
import statistics
from collections import Counter

from cifar_core import progress as timing
from cifar_core import rundir

# Settings that do not change how long a run takes: a continued run's starting model, its name, its seed.
NOT_THE_RECIPE = frozenset({"name", "seed", "initial_model"})
LAST_RUNS = 5      # the latest finished runs of a recipe whose lengths are taken (median): the machine's load drifts
STOPPING_S = 30.0  # a stopped run's last batch and its final checks on the model (a few seconds for `class`)
SHARE_S = 3600.0   # a person's runs started within this long (a lesson) count against their next in the queue


def in_turn(runs, now: float) -> list:
    """The queued runs among `runs` in the order they start: people take turns. A person's run goes behind
    the waiting runs of everyone who has started fewer runs in the last SHARE_S (running ones included, and
    the person's own runs waiting ahead of it): a student's second run, queued before the class pressed
    Start, waited behind the first and was ahead of every classmate's, and with a turn of 20 minutes each,
    the class waited 40. Among equals, first come, first served (`Run.queue_order`)."""
    started = Counter(run.status.get("owner", "") for run in runs
                      if (at := timing.number(run.status.get("started"))) is not None and now - at < SHARE_S)
    waiting = sorted((r for r in runs if r.state == "queued"), key=lambda r: r.queue_order)
    ahead: Counter = Counter()
    turns = []
    for run in waiting:
        owner = run.status.get("owner", "")
        turns.append((started[owner] + ahead[owner], run.queue_order, run))
        ahead[owner] += 1
    return [run for *_, run in sorted(turns, key=lambda turn: turn[:2])]


def recipe(config: dict) -> tuple:
    """What decides a run's length: every setting but NOT_THE_RECIPE, in a comparable form."""
    return tuple(sorted((key, repr(value)) for key, value in config.items() if key not in NOT_THE_RECIPE))


def _rough(config: dict) -> tuple:
    """A cheap first look at a recipe: runs that differ here are never of one recipe (a board of 1,000
    finished runs is looked over once a second while anyone waits)."""
    return config.get("preset"), config.get("arch"), config.get("epochs"), config.get("batch_size")


def _timed_here(run) -> bool:
    """Whether a run's length says anything of this server's: trained by it, not on a cluster or on another
    machine sharing the runs folder."""
    return run.status.get("backend") != "ray" and run.status.get("host", rundir.HOST) == rundir.HOST


def _typical(runs, waiting: list, progress: dict) -> dict[tuple, float]:
    """How long a run of each recipe among `waiting` (runs) takes here, in seconds: the median of the
    latest LAST_RUNS finished ones, else of what the running ones are expected to take in all."""
    wanted, rough = {recipe(r.config) for r in waiting}, {_rough(r.config) for r in waiting}
    lengths: dict[tuple, list[float]] = {}
    for run in sorted((r for r in runs if r.state == "finished"), key=lambda r: r.status.get("ended") or 0,
                      reverse=True):
        if _rough(run.config) in rough and _timed_here(run):
            key = recipe(run.config)
            # From leaving the queue to its end, tests included; none (or nothing) where its times are amiss.
            took = timing.wall_time(run.status)
            if key in wanted and len(kept := lengths.setdefault(key, [])) < LAST_RUNS and took:
                kept.append(took)
    expected: dict[tuple, list[float]] = {}
    for run in runs:
        p = progress.get(run.id)
        if p is not None and p.seconds_left is not None and p.elapsed_s is not None and _timed_here(run):
            expected.setdefault(recipe(run.config), []).append(p.elapsed_s + p.seconds_left)
    return {key: statistics.median(values) for key, values in {**expected, **lengths}.items() if values}


def expected_starts(runs, metrics_of, trainers: int, turn_s: float, now: float, stopping=frozenset()) -> dict[str, float]:
    """Seconds from `now` until each queued run can expect a trainer, by run id; a run is left out where
    its wait cannot be told. `runs`: every run (runs.Run), in any order; `metrics_of(run_id)`: its records;
    `trainers`: how many train at once; `turn_s`: a visitor's turn while others wait (0: none);
    `stopping`: the ids of running runs asked to stop."""
    running = [r for r in runs if r.state == "running"]
    queued = in_turn(runs, now)
    if any(r.status.get("backend") == "ray" or r.status.get("waiting_for_mb") for r in running + queued):
        return {}     # a cluster's scheduler, or memory, decides the order: no line to play forward
    progress = {r.id: timing.estimate(r.config, r.status, metrics_of(r.id), now) for r in running}
    typical = _typical(runs, running + queued, progress)

    def turn_cap(run, length: float, trained: float, behind) -> float:
        """A visitor's run ends at its turn (from its trainer's start) when someone else's run waits behind it."""
        others = {r.status.get("owner", "") for r in behind} - {run.status.get("owner", "")}
        if run.status.get("takes_turns") and turn_s and others:
            return min(length, max(0.0, turn_s - trained) + STOPPING_S)
        return length

    ends = []
    for run in running:
        p = progress[run.id]
        left = p.seconds_left
        if left is None and (length := typical.get(recipe(run.config))) is not None:
            left = max(0.0, length - (p.elapsed_s or 0.0))
        if run.id in stopping:
            left = min(left, STOPPING_S) if left is not None else STOPPING_S
        if left is None:
            return {}
        started = timing.number(run.status.get("started"))
        trained = now - started if started is not None else 0.0
        ends.append(turn_cap(run, left, trained, queued))
    heapq.heapify(ends)
    starts, clock = {}, 0.0
    for i, run in enumerate(queued):
        while len(ends) >= max(1, trainers):
            clock = max(clock, heapq.heappop(ends))
        starts[run.id] = clock
        length = typical.get(recipe(run.config))
        if length is None:
            break
        heapq.heappush(ends, clock + turn_cap(run, length, 0.0, queued[i + 1:]))
    return starts


def roughly(seconds: float) -> str:
    """A guess as people say one: "in less than a minute", "in about 4 min", "in about 2 h 10 min"."""
    if seconds < 60:
        return "in less than a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"in about {minutes} min"
    hours, minutes = divmod(round(minutes / 10) * 10, 60)
    return f"in about {hours} h" + (f" {minutes:02d} min" if minutes else "")
