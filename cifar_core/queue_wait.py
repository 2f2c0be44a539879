"""When a waiting run can expect to start: a guess from how long runs of the same recipes took here.

A place in the queue ("number 17") tells a student little: seventeen `class` runs are a few minutes,
seventeen `best` runs are the rest of the week. The guess plays the queue forward on this server's
trainers: each running run frees its trainer when its own progress estimate says it ends (or when its
turn does, if others wait), and each run ahead of this one then holds a trainer as long as the last
runs of its recipe took here, start to end, tests included. Where a run's length cannot be told (no run
of its recipe has finished or been timed here yet) there is no guess for it or anyone behind it: a
number made up would be worse than none. Pure: runs and a clock in, seconds out.
"""
from __future__ import annotations

import heapq
import statistics

from cifar_core import progress as timing

# Settings that do not change how long a run takes: a continued run's starting model, its name, its seed.
NOT_THE_RECIPE = frozenset({"name", "seed", "initial_model"})
LAST_RUNS = 5      # the latest finished runs of a recipe whose lengths are taken (median): the machine's load drifts


def recipe(config: dict) -> tuple:
    """What decides a run's length: every setting but NOT_THE_RECIPE, in a comparable form."""
    return tuple(sorted((key, repr(value)) for key, value in config.items() if key not in NOT_THE_RECIPE))


def _took(status: dict) -> float | None:
    """A finished run's wall time from leaving the queue to its end, tests included."""
    ended, began = status.get("ended"), status.get("launched") or status.get("started")
    numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (ended, began))
    return ended - began if numbers and ended >= began else None


def expected_starts(runs, metrics_of, trainers: int, turn_s: float, now: float) -> dict[str, float]:
    """Seconds from `now` until each queued run can expect a trainer, by run id; a run is left out where
    its wait cannot be told. `runs`: every run (runs.Run), in any order; `metrics_of(run_id)`: its records;
    `trainers`: how many train at once; `turn_s`: a visitor's turn while others wait (0: none)."""
    running = [r for r in runs if r.state == "running"]
    queued = sorted((r for r in runs if r.state == "queued"), key=lambda r: r.queue_order)
    if any(r.status.get("backend") == "ray" or r.status.get("waiting_for_mb") for r in running + queued):
        return {}     # a cluster's scheduler, or memory, decides the order: no line to play forward

    lengths: dict[tuple, list[float]] = {}
    for run in sorted(runs, key=lambda r: r.status.get("ended") or 0, reverse=True):
        took = _took(run.status) if run.state == "finished" else None
        if took is not None and len(kept := lengths.setdefault(recipe(run.config), [])) < LAST_RUNS:
            kept.append(took)
    progress = {r.id: timing.estimate(r.config, r.status, metrics_of(r.id), now) for r in running}
    expected: dict[tuple, list[float]] = {}     # a recipe not finished here yet: what its first runs should take
    for run in running:
        p = progress[run.id]
        if p.seconds_left is not None and p.elapsed_s is not None:
            expected.setdefault(recipe(run.config), []).append(p.elapsed_s + p.seconds_left)
    typical = {key: statistics.median(values) for key, values in {**expected, **lengths}.items()}

    def turn_cap(run, length: float, elapsed: float, behind) -> float:
        """A visitor's run ends at its turn when someone else's run waits behind it."""
        others = {r.status.get("owner", "") for r in behind} - {run.status.get("owner", "")}
        return min(length, max(0.0, turn_s - elapsed)) if run.status.get("takes_turns") and turn_s and others else length

    ends = []
    for run in running:
        p = progress[run.id]
        left = p.seconds_left
        if left is None and (length := typical.get(recipe(run.config))) is not None:
            left = max(0.0, length - (p.elapsed_s or 0.0))
        if left is None:
            return {}
        ends.append(turn_cap(run, left, p.elapsed_s or 0.0, queued))
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
