"""How far a run has got and how long it has left, from what its run directory records.

A run's wall time, from its launch (status.json "launched", else "started")
to its end, is: start-up (importing, loading the data, building the network); then
per epoch, the training steps, a checkpoint, a test pass over the whole test
set and a snapshot; then the final checks on the saved model (calibration on
the held-out pictures and the final accuracy on the test set, both with
mirror test-time augmentation; the last test pass was the test set's
unmirrored part, so at most one forward pass a test picture is left, two a held-out one).

The estimate adds up what is left of each, timed where it has been seen:
training from the steps' own clock (`elapsed_s`), the after-epoch work from
the wall clock around the last finished epoch (`wall_s`, `test_s`), the
final checks from the speed of the last test pass. Before the first epoch
ends, from one batch of the test pass the trainer times as it starts
("test_s_per_picture"). Pure: records and a clock in, numbers out.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cifar_core.config import batches_per_epoch

# Where a trainer has not timed a batch of its test pass: pictures a second in a test pass (forwards
# only) over pictures a second in training. Measured on 2 busy CPU cores, float32, from 0.8 (the
# tutorial CNN at batches of 32) to 2.2 (airbench_tiny): 1 errs long.
FORWARD_SPEEDUP = 1.0
CHECKPOINT_S = 0.5   # saving model.keras and a snapshot after each epoch, before it has been timed
PASS_SETUP_S = 0.2   # a test pass's fixed cost, whatever the number of pictures
DEFAULT_TEST_IMAGES = 10_000


@dataclass(frozen=True)
class Progress:
    phase: str                    # "queued", "starting", "training", "testing", "final" or "ended"
    epoch: int                    # the epoch under way (1, 2, ...), or the last one finished; 0 before any
    epochs: int                   # epochs asked for
    epochs_done: int              # epochs finished, test pass included
    fraction: float               # share of the run's expected wall time behind it, 0 to 1
    elapsed_s: float | None       # wall time since the trainer started (to its end, once ended)
    seconds_left: float | None    # None while nothing has been timed yet
    images_per_s: float | None    # training pictures a second, recently

    def as_dict(self) -> dict:
        return asdict(self)


def number(value) -> float | None:
    """A status's or record's figure as a float; None where it is not a finite number (missing, text, a bool)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _wall(record: dict) -> float:
    """A record's wall-clock time since the trainer started; older records had only the training clock."""
    wall = number(record.get("wall_s"))
    return wall if wall is not None else record["elapsed_s"]


def estimate(config: dict, status: dict, metrics: list[dict], now: float) -> Progress:
    """The run's progress at time `now` (seconds since the epoch, as status.json's times)."""
    epochs = int(config.get("epochs") or 1)
    state = status.get("state", "failed")
    started = number(status.get("started"))
    elapsed = wall_time(status, now)
    batches = [m for m in metrics if m.get("kind") == "batch"]
    done = [m for m in metrics if m.get("kind") == "epoch"]
    epoch = batches[-1]["epoch"] if batches else len(done)
    base = dict(epoch=epoch, epochs=epochs, epochs_done=len(done), elapsed_s=elapsed)
    if state == "queued":
        return Progress("queued", fraction=0.0, seconds_left=None, images_per_s=None, **base)
    if state != "running":
        return Progress("ended", fraction=1.0 if state == "finished" else min(1.0, len(done) / epochs),
                        seconds_left=0.0, images_per_s=_speed(batches, config, status), **base)
    images = number(status.get("train_images"))
    if not batches or not images or started is None:
        return Progress("starting", fraction=0.0, seconds_left=None, images_per_s=None, **base)

    batch_size = _batch_size(config, status)
    steps = batches_per_epoch(images, batch_size)
    per_step = _seconds_per_step(batches, steps)
    if per_step is None:      # one record so far: no interval between records to time a step by
        return Progress("training", fraction=0.0, seconds_left=None, images_per_s=None, **base)
    test_images = number(status.get("test_images")) or DEFAULT_TEST_IMAGES
    held_out = number(status.get("calibration_images"))
    if held_out is None:      # trainers before status.json recorded it
        held_out = number(config.get("calibration_images")) or 0
    if done:
        # The first epoch's test pass also compiled the network's forward pass: once a later one has
        # been timed, the first is left out. The median of the last three smooths a busy machine.
        timed = [e for e in done if e["epoch"] > 1] or done
        after_epoch = _median([_after_epoch(e, batches) for e in timed[-3:]])
        test_s = _median([number(e.get("test_s")) or 0.0 for e in timed[-3:]])
    else:
        # The trainer times a batch of the test pass before its first step; without that, from the
        # training speed.
        per_picture = number(status.get("test_s_per_picture")) or per_step / batch_size / FORWARD_SPEEDUP
        test_s = PASS_SETUP_S + test_images * per_picture
        after_epoch = test_s + CHECKPOINT_S
    final = final_checks_s(test_s, test_images, held_out)

    latest = metrics[-1]      # the newest record, a step's or an epoch's
    steps_taken = (epoch - 1) * steps + batches[-1]["step"]
    if len(done) >= epoch:                      # between epochs: the next has not started
        steps_taken = len(done) * steps
    left_after_latest = (max(0, epochs * steps - steps_taken) * per_step
                         + max(0, epochs - len(done)) * after_epoch + final)
    seconds_left = max(0.0, started + _wall(latest) + left_after_latest - now)
    if len(done) >= epochs:
        phase = "final"
    elif batches[-1]["step"] >= steps and len(done) < epoch:
        phase = "testing"
    else:
        phase = "training"
    total = elapsed + seconds_left
    return Progress(phase, fraction=min(1.0, elapsed / total) if total > 0 else 0.0, seconds_left=seconds_left,
                    images_per_s=min(batch_size, images) / per_step if per_step > 0 else None, **base)


