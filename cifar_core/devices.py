"""The devices a trainer runs on, and what the recipe changes for them.

On a GPU a run trains in float16 (Keras' mixed_float16: float16 arithmetic,
float32 weights, dynamic loss scaling) with a larger batch. With
`strategy="mirrored"` one run trains on every GPU at once through
`tf.distribute.MirroredStrategy`: each replica holds a copy of the model,
takes an equal share of every batch, and the gradients are summed across
replicas before the one shared update.

The decisions (`precision_for`, `scale_for_gpus`) are pure functions of a
`Hardware` description, so they are tested without the hardware; `detect`
is the only place that asks the backend what there is.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cifar_core.config import TrainConfig

GPU_IMAGES_PER_STEP = 1024     # pictures per step that keep one GPU busy on these small networks
                               # (airbench94's batch on one A100); smaller batches leave it idle
MAX_BATCH_SIZE = 4096          # TrainConfig.validate's limit
MIN_STEPS_PER_EPOCH = 8        # never grow a batch past an eighth of the training pictures
# Nor so far that the whole run takes fewer steps than this. The linear scaling rule holds for runs of
# many steps (airbench94: about 480 at batch 1024); a run of few steps learns from their number. The
# one-pass `quick` recipe (375 steps at batch 128, rate 0.5: 69.5%) scaled 8x for one GPU (47 steps,
# rate 4.0) ended at 51.3%, trained on a CPU with the same arithmetic.
MIN_RUN_STEPS = 400
FLOAT16_CAPABILITY = (7, 0)    # CUDA compute capability with float16 tensor cores (Volta and later)


@dataclass(frozen=True)
class Hardware:
    """What a trainer found: one entry per GPU, its CUDA compute capability (None: not reported)."""
    gpus: tuple[tuple[int, int] | None, ...] = ()
    cpu_bfloat16: bool = False   # AVX-512 BF16 or AMX: bfloat16 matrix maths at full speed


def detect() -> Hardware:
    """The GPUs the Keras backend sees and the CPU's bfloat16 support. Call it before anything runs on
    TensorFlow, so it can ask the GPUs to grow their memory as needed; it lists physical devices only,
    so logical ones can still be configured after it."""
    import keras
    gpus: list = []
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            gpus.append(tuple(capability) if capability else None)
            try:
                # TensorFlow otherwise claims all of a GPU's memory at once, and a second trainer on it fails.
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:   # TensorFlow already set the GPU up in this process: too late, and harmless
                pass
    elif keras.backend.backend() == "jax":
        import jax
        if jax.default_backend() == "gpu":
            gpus = [_jax_capability(d) for d in jax.devices()]
    return Hardware(tuple(gpus), cpu_bfloat16())


@functools.cache
def cpu_bfloat16() -> bool:
    """Whether this CPU does bfloat16 matrix maths at full speed (AVX-512 BF16 or AMX)."""
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpuinfo() -> str:
    """/proc/cpuinfo's text; empty where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def describe_machine(cpuinfo: str | None = None) -> str:
    """The machine in a line for a model card: "x86_64, 2 CPUs (AMD EPYC; AVX2), Linux". Timings in a
    card only mean something next to the processor and the vector instructions they ran on."""
    import os
    import platform
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                 if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.startswith("flags")), []))
    vector = (" and ".join(label for flag, label in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX"))
                           if flag in flags)
              or next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), ""))
    detail = "; ".join(part for part in (name, vector) if part)
    return f"{platform.machine()}, {os.cpu_count()} CPUs{f' ({detail})' if detail else ''}, {platform.system()}"


def _jax_capability(device) -> tuple[int, int] | None:
    try:
        major, minor = str(device.compute_capability).split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, ValueError):
        return None


def precision_for(hardware: Hardware) -> str:
    """The Keras dtype policy that is fastest on `hardware` without costing accuracy."""
    if hardware.gpus:
        # float16 is only fast on tensor cores; on older GPUs it runs slower than float32 (Keras warns so).
        # A GPU that does not report its capability is taken to be a recent one.
        fast = all(c is None or c >= FLOAT16_CAPABILITY for c in hardware.gpus)
        return "mixed_float16" if fast else "float32"
    return "mixed_bfloat16" if hardware.cpu_bfloat16 else "float32"


