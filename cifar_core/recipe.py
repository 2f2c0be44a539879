"""The recipe's moving parts: precision, learning-rate schedule, optimizer, lookahead, augmentation.

Each follows airbench94 or airbench94_muon (Keller Jordan's fast CIFAR-10 trainers) where a
preset asks for it; `training` puts them together.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cifar_core import devices
from cifar_core.config import pictures_per_epoch
from cifar_core.data import CLASS_NAMES

if TYPE_CHECKING:
    from cifar_core.config import TrainConfig


def resolve_precision(requested: str = "auto", hardware=None) -> str:
    """The Keras dtype policy to train with: what the hardware does fast (see `devices.precision_for`),
    unless asked otherwise. `hardware` is a `devices.Hardware`; by default the machine's own."""
    if requested != "auto":
        return requested
    return devices.precision_for(hardware or devices.detect())


def learning_rate_at(step, total_steps: int, config: TrainConfig):
    """The learning rate at `step` (numbers or keras tensors): a triangle, or constant."""
    from keras import ops
    step = ops.cast(step, "float32")
    if config.schedule == "constant":
        return config.learning_rate + 0.0 * step
    peak_step = max(1.0, config.warmup * total_steps) if config.warmup else 0.0
    done = ops.clip((step - peak_step) / max(1.0, total_steps - peak_step), 0.0, 1.0)
    falling = 1.0 - (1.0 - config.final_lr) * done                         # down to final_lr
    if not config.warmup:                                                    # straight down from the peak
        return config.learning_rate * falling
    rising = 0.2 + 0.8 * step / peak_step                                   # from 20% of the peak
    return config.learning_rate * ops.minimum(rising, falling)


def _schedule(total_steps: int, config: TrainConfig):
    import keras

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return learning_rate_at(step, total_steps, config)

        def get_config(self):
            return {}

    return Schedule()


# airbench94_muon's rates in this trainer's terms. Its filters step by Muon at 0.24; its last layer learns by
# SGD at 0.67 on the loss summed over 2,000 pictures with the logits divided by 256, here 1/9 (see
# `models._airbench`, whose last layer is drawn at 9/256 of its size there): 0.67 x 2,000 x (9/256)^2 = 1.66
# on the mean loss, 6.9 times the filters' rate. Its BatchNorm biases learn 64 times faster than that.
MUON_MOMENTUM = 0.6
MUON_SGD_RATE = 0.67 * 2000 * (9 / 256) ** 2 / 0.24


def orthogonalised(update, steps: int = 3):
    """A kernel's update with its singular values pushed towards 1, as Muon takes it: a few
    Newton-Schulz iterations of a quintic chosen to move small singular values up fast (Keller Jordan's
    coefficients; they land between about 0.5 and 1.5, which trains as well as exactly 1). The kernel
    is read as a matrix, one column per output channel."""
    from keras import ops
    a, b, c = 3.4445, -4.7750, 2.0315
    x = ops.reshape(ops.cast(update, "float32"), (-1, update.shape[-1]))
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else ops.transpose(x)                      # the shorter side as rows: small products
    x = x / (ops.sqrt(ops.sum(x * x)) + 1e-7)                # every singular value at most 1
    for _ in range(steps):
        gram = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    return ops.reshape(x if wide else ops.transpose(x), update.shape)


