"""Architecture registry: name -> builder(num_classes) -> keras.Model.

Every model takes uint8-range RGB pixels, shape (N, 32, 32, 3), normalises
them itself and returns class probabilities, so a saved `.keras` file is all
anyone needs. The UI, the command line and the tests all loop over REGISTRY.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# Per-channel statistics of the CIFAR-10 training images, in pixel units.
MEAN = (125.3, 123.0, 113.9)
STD = (63.0, 62.1, 66.7)

REGISTRY: dict[str, Callable] = {}
# What each network is for, in words short enough for a phone's select box (its 330 pixels cut a longer
# line off), and what it is made of, for the box's help (a line each there, on a phone too).
PURPOSES: dict[str, str] = {}
MAKEUPS: dict[str, str] = {}


def register(name: str, purpose: str, makeup: str):
    def wrap(builder):
        REGISTRY[name] = builder
        PURPOSES[name], MAKEUPS[name] = purpose, makeup
        return builder
    return wrap


def build(name: str, num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    """A fresh model. `for_training` swaps in layers that only speed up training (`fast_layers`);
    the weights are the same, so they copy into a plain model for saving and serving. With
    `whitening_learns` (and `for_training`), a whitening layer whose bias will learn computes in float32."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown architecture {name!r}; choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[name](num_classes, for_training=for_training, whitening_learns=whitening_learns)


def _normalise(inputs):
    from keras import layers
    return layers.Normalization(mean=MEAN, variance=[s * s for s in STD], name="normalise")(inputs)


def _probabilities(x):
    from keras import layers
    # Softmax in float32 even under mixed precision: probabilities must sum to 1.
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


@register("tutorial", "The TensorFlow tutorial CNN", "three 3x3 convolutions (32-64-64), a dense layer of 64")
def tutorial(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    import keras
    from keras import layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = _normalise(inputs)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="features")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, _probabilities(x), name="tutorial")


def _airbench(num_classes: int, widths: tuple[int, ...], name: str, for_training: bool = False,
              stem_stride: int = 1, activation: str = "gelu", torch_init: bool = False, whitening_learns: bool = False):
    """The airbench network (Keller Jordan's fast CIFAR-10 trainer), in plain Keras layers.

    A frozen 2x2 whitening convolution (set from the data by `init_whitening`; its bias,
    zero at first, learns for a few epochs where the recipe says, as airbench94's does),
    then one block of conv-pool-BN-act-conv-BN-act per width, global max pooling
    and a linear layer scaled down by 9. BatchNorm has fast momentum and no scale.
    With `torch_init` the weights are drawn as PyTorch draws them, uniform within 1/sqrt(fan-in),
    which airbench94's settings were tuned with: Keras' Glorot default draws the last layer 2.4x
    and the first block's first convolution 1.3x larger (the square ones start as the identity).
    With `stem_stride` 2 the whitening filters step over the picture's 2x2
    patches without overlap: nothing is lost (12 numbers a patch, decorrelated)
    and every later layer works on 16x16 maps, a quarter of the work.
    """
    import keras
    from keras import layers

    from cifar_core import fast_layers
    batchnorm = fast_layers.batch_normalization() if for_training else layers.BatchNormalization
    conv = fast_layers.conv2d() if for_training else layers.Conv2D
    act = fast_layers.activation() if for_training else layers.Activation

    def bn(x):
        return batchnorm(momentum=0.6, epsilon=1e-5, scale=False)(x)

    drawn = dict(kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")
                 if torch_init else "glorot_uniform")

    inputs = keras.Input((32, 32, 3), name="image")
    x = _normalise(inputs)
    # A whitening layer whose bias learns trains in float32 whatever the policy: the bias's gradient is a sum
    # over every position of every picture (two million at batch 2,000), and in bfloat16 it came out off by
    # as much as its own size, a drift that at Muon's bias rate carried the bias to 20 (0.5-1.5 in float32).
    # Where the bias stays put (`quick`, `class`), bfloat16 is a second quicker for nothing lost.
    whiten = layers.Conv2D(24, 2, strides=stem_stride, padding="valid", name="whiten",
                           dtype="float32" if for_training and whitening_learns else None)
    x = whiten(x)
    whiten.kernel.trainable = False     # set from the data (`init_whitening`); its bias may learn (`recipe`)
    x = act(activation)(x)
    for width in widths:
        x = conv(width, 3, padding="same", use_bias=False, **drawn)(x)
        x = layers.MaxPooling2D(2)(x)
        x = act(activation)(bn(x))
        x = conv(width, 3, padding="same", use_bias=False, **drawn)(x)
        x = act(activation)(bn(x))
    x = layers.GlobalMaxPooling2D(name="features")(x)
    x = layers.Dense(num_classes, use_bias=False, **drawn)(x)
    x = layers.Rescaling(1 / 9, name="logits")(x)
    model = keras.Model(inputs, _probabilities(x), name=name)
    _init_identity(model)
    return model


