"""A saved model's networks in 8-bit integers, run by TensorFlow Lite's XNNPACK kernels: what
`inference.predict` answers with for a model that has them beside it (`x.int8.npz` beside `x.keras`,
made by `python -m cifar_core quantize` or `combine`).

    save(model, pictures, path) -> writes `companion(path)`: each of the model's networks' feature
                                   layers in int8, their ranges measured on `pictures` (training
                                   pictures the model never trained on, and their mirror images)
    load(model, path)           -> [Network, ...] from `companion(path)` if it was made from this very
                                   file and this machine can run it, else []
    Network                     -> callable: float32 pixels (n, 32, 32, 3) -> probabilities (n, 10)
    Together(networks)          -> callable: their scores averaged before the softmax, as a side-by-side
                                   model answers

Why: on a CPU with 8-bit dot products (AVX-512 VNNI, or ARM's dot product) the convolutions do twice
the multiply-adds per instruction that bfloat16 does. Measured on a 2-core AMD EPYC, one of the
bundled model's networks in batches of 100: 2,950-3,100 pictures/s in int8 against 800 in float32
through the same kernels; the 10,000 test pictures' accuracy moved by 4-6 in 10,000 per network.

What keeps it that close:
- each BatchNorm is folded into its convolution first (`fast_inference.answering`) and the input's
  normalisation into the first convolution, so the pixels (0-255) are the int8 input exactly and
  every rounding is one a convolution makes (converted as saved, with the normalisation and the
  BatchNorms as ops of their own, a network lost up to 31 pictures in 10,000);
- the head (the dense layer and the logits' scale) stays float32, in numpy: TensorFlow Lite's int8
  softmax gives probabilities in steps of 1/256, too coarse for "% sure" and for averaging.

The model itself stays as it was saved, and so do its float32 layers for what looks inside it
(`explain`, `inside`, `embedding`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import queue
import threading
import warnings
from pathlib import Path

import numpy as np

from cifar_core import rundir

SUFFIX = ".int8.npz"
MAX_BYTES = 64 * 2**20          # a companion larger than this is not read
AT_ONCE = 4                     # interpreters per network: more calls than this wait for one
PICTURES_PER_CALL = 128         # an interpreter's memory grows to the largest call it has run: this bounds it

# tf.lite.Interpreter warns of its move to another package each time one is made. Said once here, not
# around each making: `warnings.catch_warnings` swaps the process's filters and is not thread-safe, and
# interpreters are made on the server's session threads.
warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated", category=UserWarning)


def companion(path: str | os.PathLike) -> Path:
    """Where a saved model's int8 networks live: `x.int8.npz` beside `x.keras`."""
    return Path(path).with_suffix(SUFFIX)


def digest(path: str | os.PathLike) -> str:
    """The SHA-256 of the model file at `path`: a companion answers only for the file it was made from."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _head(network) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """(kernel, bias, scale, offset) of what follows a network's global pooling ("features"): a dense
    layer, the logits' rescaling and the softmax; None for any other head."""
    from keras import layers
    names = [layer.name for layer in network.layers]
    if "features" not in names:
        return None
    after = network.layers[names.index("features") + 1:]
    scaled = len(after) == 3 and isinstance(after[1], layers.Rescaling)
    if (len(after) not in (2, 3) or not isinstance(after[0], layers.Dense) or (len(after) == 3 and not scaled)
            or after[0].get_config()["activation"] != "linear"
            or after[-1].get_config().get("activation") != "softmax"):
        return None
    kernel, *bias = after[0].get_weights()
    scale, offset = (float(after[1].scale), float(after[1].offset)) if scaled else (1.0, 0.0)
    return (kernel.astype(np.float32), (bias[0] if bias else np.zeros(kernel.shape[1])).astype(np.float32),
            scale, offset)


def _feature_layers(network):
    """`network` up to its features, float32, each BatchNorm folded into its convolution and the input's
    normalisation into the first convolution where it can be (no padding: a padded border would be
    the normalised picture's zero, not the pixels')."""
    import keras
    from keras import layers

    from cifar_core import fast_inference
    folded = source = fast_inference.answering(network, bfloat16=False)
    norm, first = folded.layers[1], folded.layers[2]
    foldable = (isinstance(norm, layers.Normalization) and isinstance(first, layers.Conv2D)
                and first.padding == "valid" and first.use_bias and first.data_format == "channels_last")
    if foldable:
        folded = keras.models.clone_model(
            folded, clone_function=lambda layer: layers.Identity(name=layer.name) if layer is norm
            else layer.__class__.from_config(layer.get_config()))
        for layer in folded.layers:
            if layer.weights:
                layer.set_weights(source.get_layer(layer.name).get_weights())
        mean = np.asarray(norm.mean, np.float64).reshape(-1)
        std = np.maximum(np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1)), keras.backend.epsilon())
        kernel, bias = (np.asarray(w, np.float64) for w in first.get_weights())
        kernel = kernel / std[None, None, :, None]
        folded.get_layer(first.name).set_weights([kernel.astype(np.float32),
                                                  (bias - np.einsum("hwco,c->o", kernel, mean)).astype(np.float32)])
    return keras.Model(folded.input, folded.get_layer("features").output)