def make_optimizer(config: TrainConfig, total_steps: int, model=None, whiten_bias_steps: int = 0):
    """SGD with Nesterov momentum, Adam, or Muon, on the schedule, with faster-learning BatchNorm biases.

    Muon (airbench94_muon's recipe, Keller Jordan): each convolution's kernel is scaled back to a fixed
    size, then stepped by its momentum's update orthogonalised (`orthogonalised`), so every direction
    the filters can move in moves alike, whatever the gradient's scale; the learning rate is the
    filters'. Everything else (the last layer, the biases) learns by SGD with Nesterov momentum at
    `MUON_SGD_RATE` times it. The filters take no weight decay: their size is fixed.

    The whitening layer's bias (airbench's, if `model` has one) learns for the first
    `whiten_bias_steps` steps, then stays: airbench94 trains it for 3 epochs. Its weight decay is
    part of its gradient, as in PyTorch's SGD (the same strength as the decoupled decay of the
    other weights, through the momentum), so it ends with the learning; decoupled, it would pull
    the bias back to zero for the rest of the run. Measured with the PyTorch peer
    (benchmarks/peer_airbench.py, seed 1): 90.53% with it, 90.08% without.
    """
    import keras
    from keras import ops
    muon = config.optimizer == "muon"
    base = keras.optimizers.Adam if config.optimizer == "adam" else keras.optimizers.SGD
    scale = config.bias_lr_scale
    sgd_rate = MUON_SGD_RATE if muon else 1.0     # the SGD parts' rate, per unit of the schedule's
    whiten_bias = _whiten_bias(model)
    # Muon's recipe trains the whitening bias at the BatchNorm biases' rate; airbench94's at the weights'.
    whiten_scale = scale if muon else 1.0
    # Decoupled decay takes weight_decay x rate a step; a gradient term c x weight, through momentum m,
    # takes c x rate / (1 - m) in the long run: the same strength at c = weight_decay x (1 - m).
    coupled_decay = (config.weight_decay * (1 - config.momentum) / (sgd_rate * whiten_scale)
                     if config.optimizer != "adam" else config.weight_decay)

    def stepped_by_muon(variable) -> bool:
        # The filters: every trainable 4-D variable (the whitening layer's kernel is not trainable).
        return muon and len(variable.shape) == 4

    class Optimizer(base):
        # The filters' scaling would undo a decay anyway; left out, it is not worked out for nothing.
        def _use_weight_decay(self, variable):
            return not stepped_by_muon(variable) and super()._use_weight_decay(variable)

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            # Muon's own momentum, whatever the SGD parts' (with none, SGD keeps no slots).
            self.velocities = self.add_optimizer_variables(variables, "muon_velocity") if muon else []

        def update_step(self, gradient, variable, learning_rate):
            if not stepped_by_muon(variable):
                return super().update_step(gradient, variable, learning_rate * sgd_rate)
            # Muon: Nesterov momentum, the kernel back to a fixed size, the orthogonalised step.
            velocity = self.velocities[self._get_variable_index(variable)]
            gradient = ops.cast(gradient, variable.dtype)
            self.assign(velocity, velocity * MUON_MOMENTUM + gradient)
            weights = ops.convert_to_tensor(variable)
            size = (variable.shape[-1] ** 0.5) / ops.sqrt(ops.sum(ops.square(weights)))
            self.assign(variable, weights * size - ops.cast(learning_rate, variable.dtype)
                        * orthogonalised(gradient + MUON_MOMENTUM * velocity))

        def apply(self, grads, trainable_variables=None):
            # Scaling a gradient scales that variable's effective learning rate (decay is separate).
            variables = trainable_variables if trainable_variables is not None else self._trainable_variables
            learning = self.iterations < whiten_bias_steps

            def adjusted(g, v):
                if g is None:
                    return g
                if v.name == "beta":
                    return g * scale
                if whiten_bias is not None and v.path == whiten_bias.path:
                    return (g + coupled_decay * ops.cast(v, g.dtype)) * whiten_scale
                return g

            # Once it stops learning, the bias is put back where it was after each step: zeroing its gradient
            # left its momentum carrying it on for a few more steps (PyTorch's SGD skips a parameter without
            # a gradient, momentum and all).
            held = ops.copy(whiten_bias.value) if whiten_bias is not None else None
            applied = super().apply([adjusted(g, v) for g, v in zip(grads, variables)], trainable_variables)
            if whiten_bias is not None:
                whiten_bias.assign(ops.where(learning, whiten_bias.value, held))
            return applied

    options = dict(momentum=config.momentum, nesterov=True) if config.optimizer != "adam" else {}
    optimizer = Optimizer(_schedule(total_steps, config), weight_decay=config.weight_decay or None, **options)
    if whiten_bias is not None and config.weight_decay:
        optimizer.exclude_from_weight_decay(var_list=[whiten_bias])
    return optimizer


def _whiten_bias(model):
    """The bias variable of `model`'s whitening layer, if it has one."""
    try:
        layer = model.get_layer("whiten") if model is not None else None
    except ValueError:
        return None
    return layer.bias if layer is not None and layer.use_bias else None


