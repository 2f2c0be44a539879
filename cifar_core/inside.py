"""Inside the network: its layers, what each block finds in one picture, and its first filters.

    blocks(model)                     -> the convolutional blocks whose maps are shown, in order
    layer_table(model)                -> one row per layer: its part (a block), name, type, output shape,
                                         weights, what it does
    shown_names(model)                -> each layer's name as the pages show it (Keras' counts made the model's own)
    feature_maps(model, image)        -> each block's maps for one picture, (H, W, C) float32; thread-safe
    strongest(maps)                   -> channel numbers, strongest first (by mean activation)
    map_images(maps, channels, size)  -> those maps as crisp viridis pictures on the block's shared scale
    cached_top_activations(...)       -> per block and channel, the test pictures (and where) it responds to most
    ship_top_activations(path, model, *image_sets)
                                      -> those, kept with a saved model in `x.inside.npz`, so no server searches
    patches(images, field, records)   -> the parts of those pictures the channel can see
    first_filters(model)              -> the first layer's filters as RGB (after a whitening layer, the
                                         first learned layer's too, seen through it)

A block ends at the last activation before the maps shrink (a pooling step) or the network stops
being convolutional: airbench's whitening stem and its three conv-conv blocks; the tutorial CNN's
three conv-pool stages. One sub-model per model returns every block's maps in one call, compiled once
(like inference._forward) and safe to call from many threads.
"""
from __future__ import annotations

import math
import re
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from cifar_core import evaluation, models, snapshots
from cifar_core.data import CLASS_NAMES

TOP = 9                 # test-set patches kept per channel
TOP_PICTURES = 2_000    # how many test pictures (the first ones) are searched for them
SHIPPED_SUFFIX = ".inside.npz"   # beside x.keras: x.inside.npz, the search's findings (`ship_top_activations`)
CHUNK = 128             # pictures per forward call when searching

# Viridis (perceptually uniform, readable in grey and by most colour-blind people) at 9 even steps;
# colours in between are interpolated.
VIRIDIS = np.array([[0x44, 0x01, 0x54], [0x47, 0x2d, 0x7b], [0x3b, 0x52, 0x8b], [0x2c, 0x72, 0x8e],
                    [0x21, 0x91, 0x8c], [0x28, 0xae, 0x80], [0x5e, 0xc9, 0x62], [0xad, 0xdc, 0x30],
                    [0xfd, 0xe7, 0x25]], np.float32)


@dataclass(frozen=True)
class Field:
    """The square of input pixels that one map pixel depends on (its receptive field)."""
    size: int       # pixels across
    step: int       # input pixels between neighbouring map pixels
    offset: int     # top (and left) of the first map pixel's square; negative: it reaches past the edge

    def corner(self, y: int, x: int) -> tuple[int, int]:
        return self.offset + y * self.step, self.offset + x * self.step

    def seen(self, places: int, picture: int = 32) -> tuple[int, int]:
        """(fewest, most) pixels across of a `picture`-wide picture that one of a row of `places` map
        pixels sees: its square clipped to the picture (a place near an edge sees less of it)."""
        spans = [min(picture, self.offset + i * self.step + self.size) - max(0, self.offset + i * self.step)
                 for i in range(places)]
        return min(spans), max(spans)


@dataclass(frozen=True)
class Block:
    title: str              # "Whitening" for airbench's fixed stem, else "Block 1", "Block 2"...
    layer: str              # the layer whose maps are shown: the block's last activation
    shape: tuple            # (height, width, channels) of its maps
    field: Field


