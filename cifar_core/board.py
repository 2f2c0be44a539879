"""The runs directory as every session of one server sees it: one snapshot, taken once per tick.

Every page shows runs: the sidebar's model list, the Train page's board and its
live view, which reruns every 1.5 s for every visitor watching. Read by each
session on each rerun, that was every run's status, settings and metrics parsed
again, under the runs lock, per visitor per rerun: with a class watching, most
of a server core spent reading files that had not changed.

Here one process-wide `Snapshot` holds every run (`runs.Run`, newest first) and
its metrics records. `refresh()` takes a new one: it looks at each run's files
(a `stat` each) and parses only those whose modification time or size changed
since the last snapshot, reusing the rest. The runs watcher thread
(`runs.watch`) refreshes it once per tick, after reconciling; pages call
`current()`, which returns it without touching the disk. A change made by this
process (a run started, stopped or deleted) calls `invalidate()`, so the next
`current()` refreshes at once and a visitor sees their own Start on the next
rerun, not a tick later.

`Snapshot.version` counts the snapshots whose content differed from the one
before: a live view that has drawn version v has nothing new to draw until it
changes.
"""
from __future__ import annotations

import functools
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cifar_core import queue_wait, rundir, settings

TICK_S = 1.0     # how often the watcher refreshes: a trainer writes a progress record about once a second
WATCHED = (rundir.CONFIG, rundir.STATUS, rundir.METRICS, rundir.MODEL, rundir.SNAPSHOTS)


def _stamp(run_path: Path) -> tuple:
    """What changes when any file a page shows of this run changes: each one's mtime and size."""
    stamp = []
    for name in WATCHED:
        try:
            info = os.stat(run_path / name)
            stamp.append((info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


@dataclass(frozen=True)
class Snapshot:
    runs_dir: Path
    runs: tuple = ()                                  # runs.Run, newest first
    metrics: dict = field(default_factory=dict)      # run id -> tuple of its metrics records
    stamps: dict = field(default_factory=dict)       # run id -> _stamp() when it was read
    readers: dict = field(default_factory=dict)      # run id -> its rundir.MetricsReader, kept between snapshots
                                                     # while it trains (an ended run's records are `thinned`)
    version: int = 0
    taken: float = 0.0                               # time.monotonic() of the refresh

    def get(self, run_id: str):
        """The run called `run_id` as of this snapshot, or None."""
        return next((r for r in self.runs if r.id == run_id), None)

    def metrics_of(self, run_id: str) -> list[dict]:
        return list(self.metrics.get(run_id, ()))

    def queued_ahead(self, run_id: str) -> list | None:
        """The queued runs ahead of `run_id`, next to start first; None if it is not queued."""
        queued = queue_wait.in_turn(self.runs, time.time())
        ids = [r.id for r in queued]
        return queued[:ids.index(run_id)] if run_id in ids else None

    @functools.cached_property
    def expected_starts(self) -> dict[str, float]:
        """When each queued run can expect a trainer (a time.time()), by run id, where it can be told
        (`queue_wait`): worked out once a snapshot, whoever of the class is waiting."""
        now, config = time.time(), settings.get()
        if config.runs_backend == "ray":      # the cluster decides, its queued runs marked so or not yet
            return {}
        stopping = {r.id for r in self.runs if r.state == "running" and rundir.stop_requested(r.path)}
        waits = queue_wait.expected_starts(self.runs, self.metrics_of, config.max_concurrent_runs,
                                           config.run_turn_minutes * 60, now, stopping)
        return {run_id: now + wait for run_id, wait in waits.items()}

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start, 2 for the one after, ...; None if not queued."""
        ahead = self.queued_ahead(run_id)
        return None if ahead is None else len(ahead) + 1


ENDED_BATCH_RECORDS = 300   # an ended run's running training figures kept for its curves: ample for a chart


def thinned(records: tuple) -> tuple:
    """An ended run's records as the board keeps them: every epoch record, and of the batch records (about
    one a second of training) at most about ENDED_BATCH_RECORDS, evenly spread, with each epoch's last.
    Every server process holds every kept run's records: a long run's thousands were a megabyte each, a
    gigabyte with a semester's runs, and less room for the batches Start allows (`trainer_memory`)."""
    batches = [i for i, r in enumerate(records) if r.get("kind") == "batch"]
    if len(batches) <= ENDED_BATCH_RECORDS:
        return records
    keep = set(batches[::math.ceil(len(batches) / ENDED_BATCH_RECORDS)])
    keep |= {i for i, j in zip(batches, batches[1:] + [None])
             if j is None or records[j].get("epoch") != records[i].get("epoch")}
    return tuple(r for i, r in enumerate(records) if r.get("kind") != "batch" or i in keep)


_lock = threading.Lock()
_current: Snapshot | None = None
_stale = threading.Event()     # set by invalidate(): this process changed a run


def refresh() -> Snapshot:
    """Take a new snapshot of the runs directory, re-reading only the runs whose files changed."""
    from cifar_core import runs     # runs imports board for invalidate(); the cycle is broken here
    global _current
    with _lock:
        _stale.clear()
        folder = runs.runs_dir()
        previous = _current if _current is not None and _current.runs_dir == folder else Snapshot(folder)
        known = {r.id: r for r in previous.runs}
        found, metrics, stamps, readers = [], {}, {}, {}
        try:
            entries = [e for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except OSError:
            entries = []
        for entry in entries:
            path = Path(entry.path)
            stamp = _stamp(path)
            if stamp[0] is None:
                continue                 # no config.json: not a run (or one being created)
            reader = previous.readers.get(entry.name) or rundir.MetricsReader(path)
            if entry.name in known and previous.stamps.get(entry.name) == stamp:
                run, records = known[entry.name], previous.metrics[entry.name]
            else:
                run, records = runs._read(path), reader.read()
                if run.state not in rundir.ACTIVE:
                    records = thinned(records)
            found.append(run)
            metrics[run.id], stamps[run.id] = records, stamp
            if run.state in rundir.ACTIVE:      # an ended run's file is read whole again if it ever changes
                readers[run.id] = reader
        found.sort(key=lambda r: r.queue_order, reverse=True)
        changed = stamps != previous.stamps
        _current = Snapshot(folder, tuple(found), metrics, stamps, readers,
                            previous.version + changed, time.monotonic())
        return _current


def current() -> Snapshot:
    """The latest snapshot, without reading anything, unless there is none yet, this process has just
    changed a run, the runs directory setting changed, or no watcher has refreshed it for several ticks."""
    snapshot = _current
    if (snapshot is None or _stale.is_set() or snapshot.runs_dir != settings.get().runs_dir
            or time.monotonic() - snapshot.taken > 5 * TICK_S):
        return refresh()
    return snapshot


def invalidate() -> None:
    """This process has just changed a run: the next `current()` reads the directory again."""
    _stale.set()