def scale_for_gpus(config: TrainConfig, gpus: int, train_images: int) -> TrainConfig:
    """`config` with a batch big enough to keep `gpus` GPUs busy and the learning rate scaled with it.

    The recipes are tuned for CPUs, where a small batch is no loss; a GPU
    finishes a batch of 256 such small pictures before it has warmed up. The
    batch grows by a power of two up to GPU_IMAGES_PER_STEP per GPU (within
    MAX_BATCH_SIZE and an eighth of the training pictures), while the run
    keeps at least MIN_RUN_STEPS steps in all. The learning rate
    is per step on the batch-mean loss, so for SGD it grows by the same factor
    (the linear scaling rule, Goyal et al. 2017): each picture then moves the
    weights as much as before, the schedule sees the same number of pictures
    (but for the few more a bigger batch can leave over each epoch, `batches_per_epoch`),
    and the decoupled weight decay (times the rate, per step) stays the same
    per epoch. Adam normalises its steps, so its rate grows by the square root; Muon's stays.

    Only when precision is "auto", the setting that hands hardware choices to
    the trainer: a recipe with its precision pinned (the tutorial baseline)
    trains exactly as written.
    """
    if gpus < 1 or config.precision != "auto":
        return config
    limit = min(GPU_IMAGES_PER_STEP * gpus, MAX_BATCH_SIZE, max(config.batch_size, train_images // MIN_STEPS_PER_EPOCH))
    factor = 1
    while (config.batch_size * factor * 2 <= limit
           and config.epochs * (train_images // (config.batch_size * factor * 2)) >= MIN_RUN_STEPS):
        factor *= 2
    if factor == 1:
        return config
    # Muon's filters take steps of the rate's size whatever the batch, so its rate stays as written.
    rate = config.learning_rate * {"sgd": factor, "adam": math.sqrt(factor)}.get(config.optimizer, 1)
    return dataclasses.replace(config, batch_size=config.batch_size * factor, learning_rate=rate)


def make_strategy(name: str):
    """None for "default" (the backend's own placement: the first GPU, else the CPU); for "mirrored",
    a MirroredStrategy over every GPU, or over the CPU's logical devices where there is no GPU (one,
    unless the process split the CPU before TensorFlow started, as the tests do)."""
    if name == "default":
        return None
    import keras
    if keras.backend.backend() != "tensorflow":
        from cifar_core.config import ConfigError
        raise ConfigError("The mirrored strategy needs Keras' TensorFlow backend (KERAS_BACKEND=tensorflow).",
                          "strategy")
    import tensorflow as tf
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def replicas(strategy) -> int:
    return strategy.num_replicas_in_sync if strategy is not None else 1


def shares(n: int, count: int) -> list[tuple[int, int]]:
    """(start, stop) of `count` contiguous shares of n items, as equal as whole items allow."""
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def step_function(model, strategy):
    """`step(x, y) -> logs`: one optimizer step on a batch, as `model.train_on_batch(x, y, return_dict=True)`.

    Under MirroredStrategy, Keras 3's train_on_batch hands every replica the
    whole batch (measured: two replicas of a 64-picture batch each saw 64):
    the update is right but each device does all the work. Here each replica
    gets its own share, through `strategy.run` of the model's own train_step,
    so the loss scaling, loss-scale optimizer, metrics and BatchNorm behave
    as in `fit`. The first step goes through train_on_batch, which builds the
    optimizer and metric variables inside the strategy's scope (the same
    update, done redundantly once).
    """
    if replicas(strategy) == 1:
        return lambda x, y: model.train_on_batch(x, y, return_dict=True)
    import tensorflow as tf
    count = replicas(strategy)
    # BatchNorm's moving statistics are per-replica variables in Keras 3 (no cross-replica aggregation):
    # each replica's drift from its own share, so they are averaged after every step. A few KB a step.
    statistics = [w for w in model.non_trainable_weights if w.name in ("moving_mean", "moving_variance")]

    @tf.function(reduce_retracing=True)
    def distributed_step(x, y):
        strategy.run(model.train_step, args=((x, y),))
        for variable in statistics:
            local = strategy.experimental_local_results(variable.value)
            variable.assign(tf.add_n(local) / len(local))
        # Read in the cross-replica context: each metric's sums add up over replicas, so the figures
        # are over the whole batch, not one replica's share.
        return model.get_metrics_result()

    built = False

    def step(x, y):
        nonlocal built
        if not built or len(x) < count:   # too small to give every replica a picture: the replicated step
            built = True
            return model.train_on_batch(x, y, return_dict=True)
        parts = shares(len(x), count)

        def share(array):
            def on_replica(context):   # copied straight to the replica's own device
                replica = context.replica_id_in_sync_group
                with tf.device(strategy.extended.worker_devices[replica]):
                    return tf.constant(array[slice(*parts[replica])])
            return strategy.experimental_distribute_values_from_function(on_replica)

        model.reset_metrics()
        return {name: float(value) for name, value in distributed_step(share(x), share(y)).items()}

    return step


def scope(strategy):
    """Where the model and its optimizer must be built: the strategy's scope, or nowhere special."""
    import contextlib
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
