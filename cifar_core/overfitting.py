"""Overfitting, spotted in a run's epoch records: training keeps getting better while the test gets worse.

Over the last `window` epochs, the test accuracy on the whole test set drops
by at least `min_drop`, or the test loss rises by at least `min_rise` of its
lowest value in that window, while the training loss (the running figure of
each epoch) falls from that turn to the last epoch. Either means the network is
learning its own training pictures rather than what makes each class. The
thresholds keep a single noisy epoch from raising the flag: half a point of
accuracy is 50 of the 10,000 test pictures. Pure: records in, a finding out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    first_epoch: int                         # the epoch after which the test got worse (its best in the window)
    last_epoch: int
    train_loss: tuple[float, float]          # the running training loss after first_epoch, and after the last
    best_epoch: int                          # the epoch with the best test accuracy of the whole run
    best_accuracy: float
    test_accuracy: tuple[float, float]       # (best in the window before the last epoch, last)
    test_loss: tuple[float, float]           # (lowest in the window before the last epoch, last)
    accuracy_fell: bool
    loss_rose: bool


def _usable(record: dict) -> bool:
    return all(isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)
               and math.isfinite(record[k]) for k in ("epoch", "loss", "test_loss", "test_accuracy"))


def detect(metrics: list[dict], window: int = 3, min_drop: float = 0.005, min_rise: float = 0.02) -> Finding | None:
    """A Finding if the last `window` epoch records show overfitting, else None (also with fewer epochs)."""
    epochs = [m for m in metrics if m.get("kind", "epoch") == "epoch" and _usable(m)]
    if window < 2 or len(epochs) < window:
        return None
    recent = epochs[-window:]
    first, last, before = recent[0], recent[-1], recent[:-1]
    best = max(before, key=lambda m: m["test_accuracy"])
    lowest = min(before, key=lambda m: m["test_loss"])
    accuracy_fell = best["test_accuracy"] - last["test_accuracy"] >= min_drop
    loss_rose = last["test_loss"] - lowest["test_loss"] >= min_rise * abs(lowest["test_loss"]) \
        and last["test_loss"] > first["test_loss"]
    if not (accuracy_fell or loss_rose):
        return None
    turned = min(best["epoch"] if accuracy_fell else last["epoch"], lowest["epoch"] if loss_rose else last["epoch"])
    since = next(m for m in recent if m["epoch"] == turned)
    # Training better since the test turned worse, as the finding says: across the window alone, a loss
    # that fell and rose again (a rate too high, not overfitting) was said to have kept falling.
    if not last["loss"] < since["loss"]:
        return None
    # The best of the whole run, which an earlier epoch than the window's may hold: the first of equals.
    top = max(epochs, key=lambda m: m["test_accuracy"])
    return Finding(first_epoch=turned, last_epoch=last["epoch"], train_loss=(since["loss"], last["loss"]),
                   best_epoch=top["epoch"], best_accuracy=top["test_accuracy"],
                   test_accuracy=(best["test_accuracy"], last["test_accuracy"]),
                   test_loss=(lowest["test_loss"], last["test_loss"]),
                   accuracy_fell=accuracy_fell, loss_rose=loss_rose)
