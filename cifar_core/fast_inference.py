"""The network `inference.predict` runs for a loaded model: the same answers, computed the way this
machine computes them fastest. The inference-time counterpart of `fast_layers`; `app_pages/serving.py`
is the Streamlit server's own.

    answering(model) -> a copy of the network with each BatchNorm folded into the convolution before it,
                        and, where the CPU has AVX-512 BF16 or AMX, its feature layers in bfloat16
    serve(model, in_int8=None)
                     -> `predict` answers for `model` with `answering(model)` from now on, or with its
                        networks in int8 where they were saved beside it (`int8.load`)
    refresh(model)   -> a served model's copy takes the model's weights again, after they changed
    network(model)   -> what `predict` runs for `model`: that copy once served, else the model itself
    networks(model)  -> the networks a served side-by-side model's copy runs, each alone (`predict`
                        looks with the first only, and with the others where it is unsure), else []
    precision(model) -> "int8", "bfloat16" or "float32": what `network(model)`'s convolutions compute in

The model itself stays as it was saved: what looks inside a network (`inside`,
`explain`, `embedding`, the layer table) sees its real layers and weights, in
float32 (a picture at a time, as fast there). `inference.load_model` serves
what it loads, and a trainer the network its checkpoints are copied into: the
copy holds the weights it was made from until `refresh` gives it new ones, so
a model still training answers with its own.

Folding a BatchNorm: at inference it is a fixed scale and shift per channel,
which the convolution before it can apply to its own kernel and bias; across a
max pooling too, where every scale is positive (our BatchNorms have no scale
of their own, so theirs always are). One op less a layer. Measured on a 2-core
AMD EPYC, three alternating runs of the bundled model: 829-845 pictures/s in
bfloat16 with mirror test-time augmentation instead of 728-809 unfolded; a
photo's four 32x32 pictures alone 4.5-4.9 ms instead of 7.6-7.7, though a whole
12-megapixel photo stayed at 33-35 ms either way (decoding it takes 26-27 ms and
leaves the weights out of the caches). Folded in float32, answers move by
rounding (1e-4 at most) and batches run 443-464 pictures/s instead of 420-427.

Why bfloat16: on a CPU with bfloat16 maths the forward pass is about twice as
fast (airbench: 409 against 759 pictures/s with mirror test-time augmentation,
2-core AMD EPYC with AVX-512 BF16), which a shared server's evaluations and
quizzes feel. The bundled model's test accuracy moved by 2 pictures in 10,000
(91.04% to 91.06%), the "% sure" of its answers by 0.19 points on average. Two things keep it that
close and that fast:

- the input's normalisation and the head (the dense layer, the logits' scale and
  the softmax) stay float32, so the probabilities, and the "% sure" made from
  them, keep float32's precision;
- GELU is worked out in float32 (`fast_layers.activation`, as plain ops: compiled
  by XLA it was 10% faster but compiled again for every new batch size, 150 ms
  and 1.5 MB each): Keras' own GELU in bfloat16 took half the gain (502-551
  against 734-763 pictures/s, in one run).
"""
from __future__ import annotations

import functools
import weakref

import numpy as np

_served: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()    # model -> its answering copy
_apart: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()     # side-by-side copy -> its networks


@functools.cache
def _bfloat16_here() -> bool:
    """Whether this machine's fastest way to run a network is bfloat16 on its CPU (no GPU, TensorFlow)."""
    import keras

    from cifar_core import devices
    return keras.backend.backend() == "tensorflow" and devices.precision_for(devices.detect()) == "mixed_bfloat16"


def _only_input_from(layer):
    """The layer whose output is `layer`'s one input, if `layer` is called once on one tensor and that
    tensor goes nowhere else; else None."""
    if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
        return None
    source = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
    return source if source is not None and len(source._outbound_nodes) == 1 else None


