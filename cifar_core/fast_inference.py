"""A loaded model as this machine answers with it fastest: in bfloat16 on CPUs that compute it natively.
The inference-time counterpart of `fast_layers`; `app_pages/serving.py` is the Streamlit server's own.

    served(model)    -> the same network, its convolutions, BatchNorms, activations and pooling computing
                        in bfloat16 where the CPU has AVX-512 BF16 or AMX; the model itself elsewhere
    precision(model) -> "bfloat16" or "float32": what its convolutions compute in

A saved model computes in float32, so it answers the same on any machine. On a
CPU with bfloat16 maths its forward pass is about twice as fast in bfloat16
(airbench: 409 against 759 pictures/s with mirror test-time augmentation, 2-core
AMD EPYC with AVX-512 BF16), which a shared server's evaluations, quizzes and
looks inside a network feel (a photo's four 32x32 pictures gain less). The
bundled model's test accuracy moved by 1 picture in 10,000 (91.04% to 91.03%),
the "% sure" of its answers by 0.16 points on average. Two things keep it that
close and that fast:

- the input's normalisation and the head (the dense layer, the logits' scale and
  the softmax) stay float32, so the probabilities, and the "% sure" made from
  them, keep float32's precision;
- GELU is worked out in float32 (`fast_layers.activation`, as plain ops: compiled
  by XLA it was 10% faster but compiled again for every new batch size, 150 ms
  and 1.5 MB each): Keras' own GELU in bfloat16 took half the gain (502-551
  against 734-763 pictures/s, in one run).

The copy keeps every layer's name, so what looks inside a network by layer name
(`inside`, `explain`, `embedding`) works on it unchanged.
"""
from __future__ import annotations

import functools


@functools.cache
def _bfloat16_here() -> bool:
    """Whether this machine's fastest way to run a network is bfloat16 on its CPU (no GPU, TensorFlow)."""
    import keras

    from cifar_core import devices
    return keras.backend.backend() == "tensorflow" and devices.precision_for(devices.detect()) == "mixed_bfloat16"


def _in_bfloat16(model):
    """A copy of `model` whose feature layers compute in bfloat16, with the same weights and names."""
    import keras
    from keras import layers

    from cifar_core import fast_layers
    feature_layers = (layers.Conv2D, layers.BatchNormalization, layers.Activation, layers.MaxPooling2D,
                      layers.GlobalMaxPooling2D)

    def clone(layer):
        config = layer.get_config()
        kind = type(layer)
        if isinstance(layer, feature_layers) and config.get("activation") != "softmax":
            config["dtype"] = "mixed_bfloat16"
            if kind is layers.Activation:
                kind = fast_layers.activation(compiled=False)
        return kind.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def served(model):
    """`model` as this machine serves it: see the module's docstring. A model that cannot be copied
    layer by layer (not one of ours) is served as it is."""
    if not _bfloat16_here():
        return model
    try:
        return _in_bfloat16(model)
    except Exception:       # a layer without a config Keras can rebuild: float32 answers are right, only slower
        return model


def precision(model) -> str:
    """What `model`'s convolutions compute in: "bfloat16" for a served copy, else "float32"."""
    from keras import layers
    policies = {layer.dtype_policy.compute_dtype for layer in model.layers if isinstance(layer, layers.Conv2D)}
    return "bfloat16" if "bfloat16" in policies else "float32"