def lookahead(total_steps: int, every: int = 5, base: float = 0.95 ** 5, power: float = 3.0):
    """airbench's lookahead: every few steps, the weights (BatchNorm statistics too) move to a
    slow average of themselves, weighted more and more heavily towards the end of training.
    The slow weights are copied in at the end of every epoch, for the test pass and checkpoint, and
    training goes on from the weights it had reached: going on from the slow ones threw away up to
    four steps' progress an epoch (the steps since the last average), about 20 of `best`'s 470."""
    import keras

    class Lookahead(keras.callbacks.Callback):
        step, slow, fast = 0, None, None   # counted over the whole run, not per epoch

        def on_epoch_begin(self, epoch, logs=None):
            if self.fast is not None:
                self.model.set_weights(self.fast)
                self.fast = None

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % every:
                return
            weights = self.model.get_weights()
            if self.slow is None:
                self.slow = weights
                return
            decay = base * (self.step / total_steps) ** power
            self.slow = [s + (1 - decay) * (w - s) for s, w in zip(self.slow, weights)]
            self.model.set_weights(self.slow)

        def on_epoch_end(self, epoch, logs=None):
            if self.slow is not None:
                self.fast = self.model.get_weights()
                self.model.set_weights(self.slow)

    return Lookahead()


def augment(images: np.ndarray, rng: np.random.Generator, flip: np.ndarray | None = None,
            pad: int = 2, zoom: float = 0.0) -> np.ndarray:
    """Mirror the images where `flip` says (at random when it is None), then translate each by up
    to `pad` pixels (reflected edges), then resize each about its centre by a random factor up to
    `zoom` larger or smaller (see `zoomed`)."""
    flip = rng.random(len(images)) < 0.5 if flip is None else flip
    return ShuffledEpoch(images, np.arange(len(images)), rng, flip, pad, zoom)[:]


def _flipped_and_shifted(images: np.ndarray, flip: np.ndarray, dy: np.ndarray, dx: np.ndarray,
                         pad: int) -> np.ndarray:
    flipped = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
    padded = np.pad(flipped, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.empty_like(images)
    for i in range(2 * pad + 1):
        for j in range(2 * pad + 1):
            chosen = (dy == i) & (dx == j)
            out[chosen] = padded[chosen, i:i + 32, j:j + 32]
    return out


def zoomed(images: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Each (32, 32, 3) picture magnified `scales[i]` times about its centre, bilinear, edges
    reflected: above 1 its subject fills more of the frame, below 1 less, with the reflected edges
    standing in for the background a photo has around its subject. (About 0.1 s for 1,024 pictures
    on one core: a twentieth of a `best` training step.)"""
    size = images.shape[1]
    centre = (size - 1) / 2
    source = centre + (np.arange(size) - centre)[None, :] / scales[:, None]       # (N, size), for rows and columns
    low = np.floor(source).astype(np.int64)
    weight = (source - low).astype(np.float32)

    def reflected(index):
        index = np.abs(index)
        return np.where(index > size - 1, 2 * (size - 1) - index, index)

    rows = np.arange(len(images))[:, None, None]
    out = np.zeros(images.shape, np.float32)
    for dy, wy in ((0, 1 - weight), (1, weight)):
        for dx, wx in ((0, 1 - weight), (1, weight)):
            pixels = images[rows, reflected(low + dy)[:, :, None], reflected(low + dx)[:, None, :]]
            out += (wy[:, :, None] * wx[:, None, :])[..., None] * pixels
    return np.clip(np.rint(out), 0, 255).astype(images.dtype)


class ShuffledEpoch:
    """One epoch's pictures in their shuffled order, augmented as `augment` would, made a batch at a
    time when sliced: the training loop takes `epoch[start:stop]`. A whole epoch as one array was a
    second copy of the training pictures (147 MB for all 48,000) held through every epoch."""

    def __init__(self, x: np.ndarray, order: np.ndarray, rng: np.random.Generator | None = None,
                 flip: np.ndarray | None = None, pad: int = 2, zoom: float = 0.0):
        self.x, self.order, self.flip, self.pad = x, order, flip, pad
        # Drawn now, as `augment` draws them for the whole epoch: the same seed gives the same pictures.
        self.shifts = rng.integers(0, 2 * pad + 1, size=(2, len(order))) if flip is not None else None
        # Even in log scale, so as many pictures grow as shrink; none drawn without zoom, so the
        # pictures of a recipe without it stay what they were.
        self.scales = (np.exp(rng.uniform(-np.log1p(zoom), np.log1p(zoom), len(order)))
                       if flip is not None and zoom else None)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, rows: slice) -> np.ndarray:
        images = self.x[self.order[rows]]
        if self.flip is None:
            return images
        images = _flipped_and_shifted(images, self.flip[rows], self.shifts[0][rows], self.shifts[1][rows], self.pad)
        return images if self.scales is None else zoomed(images, self.scales[rows])

    def __iter__(self):
        for start in range(0, len(self), 1024):
            yield from self[start:start + 1024]


def subset(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n images, equally many from each class (all of them when n is 0 or too big)."""
    if not n or n >= len(x):
        return x, y
    per_class = max(1, n // len(CLASS_NAMES))
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(len(CLASS_NAMES))]))
    return x[keep], y[keep]


