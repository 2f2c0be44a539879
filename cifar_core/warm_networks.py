"""A worker's compiled networks, reused by its next run with the same recipe.

Building a network is quick; tracing its training step and its forward pass
into TensorFlow graphs is not: about 1.6 s of a 9 s classroom run on 2 CPU
cores, paid again by every run, because every run builds new Keras objects.
A class's thirty runs share one recipe, so a worker (see `worker`) keeps the
last run's compiled training network and saving network and hands them to the
next run whose recipe matches, with fresh weights and a fresh optimizer.

The next run trains exactly as it would on new objects: its starting weights
are a freshly built network's (the same seeded draw, or the checkpoint it
continues from), copied in, and every optimizer variable (step count, momentum,
Adam's moments, a loss scale) goes back to its initial value. One entry only:
memory stays that of one network whatever the worker has trained.
"""
from __future__ import annotations

import json


class WarmNetworks:
    def __init__(self) -> None:
        self.built = 0            # networks compiled here: what TensorFlow keeps some memory of for good
        self._recipe: str | None = None
        self._network = None      # compiled, for training
        self._initial: list | None = None   # its optimizer's variables as they were before the first step
        self._saving = None       # the plain network checkpoints are saved from

    @staticmethod
    def recipe(config, precision: str, total_steps: int) -> str:
        """Everything the compiled training step depends on: the settings bar the seed, the name, the
        starting weights and the models learnt from (they change the targets, not the step), with what
        they resolved to on this machine."""
        ignored = ("seed", "name", "initial_model", "distill_from", "preset")
        settings = {k: v for k, v in config.to_dict().items() if k not in ignored}
        return json.dumps({**settings, "precision": precision, "total_steps": total_steps}, sort_keys=True)

    def training(self, recipe: str, fresh, compile, sample: tuple | None = None):
        """The compiled network for `recipe`, holding `fresh`'s weights: the kept one when the recipe is the
        last one's (`fresh` is then only the source of the weights), else `fresh` itself, compiled by
        `compile(fresh)` and kept for the next run.

        `sample`, a batch (images, one-hot labels) of the run's batch size: a new network's training
        step is traced on it now, as part of start-up, by one step whose every change (weights,
        BatchNorm statistics, optimizer) is then undone. Traced in the first step instead, the tracing
        counted as training time: a tenth of a classroom run, and its first epoch's pictures a second."""
        if recipe == self._recipe and self._network is not None:
            self._restart(fresh.get_weights())
            return self._network
        compile(fresh)
        self.built += 1
        # The optimizer makes its variables on the first step; build it now so their start can be kept.
        fresh.optimizer.build(fresh.trainable_variables)
        self._recipe, self._network, self._saving = recipe, fresh, None
        self._initial = [variable.numpy() for variable in fresh.optimizer.variables]
        if sample is not None:
            weights = fresh.get_weights()
            fresh.train_on_batch(*sample)
            self._restart(weights)
        return fresh

    def _restart(self, weights: list) -> None:
        """The kept network back at a run's start: these weights, every optimizer variable as built."""
        self._network.set_weights(weights)
        for variable, value in zip(self._network.optimizer.variables, self._initial):
            variable.assign(value)

    def saving(self, build):
        """The plain network checkpoints are copied into and saved from (its forward pass, which the test
        passes use, stays compiled with it); `build()` makes one when the recipe changed."""
        if self._saving is None:
            self._saving = build()
        return self._saving