def _window(layer):
    """(kernel, stride, left padding) of a layer that slides a window, else None."""
    from keras import layers
    if isinstance(layer, layers.Conv2D):          # also depthwise and separable convolutions
        k = (layer.kernel_size[0] - 1) * layer.dilation_rate[0] + 1
        stride = layer.strides[0]
    elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        k, stride = layer.pool_size[0], layer.strides[0]
    else:
        return None
    pad = 0
    if layer.padding == "same":                   # TensorFlow pads the extra pixel at the bottom and right
        size = layer.input.shape[1]
        pad = max((-(-size // stride) - 1) * stride + k - size, 0) // 2
    return k, stride, pad


def _bends(layer) -> bool:
    """Whether a layer with 4-D output applies a non-linearity (where a block's maps are worth showing)."""
    from keras import activations, layers
    if isinstance(layer, (layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU)):
        return True
    activation = getattr(layer, "activation", None)
    return activation is not None and activation is not activations.linear


def blocks(model) -> list[Block]:
    """The model's convolutional blocks: each ends at the last activation before the maps change size."""
    size, step, offset, last_conv = 1, 1, 0, ""
    ends: list[tuple[str, tuple, Field, str]] = []
    for layer in model.layers:
        shape = tuple(layer.output.shape) if hasattr(layer, "output") else ()
        if len(shape) != 4:
            continue
        window = _window(layer)
        if window:
            k, stride, pad = window
            size, offset, step = size + (k - 1) * step, offset - pad * step, step * stride
            if hasattr(layer, "filters"):
                last_conv = layer.name
        if _bends(layer):
            if ends and ends[-1][1][1:3] == shape[1:3]:
                ends.pop()                                # same size: the same block goes on
            ends.append((layer.name, shape, Field(size, step, offset), last_conv))
    found, number = [], 0
    for name, shape, field, conv in ends:
        whitening = conv == "whiten"
        number += not whitening
        found.append(Block("Whitening" if whitening else f"Block {number}", name, shape[1:], field))
    return found


_lock = threading.Lock()     # building and tracing a model's probe happens once, by one thread
_probes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe(model):
    """(blocks, forward): forward takes float32 pictures (N, 32, 32, 3) and returns every block's maps
    (float32) in one call. Built and traced once per model; a traced tf.function may be called from
    many threads at once."""
    found = _probes.get(model)
    if found is not None:
        return found
    import keras
    with _lock:
        found = _probes.get(model)
        if found is None:
            shown = blocks(model)
            probe = keras.Model(model.input, [model.get_layer(b.layer).output for b in shown])
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                def run(x):
                    return [tf.cast(t, tf.float32) for t in tf.nest.flatten(probe(x, training=False))]
                forward = tf.function(run, input_signature=[
                    tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
                forward(np.zeros((1, *model.input_shape[1:]), np.float32))      # trace now, under the lock
            else:
                def forward(x):
                    return [keras.ops.cast(t, "float32") for t in keras.tree.flatten(probe(x, training=False))]
            found = _probes[model] = (shown, forward)
    return found


def activations(model, images: np.ndarray) -> list[np.ndarray]:
    """Every block's maps for uint8 pictures (N, 32, 32, 3): a list of (N, H, W, C) float32 arrays."""
    _, forward = _probe(model)
    return [np.asarray(t, np.float32) for t in forward(np.asarray(images, np.float32))]


def feature_maps(model, image: np.ndarray) -> list[np.ndarray]:
    """Every block's maps for one (32, 32, 3) picture: a list of (H, W, C) float32 arrays."""
    return [maps[0] for maps in activations(model, np.asarray(image)[None])]


def strongest(maps: np.ndarray) -> np.ndarray:
    """The channels of (H, W, C) maps, the one with the highest mean activation first."""
    return np.argsort(-maps.mean(axis=(0, 1)), kind="stable")


def colour(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Values as viridis colours (uint8 RGB): `low` and below dark purple, `high` and above yellow."""
    scaled = np.clip((np.asarray(values, np.float32) - low) / (high - low), 0, 1) if high > low else \
        np.zeros(np.shape(values), np.float32)
    position = scaled * (len(VIRIDIS) - 1)
    below = np.minimum(position.astype(np.int64), len(VIRIDIS) - 2)
    part = (position - below)[..., None]
    return ((1 - part) * VIRIDIS[below] + part * VIRIDIS[below + 1]).round().astype(np.uint8)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour enlargement by the whole factor that brings the image nearest `size` across."""
    factor = max(1, round(size / image.shape[0]))
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def map_images(maps: np.ndarray, channels, size: int = 96) -> list[np.ndarray]:
    """Some channels of one block's (H, W, C) maps as pictures, all on the block's own scale
    (so a dim map is a weak one), enlarged crisp to about `size` pixels across."""
    low, high = float(maps.min()), float(maps.max())
    return [enlarge(colour(maps[:, :, c], low, high), size) for c in channels]


def top_activations(model, images: np.ndarray, k: int = TOP) -> list[np.ndarray]:
    """For every block, (C, k, 4) float32: per channel, the k pictures whose strongest response in that
    channel is highest, as [picture index, row, column, value], highest first (-inf where there are
    fewer than k pictures)."""
    shown, _ = _probe(model)
    best = [np.full((b.shape[2], k, 4), -np.inf, np.float32) for b in shown]
    for start in range(0, len(images), CHUNK):
        for i, maps in enumerate(activations(model, images[start:start + CHUNK])):
            n, height, width, channels = maps.shape
            flat = maps.reshape(n, height * width, channels)
            where = flat.argmax(axis=1)                                           # (n, C)
            found = np.stack([np.broadcast_to(np.arange(start, start + n)[:, None], where.shape),
                              where // width, where % width, flat.max(axis=1)], axis=-1)
            merged = np.concatenate([best[i], found.transpose(1, 0, 2).astype(np.float32)], axis=1)
            order = np.argsort(-merged[:, :, 3], axis=1, kind="stable")[:, :k]
            best[i] = np.take_along_axis(merged, order[:, :, None], axis=1)
    return best


def cached_top_activations(model_path, model, images: np.ndarray, data_key: str, k: int = TOP,
                           modified: float | None = None) -> list[np.ndarray]:
    """`top_activations`, computed once per model and data and kept beside the model file, unless the
    model came with them (`ship_top_activations`). As in evaluation.cached_probabilities, the file name
    holds a hash of the model's bytes and of `data_key`, so a retrained model never reads a stale answer,
    and an unwritable folder just means no keeping.

    `modified`: the file's mtime when `model` was loaded from it. A run still training replaces its
    checkpoint every epoch; a file replaced since then (or while it is read) is not this model's, so
    the answer is computed but not kept under its name."""
    import hashlib
    from pathlib import Path
    path = Path(model_path)
    sizes = [b.shape[2] for b in _probe(model)[0]]

    def compute() -> np.ndarray:
        return np.concatenate(top_activations(model, images, k)) if sizes else np.zeros((0, k, 4), np.float32)

    def split(packed: np.ndarray) -> list[np.ndarray]:
        return np.split(packed, np.cumsum(sizes)[:-1]) if sizes else []
    try:
        before = path.stat().st_mtime
        raw = path.read_bytes()
        unchanged = path.stat().st_mtime == before and modified in (None, before)
    except OSError:
        unchanged = False
    if not unchanged:
        return split(compute())
    shipped = evaluation.shipped_beside(path, SHIPPED_SUFFIX, "top", evaluation.fingerprint(images), model=raw)
    if shipped is not None and shipped.shape == (sum(sizes), k, 4):
        return split(shipped.astype(np.float32))
    digest = hashlib.sha256(raw + f"inside-top{k}:{data_key}".encode()).hexdigest()[:16]
    cache = path.with_name(f"{path.stem}.eval-{digest}.npy")
    try:
        packed = np.load(cache)
        if packed.shape == (sum(sizes), k, 4):
            return split(packed)
    except (OSError, ValueError):
        pass
    packed = compute()
    evaluation.keep_beside(cache, packed)
    return split(packed)


def ship_top_activations(model_path, model, *image_sets: np.ndarray, k: int = TOP):
    """Keep with the model saved at `model_path` what the closer look would search for on a server:
    `top_activations` in each set of pictures (the first TOP_PICTURES of each test set the model will
    likely meet), in `x.inside.npz` beside `x.keras` (`evaluation.ship_beside`: fingerprinted by the model
    file and the pictures, so they are only ever used for that model on those pictures). The search is
    seconds of both cores for a wide network (the bundled pair: 21 s of CPU for 2,000 pictures on a 2-core
    EPYC), and its first visitor on a server waited for it."""
    return evaluation.ship_beside(model_path, SHIPPED_SUFFIX, "top", [
        (evaluation.fingerprint(images[:TOP_PICTURES]), np.concatenate(top_activations(model, images[:TOP_PICTURES], k)))
        for images in image_sets])


def _spans(start: int, size: int, limit: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Along one axis: the window drawn (the field, or the whole picture where the field is bigger)
    and the picture's pixels inside the field."""
    window = (start, start + size) if size < limit else (0, limit)
    return window, (max(start, 0), min(start + size, limit))


def patches(images: np.ndarray, field: Field, records: np.ndarray) -> list[np.ndarray]:
    """The square of each picture that a map pixel sees, for records [picture, row, column, ...]. What it
    cannot see is the mean colour: past the picture's edge (what a normalised network's zero padding
    stands for) or, where the square is bigger than the picture, the parts of the picture outside it."""
    fill = np.round(models.MEAN).astype(np.uint8)
    found = []
    for index, row, column, *_ in np.asarray(records):
        if not np.isfinite(index):
            continue
        top, left = field.corner(int(row), int(column))
        (y0, y1), (r0, r1) = _spans(top, field.size, images.shape[1])
        (x0, x1), (c0, c1) = _spans(left, field.size, images.shape[2])
        tile = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        tile[:] = fill
        tile[r0 - y0:r1 - y0, c0 - x0:c1 - x0] = images[int(index), r0:r1, c0:c1]
        found.append(tile)
    return found


def mosaic(pictures: list[np.ndarray], columns: int = 3, size: int = 72, gap: int = 4) -> np.ndarray:
    """Pictures enlarged crisp and laid out in a grid on white."""
    tiles = [enlarge(p, size) for p in pictures]
    if not tiles:
        return np.full((size, size, 3), 255, np.uint8)
    side = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (side + gap) - gap, columns * (side + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (side + gap):r * (side + gap) + side, c * (side + gap):c * (side + gap) + side] = tile
    return out


@dataclass(frozen=True)
class Filters:
    layer: str
    kernel: np.ndarray      # (k, k, 3, N): what each filter multiplies the picture's colours by
    fixed: bool             # set once, not learned (airbench's whitening)
    seen_through: str = ""  # the layer before, folded in (`seen_through`), if not on the picture itself

    @property
    def patches(self) -> np.ndarray:
        """(N, k, k, 3) uint8: each filter drawn as the Train page draws them (`snapshots.as_colours`)."""
        return snapshots.as_colours(np.moveaxis(np.asarray(self.kernel, np.float32), -1, 0))


def compose(first: np.ndarray, second: np.ndarray, stride: int = 1) -> np.ndarray:
    """The kernel of two convolutions in a row, as one: (a, a, C, M) stepping `stride` pixels, then
    (b, b, M, N) stepping 1 -> ((b-1)*stride + a, same, C, N), which steps `stride` pixels. Exact for two
    linear convolutions ('valid' padding, away from the edges)."""
    a, b = first.shape[0], second.shape[0]
    size = (b - 1) * stride + a
    out = np.zeros((size, size, first.shape[2], second.shape[3]), np.float32)
    reach = (b - 1) * stride + 1
    for u in range(a):
        for v in range(a):
            out[u:u + reach:stride, v:v + reach:stride] += np.einsum("cm,ijmo->ijco", first[u, v], second)
    return out


def _slopes(model, stem) -> np.ndarray:
    """(channels,) the slope of the bend after `stem` (GELU or ReLU) at each channel's bias: how much of
    a small change of the stem's output it passes on, around the average picture (all zeros once
    normalised), where the stem's output is its bias. 1/2 everywhere for a stem without one."""
    weights = stem.get_weights()
    bias = np.asarray(weights[1], np.float64) if len(weights) > 1 else np.zeros(weights[0].shape[-1])
    after = model.layers[model.layers.index(stem) + 1]
    if getattr(getattr(after, "activation", None), "__name__", "") == "relu":
        return np.where(bias > 0, 1.0, np.where(bias < 0, 0.0, 0.5))
    cdf = np.array([0.5 * (1 + math.erf(b / math.sqrt(2))) for b in bias])      # GELU(x) = x * cdf(x)
    return cdf + bias * np.exp(-bias ** 2 / 2) / math.sqrt(2 * math.pi)


def seen_through(model, stem, kernel: np.ndarray, groups: int = 1) -> np.ndarray:
    """`kernel`, a convolution's after the fixed layer `stem` and its bend, as it acts on the picture's
    colours: its response to small changes around the average picture, the stem's filters each
    weighted by the bend's slope at its bias (`_slopes`), composed with `kernel`. With no bias that
    slope is 1/2, and as the stem's filters come in +/- pairs (airbench's whitening) this is then
    exactly the odd part of the response to any picture, since GELU(x) and ReLU(x) are each x/2
    plus an even function of x. With `groups` (networks side by side, `models.side_by_side`) each group
    of `kernel`'s filters sees its own share of the stem's."""
    stem_kernel = np.asarray(stem.get_weights()[0], np.float32)
    weighted = np.split((stem_kernel * _slopes(model, stem)).astype(np.float32), groups, axis=-1)
    return np.concatenate([compose(mine, theirs, stem.strides[0])
                           for mine, theirs in zip(weighted, np.split(kernel, groups, axis=-1))], axis=-1)


def first_filters(model) -> list[Filters]:
    """The first convolution's filters on the picture's colours. When that layer is fixed (airbench's
    "whiten"), also the first learned layer's, seen through it (`seen_through`)."""
    from keras import layers
    convs = [l for l in model.layers if isinstance(l, layers.Conv2D)]
    if not convs or convs[0].get_weights()[0].shape[2] != 3:
        return []
    first = convs[0]
    kernel = first.get_weights()[0]
    found = [Filters(first.name, kernel, fixed=not first.trainable or first.name == "whiten")]
    if found[0].fixed and len(convs) > 1:
        nxt = convs[1]
        weights = nxt.get_weights()[0]
        if weights.shape[2] * nxt.groups == kernel.shape[3] and tuple(nxt.strides) == (1, 1):
            found.append(Filters(nxt.name, seen_through(model, first, weights, nxt.groups), fixed=not nxt.trainable,
                                 seen_through=first.name))
    return found


def _does(layer) -> str:
    """What a layer does, in a few plain words."""
    from keras import activations, layers
    name = type(layer).__name__
    activation = getattr(layer, "activation", None)
    bend = getattr(activation, "__name__", "")
    then = f", then {'turns scores into probabilities' if bend == 'softmax' else 'keeps what is positive'}" \
        if activation is not None and activation is not activations.linear else ""
    if name == "InputLayer":
        return "the picture: 32 x 32 pixels, 3 colours each"
    if isinstance(layer, layers.Normalization):
        return "centres each colour on 0 and scales it to a spread of 1"
    if isinstance(layer, layers.Conv2D):
        k = layer.kernel_size
        # airbench's whitening: its filters are set from the data, only its bias may learn (and the table's
        # count of weights holds it)
        fixed = ""
        if not layer.trainable or layer.name == "whiten":
            weights = layer.get_weights()
            learnt = layer.use_bias and len(weights) > 1 and bool(np.any(weights[1]))
            fixed = ", set from the data (only their offsets were learned)" if learnt else ", set from the data, not learned"
        step = f", {layer.strides[0]} pixels apart" if layer.strides[0] > 1 else ""
        # networks side by side (models.side_by_side): each group is one network's layer
        apart = f", in {layer.groups} groups that each read only their own maps" if layer.groups > 1 else ""
        return f"{layer.filters} filters of {k[0]} x {k[1]} pixels{step}{apart}{fixed}{then}"
    if isinstance(layer, layers.MaxPooling2D):
        return f"keeps the strongest value of each {layer.pool_size[0]} x {layer.pool_size[1]} square"
    if isinstance(layer, layers.GlobalMaxPooling2D):
        return "keeps each map's strongest value, wherever it is"
    if isinstance(layer, layers.GlobalAveragePooling2D):
        return "averages each map to one number"
    if isinstance(layer, layers.BatchNormalization):
        return "rescales each map to a steady range"
    if isinstance(layer, layers.Activation):
        # ReLU cuts a negative number to 0; GELU (airbench's) lets a little of it through, down to -0.17.
        return ("turns scores into probabilities" if bend == "softmax" else
                "keeps what is positive, turns the rest to 0" if bend == "relu" else "keeps what is positive, damps the rest")
    if isinstance(layer, layers.Flatten):
        return "lays every map out in one long row of numbers"
    if isinstance(layer, layers.Dense):
        # One score per class; a layer of another size makes numbers for the next (not 64 "scores" for 64 classes).
        made = "scores" if layer.units == len(CLASS_NAMES) else "numbers"
        return f"weighs every number before it into {layer.units} {made}{then}"
    if isinstance(layer, layers.Rescaling):
        return f"multiplies the scores by {float(np.ravel(layer.scale)[0]):.3g}"
    return ""


BEFORE_BLOCKS = "The picture"     # the layers before the first that slides a window: the input, its scaling
AFTER_BLOCKS = "The answer"       # the layers after the last block: from its maps to the ten scores


def _snake_case(name: str) -> str:
    """A layer type's name as Keras names its layers: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def shown_names(model) -> dict[str, str]:
    """Each layer's name as the pages show it. Keras names a layer by its type and a count of every layer
    of that type the process has made before, so a network built after others (a trainer that first built
    its teachers, the bundled pair) had its first convolution named conv2d_6 and its first activation
    activation_7. Such names are counted again within this model, as a network built alone has them
    (conv2d, conv2d_1, ...); names given on purpose (whiten, normalise) stay."""
    names, counts = {}, {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name):
            count = counts[base] = counts.get(base, -1) + 1
            names[layer.name] = f"{base}_{count}" if count else base
        else:
            names[layer.name] = layer.name
    return names


def layer_table(model) -> list[dict]:
    """One row per layer, input to output: the part it belongs to (`BEFORE_BLOCKS`, the title What it
    sees gives its block, or `AFTER_BLOCKS`), its name, type, output shape, weights and what it does;
    `shown` marks the layers whose maps `feature_maps` returns, each the last of its block."""
    ahead = blocks(model)
    shown, names = {b.layer for b in ahead}, shown_names(model)
    started = False
    rows = []
    for layer in model.layers:
        started = started or _window(layer) is not None
        part = (ahead[0].title if ahead else AFTER_BLOCKS) if started else BEFORE_BLOCKS
        shape = tuple(layer.output.shape)[1:] if hasattr(layer, "output") else ()
        rows.append({"part": part, "layer": names[layer.name], "type": type(layer).__name__, "does": _does(layer),
                     "output": " x ".join(str(s) for s in shape), "weights": int(layer.count_params()),
                     "shown": layer.name in shown})
        if ahead and layer.name == ahead[0].layer:
            ahead = ahead[1:]
    return rows