def _flatbuffer(network, pictures: np.ndarray) -> bytes:
    """`network`'s feature layers as a TensorFlow Lite model in int8 (float32 in and out), each
    tensor's range measured on `pictures` and their mirror images."""
    import tensorflow as tf
    calibration = np.concatenate([pictures, pictures[:, :, ::-1]]).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(_feature_layers(network))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i:i + 50]] for i in range(0, len(calibration), 50))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")        # the converter prints the graph's signature and warns of tf.lite's future
        return converter.convert()


def save(model, pictures: np.ndarray, path: str | os.PathLike, made_from: str | None = None) -> bool:
    """Write `companion(path)` for `model`, saved at `path`: its networks' (`models.apart`, or itself)
    feature layers in int8, for the file whose `digest` is `made_from` (by default the file at `path` now:
    give the digest of the bytes `model` was loaded from where the file may change meanwhile). False,
    and nothing written, for a model whose head is not a dense layer before a softmax, one the converter
    fails on, or off TensorFlow (its converter makes them): the model is then served as saved."""
    import keras

    from cifar_core import models
    if keras.backend.backend() != "tensorflow":
        return False
    networks = models.apart(model) if models.members_of(model) > 1 else [model]
    if any(_head(network) is None for network in networks):
        return False
    try:
        blobs = {f"network{i}": np.frombuffer(_flatbuffer(network, pictures), np.uint8)
                 for i, network in enumerate(networks)}
    except Exception:       # a layer TensorFlow Lite cannot convert: served as saved, as off TensorFlow
        return False
    # Written whole (`rundir.whole_file`), so a server loading the model never reads half of it.
    with rundir.whole_file(companion(path)) as file:
        np.savez(file, made_from=np.array(made_from or digest(path)), **blobs)
    return True


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Network:
    """One network in int8: its feature layers run by TensorFlow Lite, its head in float32. Safe to call
    from many threads: each call takes an interpreter of its own (TensorFlow Lite's are not thread-safe;
    `invoke` lets go of the GIL, so two calls use two cores), up to AT_ONCE, kept for the next calls."""

    def __init__(self, flatbuffer: bytes, head: tuple[np.ndarray, np.ndarray, float, float]):
        self._flatbuffer, self._head = flatbuffer, head
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._made, self._making = 0, threading.Lock()
        self._interpreter()                # a damaged flatbuffer fails here, at load, not at a visitor's call

    def _interpreter(self):
        import tensorflow as tf
        interpreter = tf.lite.Interpreter(model_content=self._flatbuffer, num_threads=_cores())
        interpreter.allocate_tensors()
        self._idle.put(interpreter)
        self._made += 1

    def _take(self):
        while True:
            with self._making:
                if self._idle.empty() and self._made < AT_ONCE:
                    self._interpreter()
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:     # all busy; or one failed and was let go (`_features`): one may be made now
                continue

    def _features(self, pictures: np.ndarray) -> np.ndarray:
        interpreter = self._take()
        try:
            given, wanted = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            if tuple(given["shape"]) != pictures.shape:
                interpreter.resize_tensor_input(given["index"], pictures.shape)
                interpreter.allocate_tensors()
            interpreter.set_tensor(given["index"], pictures)
            interpreter.invoke()
            features = interpreter.get_tensor(wanted["index"])      # a copy: the interpreter may be reused
        except BaseException:
            # Perhaps resized and never allocated: let it go, and let another be made in its place.
            with self._making:
                self._made -= 1
            raise
        self._idle.put(interpreter)
        return features

    def scores(self, pictures: np.ndarray) -> np.ndarray:
        """(n, 10) scores before the softmax for float32 pixels (n, 32, 32, 3)."""
        pictures = np.ascontiguousarray(pictures, np.float32)
        kernel, bias, scale, offset = self._head
        if not len(pictures):
            return np.zeros((0, len(bias)), np.float32)
        features = np.concatenate([self._features(pictures[i:i + PICTURES_PER_CALL])
                                   for i in range(0, len(pictures), PICTURES_PER_CALL)])
        return (features @ kernel + bias) * scale + offset

    def __call__(self, pictures: np.ndarray) -> np.ndarray:
        return _softmax(self.scores(pictures))


class Together:
    """Networks side by side: their scores averaged before the softmax (`models.side_by_side`)."""

    def __init__(self, networks: list[Network]):
        self.networks = networks

    def __call__(self, pictures: np.ndarray) -> np.ndarray:
        return _softmax(np.mean([network.scores(pictures) for network in self.networks], axis=0))


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.cache
def _gpu_here() -> bool:
    from cifar_core import devices
    return bool(devices.detect().gpus)


def load(model, path: str | os.PathLike) -> list[Network]:
    """The int8 networks beside the model saved at `path` (loaded as `model`), or [] where there are none
    made from this very file, or this machine cannot run them (no TensorFlow Lite) or has a GPU (which
    runs the networks as saved faster than the CPU runs them in int8): it is then served as saved
    (`fast_inference`)."""
    from cifar_core import models
    beside = companion(path)
    try:
        if not beside.is_file() or beside.stat().st_size > MAX_BYTES or _gpu_here():
            return []
        with np.load(beside, allow_pickle=False) as saved:
            if str(saved["made_from"]) != digest(path):
                return []           # made from another model saved here before: never answer for it
            networks = models.apart(model) if models.members_of(model) > 1 else [model]
            heads = [_head(network) for network in networks]
            if len(saved.files) != len(networks) + 1 or any(head is None for head in heads):
                return []
            return [Network(saved[f"network{i}"].tobytes(), head) for i, head in enumerate(heads)]
    except Exception:         # unreadable, damaged, or no TensorFlow Lite here: served as saved
        return []