def _batchnorm_as_scale_and_shift(batchnorm) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per channel: what a BatchNorm does at inference, x * scale + shift."""
    mean, variance = (np.asarray(v, np.float64) for v in (batchnorm.moving_mean, batchnorm.moving_variance))
    gamma = np.asarray(batchnorm.gamma, np.float64) if batchnorm.scale else 1.0
    beta = np.asarray(batchnorm.beta, np.float64) if batchnorm.center else 0.0
    scale = gamma / np.sqrt(variance + batchnorm.epsilon)
    return scale, beta - mean * scale


def _folds(model) -> dict:
    """{BatchNorm name: the Conv2D before it} for every BatchNorm that can be folded into a convolution:
    right after it, or after a max pooling right after it when every scale is positive."""
    from keras import layers
    folds = {}
    for layer in model.layers:
        if type(layer) is not layers.BatchNormalization or layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        before = _only_input_from(layer)
        if type(before) is layers.MaxPooling2D and (_batchnorm_as_scale_and_shift(layer)[0] > 0).all():
            before = _only_input_from(before)
        if (type(before) is layers.Conv2D and before.data_format == "channels_last"
                and before.get_config()["activation"] == "linear"):
            folds[layer.name] = before
    return folds


@functools.cache
def _folded_batchnorm():
    """The layer left where a BatchNorm was folded away: it passes its input on, and takes the
    arguments a BatchNorm is called with."""
    from keras import layers

    class FoldedBatchNormalization(layers.Layer):
        def call(self, inputs, training=None, mask=None):
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    return FoldedBatchNormalization


def _folded_weights(conv, batchnorm) -> list[np.ndarray]:
    """[kernel, bias] of `conv` with `batchnorm` applied to its output."""
    scale, shift = _batchnorm_as_scale_and_shift(batchnorm)
    kernel, *bias = conv.get_weights()
    bias = bias[0].astype(np.float64) if bias else 0.0
    return [(kernel * scale).astype(np.float32), (bias * scale + shift).astype(np.float32)]


def answering(model, bfloat16: bool | None = None):
    """A copy of `model` that answers as it does, faster (see the module's docstring): its BatchNorms
    folded into their convolutions (each leaves a pass-through layer of the same name), and in
    bfloat16 where the CPU computes it natively (`bfloat16`: True or False, whatever the CPU). A model
    that cannot be copied layer by layer (a layer without a config Keras can rebuild) is its own
    answering network."""
    import keras
    from keras import layers

    from cifar_core import fast_layers, models
    if models.members_of(model) > 1:
        return _side_by_side(model)
    in_bfloat16 = _bfloat16_here() if bfloat16 is None else bfloat16
    feature_layers = (layers.Conv2D, layers.BatchNormalization, layers.Activation, layers.MaxPooling2D,
                      layers.GlobalMaxPooling2D)
    folds = _folds(model)
    folded_convs = {conv.name: model.get_layer(batchnorm) for batchnorm, conv in folds.items()}

    def clone(layer):
        config = layer.get_config()
        kind = type(layer)
        if in_bfloat16 and isinstance(layer, feature_layers) and config.get("activation") != "softmax":
            # Weights kept in bfloat16: the cast mixed_bfloat16 makes of float32 weights at every call,
            # made once, so the same numbers. Three alternating runs on a 2-core Xeon with AMX: a photo's
            # four pictures 5.1-5.4 ms instead of 5.6-5.8, batches 1,401-1,427 pictures/s instead of
            # 1,349-1,387 (mirror TTA); the profile had a 256-channel kernel's cast at 0.3 ms a call.
            config["dtype"] = "bfloat16"
            if kind is layers.Activation:
                kind = fast_layers.activation(compiled=False)
        if layer.name in folds:
            return _folded_batchnorm()(name=layer.name, dtype=config["dtype"])
        if layer.name in folded_convs:
            config["use_bias"] = True
        return kind.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except Exception:       # float32 answers are right, only slower
        return model
    _give_weights(model, copy, folds)
    return copy


def _side_by_side(model):
    """`answering` for networks put side by side (`models.side_by_side`): each network's answering copy
    (`models.apart`), run on the same pictures, their scores (the layer before the softmax) averaged
    before the softmax. TensorFlow runs the networks at once, side by side on the cores: two airbench
    networks with mirror TTA answered 1,256-1,265 pictures/s in batches on a 2-core Xeon, one alone
    1,950-1,966/s in the same run. The networks' copies are kept too (`networks`): `predict` shows a
    picture to the first alone first."""
    import keras
    from keras import layers

    from cifar_core import models
    if model.layers[-1].get_config().get("activation") != "softmax":
        return model
    copies = [answering(member) for member in models.apart(model)]
    pictures = keras.Input(model.input_shape[1:])
    scores = layers.Average()([keras.Model(c.input, c.layers[-2].output)(pictures) for c in copies])
    together = keras.Model(pictures, layers.Activation("softmax", dtype="float32")(scores))
    _apart[together] = copies       # the same layers, each network whole: no weights are held twice
    return together


def _give_weights(model, copy, folds: dict) -> None:
    """`copy` (`answering(model)`, made with these `folds`) takes `model`'s weights as they are now."""
    folded_convs = {conv.name: model.get_layer(batchnorm) for batchnorm, conv in folds.items()}
    for layer in model.layers:
        if layer.weights and layer.name not in folds:
            copy.get_layer(layer.name).set_weights(_folded_weights(layer, folded_convs[layer.name])
                                                   if layer.name in folded_convs else layer.get_weights())


def serve(model, in_int8: list | None = None) -> None:
    """Have `inference.predict` answer for `model` with `answering(model)`, made now, or with its
    networks `in_int8` (`int8.load`: saved beside it) where it has them. The copy keeps the weights it
    was made from: after they change, `refresh(model)`."""
    from cifar_core import int8
    if in_int8:
        _served[model] = in_int8[0] if len(in_int8) == 1 else int8.Together(in_int8)
        if len(in_int8) > 1:
            _apart[_served[model]] = in_int8
        return
    _served[model] = answering(model)


def refresh(model) -> None:
    """A served `model`'s copy takes its weights again, after they changed (a trainer's checkpoint,
    tested after every epoch), in place, so its compiled forward pass is kept. A copy whose folds
    no longer hold (a BatchNorm's scale turned negative behind a pooling) is made anew."""
    copy = _served.get(model)
    if copy is None or copy is model:
        return
    from cifar_core import models
    # int8 networks are the weights as saved; a copy of networks side by side is made of theirs: made anew
    if not hasattr(copy, "layers") or models.members_of(model) > 1:
        serve(model)
        return
    folds = _folds(model)
    if set(folds) == {layer.name for layer in copy.layers if type(layer) is _folded_batchnorm()}:
        _give_weights(model, copy, folds)
    else:
        serve(model)


def network(model):
    """What `inference.predict` runs for `model`: its answering copy if it is served, else itself."""
    return _served.get(model, model)


def networks(model) -> list:
    """The networks `network(model)` runs side by side, each alone and answering with its own
    probabilities (their scores averaged before the softmax are the copy's answer); [] for one network."""
    return _apart.get(network(model), [])


def precision(model) -> str:
    """What `network(model)`'s convolutions compute in: "int8", "bfloat16" or "float32"."""
    import keras
    from keras import layers

    from cifar_core import int8
    if isinstance(network(model), (int8.Network, int8.Together)):
        return "int8"

    def convolutions(net):     # a side-by-side model's answering copy holds its networks' copies
        for layer in net.layers:
            if isinstance(layer, keras.Model):
                yield from convolutions(layer)
            elif isinstance(layer, layers.Conv2D):
                yield layer
    policies = {layer.dtype_policy.compute_dtype for layer in convolutions(network(model))}
    return "bfloat16" if "bfloat16" in policies else "float32"