@register("airbench", "The most accurate", "a whitening stem, BatchNorm, widths 64/256/256")
def airbench(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return _airbench(num_classes, (64, 256, 256), "airbench", for_training, torch_init=True,
                     whitening_learns=whitening_learns)


@register("airbench_small", "2.5x faster than airbench", "a little less accurate, widths 64/128/128")
def airbench_small(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return _airbench(num_classes, (64, 128, 128), "airbench_small", for_training, torch_init=True,
                     whitening_learns=whitening_learns)


@register("airbench_tiny", "A first result in a minute", "widths 32/64/64")
def airbench_tiny(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return _airbench(num_classes, (32, 64, 64), "airbench_tiny", for_training, torch_init=True,
                     whitening_learns=whitening_learns)


# For a CPU that must answer soon: the whitening steps over 2x2 patches, so the network works on
# 16x16 maps, with ReLU (cheaper than GELU, as accurate here) and two blocks. Measured on a 2-core AMD
# EPYC (AVX2, float32), one epoch, batch 128, no augmentation: 24/96 trains ~2,000-2,900 pictures/s and
# reaches 60% on 20,000 pictures; 56/112, ~1,400-1,500/s, 70% on all of them. A second block 128 wide
# trained 1.35x slower than 112 wide (48/128 against 48/112, alternating runs), far more than its 11%
# more sums, for 0.4 points.
@register("airbench16", "A good model in about a minute", "2x2 patches, widths 56/112")
def airbench16(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return _airbench(num_classes, (56, 112), "airbench16", for_training, stem_stride=2, activation="relu",
                     whitening_learns=whitening_learns)


@register("airbench16_mini", "For a whole class on one server", "2x2 patches, widths 24/96")
def airbench16_mini(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return _airbench(num_classes, (24, 96), "airbench16_mini", for_training, stem_stride=2, activation="relu",
                     whitening_learns=whitening_learns)


def _init_identity(model) -> None:
    """Make each 3x3 convolution start as an identity map on its first input-many channels.

    An implicit residual connection: signals pass through the untrained
    network unchanged, which speeds up the first epoch (airbench's Dirac init).
    """
    from keras import layers
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.kernel_size == (3, 3):
            kernel = layer.get_weights()[0]
            n = min(kernel.shape[2], kernel.shape[3])
            kernel[:, :, :, :n] = 0
            kernel[1, 1, np.arange(n), np.arange(n)] = 1
            layer.set_weights([kernel])


def _patch_covariance(images: np.ndarray, chunk: int = 250) -> np.ndarray:
    """The (12, 12) covariance of every 2x2 patch of the normalised images, in (kh, kw, C) order.

    Summed a few hundred pictures at a time: all 4.8 million patches of 5,000 pictures at once
    (np.cov makes float64 copies of them) took 730 MB and 3 s, at the start of every run."""
    total, outer, count = np.zeros(12), np.zeros((12, 12)), 0
    for start in range(0, len(images), chunk):
        x = (images[start:start + chunk].astype(np.float32) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
        patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))   # n,31,31,C,2,2
        patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12).astype(np.float64)
        total += patches.sum(axis=0)
        outer += patches.T @ patches
        count += len(patches)
    mean = total / count
    return (outer - count * np.outer(mean, mean)) / (count - 1)


def init_whitening(model, images: np.ndarray, eps: float = 5e-4) -> None:
    """Set a model's frozen 2x2 'whiten' convolution from training images (no-op if it has none).

    The filters are the eigenvectors of the covariance of 2x2 patches, scaled
    by 1/sqrt(eigenvalue), and their negatives: the first layer then hands the
    network decorrelated, unit-variance patches, which speeds up early training.
    """
    try:
        layer = model.get_layer("whiten")
    except ValueError:
        return
    eigenvalues, eigenvectors = np.linalg.eigh(_patch_covariance(images[:5000]))
    filters = eigenvectors / np.sqrt(eigenvalues + eps)                         # (12, 12) columns
    kernel = np.concatenate([filters, -filters], axis=1).reshape(2, 2, 3, 24)
    layer.kernel.assign(kernel.astype(np.float32))


def copy_weights(source, target) -> None:
    """`source`'s weights into `target`, the same network, layer by layer. A convolution saved without
    a bias goes into one with a zero bias: airbench's whitening layer has one since its bias learns.
    ValueError when the two are different networks."""
    theirs = [layer for layer in source.layers if layer.weights]
    ours = [layer for layer in target.layers if layer.weights]
    if len(theirs) != len(ours):
        raise ValueError(f"{len(theirs)} layers with weights against {len(ours)}")
    for saved, layer in zip(theirs, ours):
        weights = saved.get_weights()
        if len(weights) == 1 and getattr(layer, "use_bias", False) and not getattr(saved, "use_bias", True):
            weights.append(np.zeros(layer.bias.shape, np.float32))
        layer.set_weights(weights)


def _same_network(members) -> None:
    """ValueError unless `members` are two or more copies of one network: the same layers, in the same
    order, with the same settings (a convolution's bias aside: airbench's stem gained one later)."""
    if len(members) < 2:
        raise ValueError("Two or more models are needed to put side by side.")

    def shape(model):      # what a layer computes, not how it was named, drawn or trained
        return [(type(layer).__name__, {k: v for k, v in layer.get_config().items()
                                        if k not in ("name", "use_bias", "trainable")
                                        and not k.endswith(("_initializer", "_regularizer", "_constraint"))})
                for layer in model.layers]
    layers = members[0].layers
    if any(layer.input is not before.output for before, layer in zip(layers, layers[1:])):
        raise ValueError("Only a network whose layers each take the one before can be put side by side.")
    first = shape(members[0])
    for other in members[1:]:
        if shape(other) != first:
            raise ValueError(f"{other.name} is not the same network as {members[0].name}: only copies of one "
                             "network, trained apart, can be put side by side.")


def side_by_side(members, name: str = "side_by_side"):
    """One network that answers as `members` do together, their scores (logits) averaged before the
    softmax: copies of one convolutional network, trained apart, that ends in global pooling and one
    dense layer (airbench does). Plain Keras layers, so every page reads it as one network: the shared
    normalisation; the first convolution's filters stacked; every later convolution in groups, one per
    member; BatchNorms and pooled features side by side; the dense layer's weights stacked and divided
    by the number of members. `apart` takes it to pieces again for serving."""
    import keras
    from keras import layers
    _same_network(members)
    n = len(members)
    x = inputs = keras.Input(members[0].input_shape[1:], name=members[0].layers[0].name)
    branched = merged = False
    for position, layer in enumerate(members[0].layers[1:], start=1):
        peers = [member.layers[position] for member in members]
        config = layer.get_config()
        weights = [peer.get_weights() for peer in peers]
        if (merged and layer.weights) or (branched and isinstance(layer, layers.Flatten)):
            raise ValueError("Only networks that end in global pooling and one dense layer can be put side by side.")
        if isinstance(layer, layers.Conv2D):
            config.update(filters=layer.filters * n, groups=layer.groups * n if branched else layer.groups,
                          use_bias=any(peer.use_bias for peer in peers))
            if config["use_bias"]:   # a member without a bias adds nothing
                weights = [w if len(w) == 2 else [w[0], np.zeros(w[0].shape[-1], np.float32)] for w in weights]
            weights = [np.concatenate(parts, axis=-1) for parts in zip(*weights)]
            branched = True
        elif branched and isinstance(layer, layers.Dense):
            weights = [np.concatenate(parts) / n if parts[0].ndim == 2 else np.mean(parts, axis=0)
                       for parts in zip(*weights)]
            merged = True
        elif branched and isinstance(layer, layers.BatchNormalization):
            weights = [np.concatenate(parts, axis=-1) for parts in zip(*weights)]
        elif branched and layer.weights or isinstance(layer, (layers.Dense, layers.BatchNormalization)):
            raise ValueError(f"Layer {layer.name} ({type(layer).__name__}) cannot be put side by side.")
        else:
            weights = weights[0]       # before the first convolution (the normalisation): shared
        made = type(layer).from_config(config)
        x = made(x)
        if weights:
            made.set_weights(weights)
    return keras.Model(inputs, x, name=name)


def members_of(model) -> int:
    """How many networks `model` holds side by side (`side_by_side`): its convolutions' groups; 1 for one."""
    from keras import layers
    return max([layer.groups for layer in model.layers if isinstance(layer, layers.Conv2D)], default=1)


def apart(model) -> list:
    """The networks a `side_by_side` model holds, each whole again, from the picture to its probabilities
    (a dense layer's bias comes back as their mean: airbench's has none). Answering with them side by
    side is quicker than with the model: TensorFlow's CPU kernel for grouped convolutions was 9x
    slower than the separate ones in bfloat16 (430 against 46 ms, 500 pictures through a 768-channel
    8x8 layer in 3 groups) and 1.5x in float32."""
    import keras
    from keras import layers
    n = members_of(model)
    chain = model.layers[1:]
    first_grouped = next(i for i, layer in enumerate(chain) if getattr(layer, "groups", 1) > 1)
    stem = max(i for i, layer in enumerate(chain[:first_grouped]) if isinstance(layer, layers.Conv2D))
    members = []
    for g in range(n):
        x = inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
        for position, layer in enumerate(chain):
            config, weights = layer.get_config(), layer.get_weights()
            if isinstance(layer, layers.Conv2D) and position >= stem:
                config.update(filters=layer.filters // n, groups=layer.groups // n if position > stem else layer.groups)
                weights = [w[..., g * config["filters"]:(g + 1) * config["filters"]] for w in weights]
            elif isinstance(layer, layers.BatchNormalization) and position > stem:
                size = weights[0].shape[-1] // n
                weights = [w[g * size:(g + 1) * size] for w in weights]
            elif isinstance(layer, layers.Dense) and position > stem:
                size = weights[0].shape[0] // n
                weights = [weights[0][g * size:(g + 1) * size] * n, *weights[1:]]
            made = type(layer).from_config(config)
            x = made(x)
            if weights:
                made.set_weights(weights)
        members.append(keras.Model(inputs, x, name=f"{model.name}_{g + 1}"))
    return members
