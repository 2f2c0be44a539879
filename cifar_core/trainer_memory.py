"""How much memory a training run will take, and how much this machine (or its container) can give it.

A trainer keeps every layer's output for the backward pass, so its memory
grows with the batch a visitor picks: from under 1 GB to about 6 GB for the
widest network at a batch of 4,096. Measured peaks lie close to a straight
line per network and precision (`benchmarks/trainer_memory.py` measures them
and prints this estimate beside each). The runs queue budgets with it
(`runs`): a run that could never fit here is refused at Start in a sentence
that names a batch that fits, and a run waits in the queue while the runs
already training would leave it too little, instead of starting and being
ended by the kernel half-way (or ending another student's run).

Memory here is what Linux says is available (MemAvailable: free memory plus
the caches it can drop), and a container's own limit where it has one (a
memory cgroup, version 1 or 2): a school's server is often a container on a
bigger machine, whose /proc/meminfo shows the machine's memory, not its share.
Elsewhere than Linux nothing is known and nothing is refused or held back.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from cifar_core.config import TrainConfig
from cifar_core.devices import cpu_bfloat16
from cifar_core.process_memory import memory_mb

# Peak resident memory of a `python -m cifar_core train` process in MB as (at no batch, per picture of a
# batch), per network and size of number, measured on the 2-core AMD EPYC (Zen 5) with batches of 256 and
# 2,048 (docs/measured.md). The part at no batch is TensorFlow, the data set and the network's weights.
PER_NETWORK: dict[str, dict[int, tuple[float, float]]] = {
    "tutorial": {32: (791, 0.367), 16: (789, 0.216)},
    "airbench": {32: (988, 1.537), 16: (1002, 1.119)},
    "airbench_small": {32: (899, 1.135), 16: (881, 0.610)},
    "airbench_tiny": {32: (863, 0.682), 16: (859, 0.359)},
    "airbench16": {32: (801, 0.240), 16: (799, 0.172)},
    "airbench16_mini": {32: (790, 0.172), 16: (794, 0.107)},
}
MARGIN = 1.15      # the estimate is this much above the line: libraries, allocators and machines differ
CGROUP = Path("/sys/fs/cgroup")
NO_LIMIT = 1 << 60   # cgroup v1 writes "no limit" as a number near 2**63


def bits(config: TrainConfig) -> int:
    """16 where the trainer will compute in 16-bit numbers, else 32 (`devices.precision_for`, which cannot
    be asked here without TensorFlow: "auto" is bfloat16 on CPUs that have it)."""
    if config.precision == "auto":
        return 16 if cpu_bfloat16() else 32
    return 16 if config.precision in ("mixed_bfloat16", "mixed_float16") else 32


def _line(config: TrainConfig) -> tuple[float, float]:
    """(MB at no batch, MB per picture) for `config`'s network and numbers; a network not measured: the widest's."""
    lines = PER_NETWORK.get(config.arch) or max(PER_NETWORK.values(), key=lambda by_bits: by_bits[32][1])
    return lines[bits(config)]


def estimate_mb(config: TrainConfig) -> float:
    """The most memory a trainer of `config` should take, in MB. On a GPU the batch's part lives in the GPU's
    own memory, so there it is more than the trainer takes of the machine's."""
    at_no_batch, per_picture = _line(config)
    return MARGIN * (at_no_batch + per_picture * config.batch_size)