def split(x: np.ndarray, y: np.ndarray, n: int, calibration: int) -> tuple[tuple, tuple]:
    """(training pictures, calibration pictures): the first `n` for training as `subset` picks them, and
    up to `calibration` others, equally from each class, that training never sees, for fitting the
    confidence temperature. With all pictures in training, the calibration ones are taken out of it,
    at most a tenth of the data."""
    x_train, y_train = subset(x, y, n)
    chosen = np.zeros(len(x), bool)
    if len(x_train) < len(x):
        chosen[np.sort(np.concatenate([np.flatnonzero(y == c)[:max(1, n // len(CLASS_NAMES))]
                                       for c in range(len(CLASS_NAMES))]))] = True
    left = np.flatnonzero(~chosen)
    per_class = min(calibration, len(x) // 10) // len(CLASS_NAMES)
    held = np.sort(np.concatenate([left[y[left] == c][-per_class:] if per_class else left[:0]
                                   for c in range(len(CLASS_NAMES))]))
    if len(x_train) == len(x):           # everything was for training: the held-out ones leave it
        keep = np.setdiff1d(np.arange(len(x)), held)
        x_train, y_train = x[keep], y[keep]
    return (x_train, y_train), (x[held], y[held])


PLAIN_LOSS = "cross_entropy"     # the training pictures' loss as the test pictures' is measured (`compile`)


def shown_loss(logs: dict) -> float:
    """The training loss the curves draw: plain cross-entropy, as the test loss beside it. The loss
    trained on is label-smoothed: even a perfect answer costs 0.50 at smoothing 0.1 and 0.87 at 0.2, so
    drawn beside the test loss it sat above it all run, as if the network did better on pictures it never
    trains on. (The optimised loss where a model was compiled without the plain one.)"""
    return float(logs.get(PLAIN_LOSS, logs.get("loss", float("nan"))))


def one_hot(labels: np.ndarray) -> np.ndarray:
    """Class numbers as the float32 one-hot rows the training step takes."""
    return np.eye(len(CLASS_NAMES), dtype="float32")[labels]


def epochs_of(x: np.ndarray, y: np.ndarray, config: TrainConfig):
    """Each epoch's (images, targets): freshly shuffled, and augmented if asked. `y` is class numbers
    (the targets are one-hot) or already a row of targets per picture (see `distill.targets`).

    Flips alternate (airbench's scheme): half the pictures, drawn once, are
    mirrored in even epochs and the other half in odd ones, so every two
    epochs show each picture they both take both ways, where coin flips would repeat one.

    Each epoch is whole batches (`batches_per_epoch`): the pictures a shuffle leaves over wait for a
    later one. Whole epochs that the training loop slices into batches (`ShuffledEpoch`,
    each batch gathered and augmented as it is taken): no input pipeline to
    build and tear down each epoch (see `training.train_epoch`).
    """
    rows = y if y.ndim == 2 else one_hot(y)
    rng = np.random.default_rng(config.seed)
    mirrored_first = rng.random(len(x)) < 0.5
    taken = pictures_per_epoch(len(x), config.batch_size)
    for epoch in range(config.epochs):
        order = rng.permutation(len(x))[:taken]
        flip = mirrored_first[order] ^ bool(epoch % 2)
        yield (ShuffledEpoch(x, order, rng, flip, zoom=config.zoom) if config.augment else ShuffledEpoch(x, order)), \
            rows[order]