def wall_time(status: dict, now: float | None = None) -> float | None:
    """A run's wall time to its end ("ended"), or to `now` while it goes on; None where either end is
    unknown. A person's clock starts when the run left the queue for a trainer ("launched"), which then
    spends a while starting up before it writes its own "started", the origin of the records' wall_s."""
    origin = number(status.get("launched")) or number(status.get("started"))
    end = number(status.get("ended"))
    end = now if end is None else end
    return None if origin is None or end is None else max(0.0, end - origin)


def final_checks_s(test_s: float, test_images: float, held_out: float) -> float:
    """The final checks' length from a test pass's: the same compiled forward pass (`inference.predict`)
    over the test set's mirror images and both halves of the held-out pictures, nothing to set up (the
    trained network answers). At most: the test pictures the model is sure enough of are not mirrored
    (`evaluation.SURE_ENOUGH`). Five `quick` and `class` runs took 0.56-1.17 s for them, this says
    0.54-1.29 s; half a second more for setting up, as it once allowed, made every one long by half."""
    return test_s * (test_images + 2 * held_out) / test_images


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _after_epoch(record: dict, batches: list[dict]) -> float:
    """Wall seconds from an epoch's last step to its record: checkpoint, test pass and snapshot."""
    end_of_training = next((_wall(b) for b in reversed(batches) if b["epoch"] == record["epoch"]), None)
    if end_of_training is None:
        return number(record.get("test_s")) or 0.0
    return max(0.0, _wall(record) - end_of_training)


def _seconds_per_step(batches: list[dict], steps: int) -> float | None:
    """Training seconds a step: the median over the intervals between the records of the current and
    the previous epoch (a record a second). Measured between records, it leaves out whatever the first
    step paid once (a trainer traces a new network at start-up, but not under a strategy); the median
    leaves out the recompilation a short last batch causes once."""
    last = batches[-1]
    window = [b for b in batches if b["epoch"] >= last["epoch"] - 1]

    def step_number(b):
        return (b["epoch"] - 1) * steps + b["step"]
    rates = [(b["elapsed_s"] - a["elapsed_s"]) / (step_number(b) - step_number(a))
             for a, b in zip(window, window[1:]) if step_number(b) > step_number(a)]
    return max(0.0, _median(rates)) if rates else None


def _batch_size(config: dict, status: dict) -> int:
    """The batch size that ran: status.json records it where it differs from the one asked for (GPUs)."""
    return int(number(status.get("batch_size")) or number(config.get("batch_size")) or 1)


def _speed(batches: list[dict], config: dict, status: dict) -> float | None:
    images = number(status.get("train_images"))
    if not batches or not images:
        return None
    batch_size = _batch_size(config, status)
    per_step = _seconds_per_step(batches, batches_per_epoch(images, batch_size))
    return min(batch_size, images) / per_step if per_step else None


def known_zone(zone) -> str | None:
    """`zone` if it is the name of a time zone this machine knows ("Europe/Paris"), else None: a browser
    reports its own, and a script in its place can send any text at all."""
    import zoneinfo
    if not isinstance(zone, str) or not 0 < len(zone) <= 64:
        return None
    try:
        zoneinfo.ZoneInfo(zone)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        return None
    return zone


def clock(timestamp: float, zone: str | None = None) -> str:
    """A moment as people read it on a board, "04 Dec 14:05": in time zone `zone` (`known_zone`), or in
    the server's own without one."""
    import datetime
    import zoneinfo
    where = zoneinfo.ZoneInfo(zone) if zone else None
    return datetime.datetime.fromtimestamp(timestamp, where).strftime("%d %b %H:%M")


def duration(seconds: float | None) -> str:
    """Seconds as people say them: "45 s", "3 min 05 s", "1 h 02 min"; "–" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = round(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def epochs_trained(config: dict, status: dict, metrics: list[dict]) -> float:
    """Epochs behind the run, counting a part-done epoch by its steps: 2.4 is 40% into the third."""
    done = sum(1 for m in metrics if m.get("kind") == "epoch")
    batches = [m for m in metrics if m.get("kind") == "batch"]
    train_images = number(status.get("train_images"))
    if not batches or not train_images:
        return float(done)
    steps = batches_per_epoch(train_images, _batch_size(config, status))
    last = batches[-1]
    return max(float(done), last["epoch"] - 1 + min(1.0, last["step"] / steps))


def testing_seconds(status: dict, metrics: list[dict]) -> float | None:
    """Wall time spent measuring rather than training: the test pass after each epoch, and once the run
    has ended, its final checks (status.json "testing_s", which includes the passes)."""
    recorded = number(status.get("testing_s"))
    if recorded is not None:
        return recorded
    passes = [number(m.get("test_s")) for m in metrics if m.get("kind") == "epoch"]
    return sum(p for p in passes if p is not None) if any(p is not None for p in passes) else None