def largest_batch(config: TrainConfig, room_mb: float) -> int:
    """The largest batch (a multiple of 32, or 1 to 32) whose estimate fits in `room_mb`; 0 if none does."""
    at_no_batch, per_picture = _line(config)
    batch = math.floor((room_mb / MARGIN - at_no_batch) / per_picture)
    return max(0, batch if batch < 32 else batch // 32 * 32)


def _read(path) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _meminfo_mb(field: str) -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _number(path: Path) -> int | None:
    text = _read(path).strip()
    return int(text) if text.isdigit() else None


def _cgroups() -> list[tuple[int, int, int]]:
    """(limit, usage, reclaimable cache) in bytes of each memory cgroup this process is in, itself and
    those above it, that sets a limit."""
    found = []
    for line in _read("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            # Version 2: one tree. Past memory.max the kernel ends a process; past memory.high it holds the
            # whole group back to reclaim, so a trainer there would crawl: both count as the limit.
            root, limits, names = CGROUP, ("memory.max", "memory.high"), ("memory.current", "inactive_file")
        elif "memory" in controllers.split(","):   # version 1: a memory tree of its own
            root, limits, names = (CGROUP / "memory", ("memory.limit_in_bytes",),
                                   ("memory.usage_in_bytes", "total_inactive_file"))
        else:
            continue
        parts = Path(path.strip()).parts[1:]
        # From its own group up to the root; in a container the path may be the host's, not mounted here.
        for depth in range(len(parts), -1, -1):
            folder = root.joinpath(*parts[:depth])
            limit = min([n for n in (_number(folder / name) for name in limits) if n is not None], default=None)
            usage = _number(folder / names[0])
            if limit is None or usage is None or limit >= NO_LIMIT:
                continue
            stat = dict(row.split() for row in _read(folder / "memory.stat").splitlines() if len(row.split()) == 2)
            found.append((limit, usage, int(stat.get(names[1], 0))))
    return found


def limit_mb() -> float | None:
    """All the memory this machine, or the container it runs in, has: None where that is not known."""
    total = _meminfo_mb("MemTotal")
    limits = [limit / 2**20 for limit, _, _ in _cgroups()]
    return min([m for m in (total, *limits) if m is not None], default=None)


def available_mb() -> float | None:
    """The memory a new process could take now without anything being ended: None where that is not known."""
    available = _meminfo_mb("MemAvailable")
    rooms = [(limit - usage + cache) / 2**20 for limit, usage, cache in _cgroups()]
    return min([m for m in (available, *rooms) if m is not None], default=None)


def resident_mb(pid: int | str = "self") -> float:
    """A process's resident memory in MB, this one's by default (0 once it has gone)."""
    return memory_mb(pid)[0]


def gb(mb: float, rounding=round) -> str:
    """MB as GB to a tenth, rounded by `rounding` (math.ceil for a need, math.floor for what there is)."""
    return f"{rounding(mb / 102.4) / 10:.1f} GB"


def refusal(config: TrainConfig, room_mb: float | None = None, continuing: bool = False,
            where: str = "this server can give a trainer") -> str | None:
    """Why a run of `config` could never train here, in a sentence; None when it could (or when this
    machine's memory is not known). `room_mb`: the most a trainer could have; by default this machine's
    (or its container's) memory less what the server itself holds, which stays taken while it trains.
    `continuing`: the run goes on from another with the same batch, which cannot be changed there."""
    if room_mb is None:
        limit = limit_mb()
        if limit is None:
            return None
        room_mb = limit - resident_mb()
    need = estimate_mb(config)
    if need <= room_mb:
        return None
    batch = largest_batch(config, room_mb)
    if batch and continuing:
        fix = f"start a new run with a batch of at most {batch:,} instead"
    elif batch:
        fix = f"choose a batch of at most {batch:,}"
    elif any(largest_batch(dataclasses.replace(config, arch=arch), room_mb) for arch in PER_NETWORK):
        fix = "choose a smaller network"
    else:
        fix = "no network fits, so please tell whoever runs it"
    whose = "This run's batch" if continuing else "A batch"
    return (f"{whose} of {config.batch_size:,} pictures needs about {gb(need, math.ceil)} of memory to train this "
            f"network, more than {where} ({gb(room_mb, math.floor)}): {fix}.")


# What a warm worker keeps once its run has ended (TensorFlow and the data set), at most: the largest part of
# any network's line at no batch, which also holds its weights and the batch's buffers.
KEPT_BY_WORKER_MB = max(line[0] for lines in PER_NETWORK.values() for line in lines.values())


@dataclasses.dataclass
class Trainer:
    """One of our trainers here: its run (None for a worker tidying up after a run, which holds what it holds
    and will give it back), its settings (None for such a worker) and the MB it holds now."""
    run: str | None
    config: TrainConfig | None
    held_mb: float

    def coming_mb(self) -> float:
        """What it may still take: its estimate less what it holds."""
        return 0.0 if self.config is None else max(0.0, estimate_mb(self.config) - self.held_mb)

    def freed_mb(self, kept_mb: float) -> float:
        """What comes back once it has ended, the estimate it may grow to counted as taken, less what a warm
        worker keeps (`kept_mb`)."""
        return max(0.0, (self.held_mb if self.config is None else estimate_mb(self.config)) - kept_mb)


@dataclasses.dataclass
class Room:
    """Memory as one pass over the queue sees it, read once: what is available now, and our trainers here
    with what each holds now. Trainers may still grow to their estimates."""
    available_mb: float | None
    training: list[Trainer]

    @classmethod
    def now(cls, training: list[tuple[str | None, TrainConfig | None, int]]) -> Room:
        """From our trainers as (run, settings, pid)."""
        return cls(available_mb(), [Trainer(run, config, resident_mb(pid)) for run, config, pid in training])

    def _spare(self, config: TrainConfig, taker_mb: float) -> float:
        """The MB left over if a run of `config` started now (negative: short), what the trainers have yet to
        take set aside; `taker_mb`: what the warm worker that would train it already holds, part of its
        estimate."""
        return self.available_mb - sum(t.coming_mb() for t in self.training) - (estimate_mb(config) - taker_mb)

    def fits(self, config: TrainConfig, taker_mb: float = 0.0) -> bool:
        """Whether a run of `config` can start now without memory running out."""
        return self.available_mb is None or self._spare(config, taker_mb) >= 0

    def may_pass(self, waiting: TrainConfig, passed: set[str], config: TrainConfig, taker_mb: float = 0.0,
                 kept_mb: float = 0.0) -> bool:
        """Whether a run of `config` may start before `waiting`, a run ahead of it in the queue, without keeping
        it waiting any longer. `passed`: the runs training now that started before it from behind it.

        `waiting` starts once enough of the other trainers have ended, whichever end first; after any of those
        endings that would have let it start, it must still fit with this run training too, and once all of
        them have ended as well (not only the passed ones would be left to wait for). Each ending gives back
        the trainer's estimate, less `kept_mb` for a warm worker that stays; after any ending one such worker
        is there to train the waiting run, what it keeps part of that run's estimate. A handful of trainers:
        every combination of them is tried."""
        if self.available_mb is None:
            return True
        spare = self._spare(waiting, 0.0)     # negative: what it is short of now
        takes = estimate_mb(config) - taker_mb
        freed = [t.freed_mb(kept_mb) for t in self.training if t.run is None or t.run not in passed]
        if len(freed) > 12:
            return False
        after: set[float] = set()      # what comes back after each set of one or more endings
        for mb in freed:
            after |= {mb} | {s + mb for s in after}
        gains = {0.0} | {s + kept_mb for s in after}
        # No set of endings after which it would fit without this run and not with it; and it fits once all
        # of them have ended.
        return not any(0 <= spare + g < takes for g in gains) and spare + max(gains) >= takes

    def add(self, run: str, config: TrainConfig, held_mb: float = 0.0) -> None:
        """A trainer just started: it has all its estimate but `held_mb` yet to take."""
        self.training.append(Trainer(run, config, held_mb))
