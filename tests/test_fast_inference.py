"""A loaded model answers through a faster copy (BatchNorms folded into their convolutions, bfloat16 where
the CPU has it) whose answers are the saved model's; everything else sees the model as saved."""
import gc
import shutil
import weakref

import numpy as np
import pytest

from cifar_core import data, explain, fast_inference, fast_layers, inference, inside, models

pytest.importorskip("tensorflow")


def _answering(model, bfloat16: bool):
    """`fast_inference.answering(model)` as a CPU with (or without) bfloat16 maths makes it: the bfloat16
    copy is made on any CPU (without bfloat16 maths it is slow, not wrong)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_inference, "_bfloat16_here", lambda: bfloat16)
        return fast_inference.answering(model)


def _one_network():
    """The first of the bundled model's networks (`models.side_by_side`), whole, as saved (float32)."""
    import keras
    return models.apart(keras.models.load_model(inference.DEFAULT_MODEL, compile=False))[0]


def _bundled_without_int8(folder):
    """The bundled model as a model saved without int8 networks beside it loads (`int8`): served by its
    folded copy."""
    for suffix in (".keras", ".json"):
        shutil.copyfile(inference.DEFAULT_MODEL.with_suffix(suffix), (folder / "model").with_suffix(suffix))
    return inference.load_model(folder / "model.keras")


@pytest.fixture(scope="module")
def saved():
    """One trained airbench network as saved (float32), and its answering copy in bfloat16."""
    model = _one_network()
    return model, _answering(model, bfloat16=True)


@pytest.fixture(scope="module")
def test_pictures(real_archive):
    return data.load(real_archive).x_test[:1000]


def test_the_copy_folds_its_batchnorms_and_computes_its_features_in_bfloat16(saved):
    import keras
    from keras import layers
    model, copy = saved
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    batchnorms = [layer.name for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert len(batchnorms) == 6
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in copy.layers)
    assert all(copy.get_layer(name).weights == [] for name in batchnorms)
    convs = [layer for layer in copy.layers if isinstance(layer, layers.Conv2D)]
    whiten = model.get_layer("whiten").use_bias       # nothing after it to fold: as saved
    assert sum(conv.use_bias for conv in convs) == 6 + whiten and copy.get_layer("whiten").use_bias == whiten
    assert fast_inference.precision(model) == "float32"
    policies = {layer.name: layer.dtype_policy.name for layer in copy.layers}
    assert policies["whiten"] == policies["features"] == "bfloat16"
    assert all(policies[name] == "float32" for name in ("normalise", "logits", "probabilities"))
    assert sum(policy == "bfloat16" for policy in policies.values()) > 20
    # Their weights are kept in bfloat16, not cast from float32 at every call.
    assert {weight.dtype for conv in convs for weight in conv.weights} == {"bfloat16"}
    # GELU in float32 as plain ops: a compiled one would be compiled again for every batch size served
    gelus = [layer for layer in copy.layers if getattr(layer, "activation", None) is keras.activations.gelu]
    assert gelus and all(type(layer) is fast_layers.activation(compiled=False) for layer in gelus)


def test_folding_alone_changes_no_answer(saved, test_pictures):
    """In float32 (a CPU without bfloat16 maths), the folded copy answers as the model does, to rounding."""
    model, _ = saved
    folded = _answering(model, bfloat16=False)
    assert fast_inference.precision(folded) == "float32"
    np.testing.assert_allclose(inference.predict(folded, test_pictures, calibrated=False, sure_enough=None),
                               inference.predict(model, test_pictures, calibrated=False, sure_enough=None), atol=1e-4)


def test_a_batchnorm_is_folded_only_where_its_sums_allow():
    """Straight after a convolution any BatchNorm folds; across a max pooling only one whose scales are all
    positive (a negative one would turn the maximum into a minimum); after anything else, none."""
    import keras
    from keras import layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv_a")(inputs)
    x = layers.BatchNormalization(name="direct")(x)
    x = layers.Conv2D(4, 3, padding="same", name="conv_b")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.BatchNormalization(name="positive_after_pool")(x)
    x = layers.Conv2D(4, 3, padding="same", name="conv_c")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.BatchNormalization(name="negative_after_pool")(x)
    x = layers.Activation("relu")(x)
    x = layers.BatchNormalization(name="after_relu")(x)
    model = keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma = rng.uniform(0.5, 2, 4) * (-1 if layer.name == "negative_after_pool" else 1)
            layer.set_weights([gamma, rng.normal(0, 1, 4), rng.normal(0, 1, 4), rng.uniform(0.5, 2, 4)])
    assert {name: conv.name for name, conv in fast_inference._folds(model).items()} == {
        "direct": "conv_a", "positive_after_pool": "conv_b"}
    pictures = rng.integers(0, 256, (16, 8, 8, 3)).astype(np.float32)
    copy = _answering(model, bfloat16=False)
    np.testing.assert_allclose(copy(pictures), model(pictures), rtol=1e-4, atol=1e-4)


def test_the_bfloat16_copy_answers_as_the_saved_model_does(saved, test_pictures):
    model, copy = saved
    exact = inference.predict(model, test_pictures, calibrated=False)
    served = inference.predict(copy, test_pictures, calibrated=False)
    assert served.dtype == np.float32
    np.testing.assert_allclose(served.sum(axis=1), 1, atol=1e-5)     # a float32 softmax
    assert np.abs(served - exact).mean() < 0.005
    assert (served.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.99


def test_a_loaded_model_answers_through_its_copy_and_is_seen_as_saved(test_pictures, tmp_path):
    """`predict` runs the copy; what looks inside sees the model's own layers, BatchNorms and all."""
    import keras
    from keras import layers
    model = _bundled_without_int8(tmp_path)
    copy = fast_inference.network(model)
    assert copy is not model and fast_inference.precision(model) == fast_inference.precision(copy)
    assert fast_inference.precision(model) == ("bfloat16" if fast_inference._bfloat16_here() else "float32")
    np.testing.assert_allclose(inference.predict(model, test_pictures[:50], calibrated=False, sure_enough=None),
                               inference.predict(copy, test_pictures[:50], calibrated=False, sure_enough=None),
                               atol=1e-6)
    assert sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers) == 6
    assert "BatchNormalization" in {row["type"] for row in inside.layer_table(model)}
    picture = test_pictures[0]
    answer = int(inference.predict(model, picture).argmax())
    assert explain.gradcam(model, picture, answer).max() > 0.5     # a map, not zeros
    # A model nobody served (still training, say) answers with its own weights.
    untouched = keras.models.load_model(inference.DEFAULT_MODEL, compile=False)
    assert fast_inference.network(untouched) is untouched


@pytest.mark.parametrize("in_int8", [True, False])
def test_the_copy_lives_as_long_as_its_model(in_int8, tmp_path):
    """A server loads models again and again: each copy (its int8 networks, or its folded copy), and the
    forward pass compiled for it, must go with its model."""
    model = inference.load_model() if in_int8 else _bundled_without_int8(tmp_path)
    assert (fast_inference.precision(model) == "int8") == in_int8
    inference.predict(model, np.zeros((2, 32, 32, 3), np.uint8))    # its networks alone compiled too
    copy = weakref.ref(fast_inference.network(model))
    networks = [weakref.ref(network) for network in fast_inference.networks(model)]
    assert len(networks) == 2
    del model
    gc.collect()        # the model, in reference cycles as every Keras model is; its entry goes with it
    gc.collect()        # then the copy, unreachable from that moment
    gc.collect()        # then its networks alone, which only the copy's entry held
    assert copy() is None and all(network() is None for network in networks)


def test_a_model_that_cannot_be_copied_answers_itself():
    import keras

    class Unrebuildable(keras.layers.Layer):     # a layer with no config to rebuild it from
        def call(self, x):
            return x * 2

        def get_config(self):
            raise NotImplementedError

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(Unrebuildable()(inputs)))
    assert _answering(model, bfloat16=True) is model


def test_a_served_model_whose_weights_change_answers_with_them_after_a_refresh(test_pictures):
    """A trainer serves the network its checkpoints are copied into and refreshes the copy after each
    one: the copy then answers as one made from the new weights, through the same compiled pass."""
    import keras
    model = _one_network()
    fast_inference.serve(model)
    before = inference.predict(model, test_pictures[:64], calibrated=False)
    copy, compiled = fast_inference.network(model), inference._forward(model)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) * (w.std() or 1)
                       for w in model.get_weights()])
    assert np.array_equal(inference.predict(model, test_pictures[:64], calibrated=False), before)  # not yet
    fast_inference.refresh(model)
    assert fast_inference.network(model) is copy and inference._forward(model) is compiled
    fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    fast_inference.serve(fresh)
    np.testing.assert_array_equal(inference.predict(model, test_pictures[:64], calibrated=False),
                                  inference.predict(fresh, test_pictures[:64], calibrated=False))
    assert not np.allclose(inference.predict(model, test_pictures[:64], calibrated=False), before, atol=1e-3)
    # A model nobody served has no copy to refresh.
    untouched = keras.models.load_model(inference.DEFAULT_MODEL, compile=False)
    fast_inference.refresh(untouched)
    assert fast_inference.network(untouched) is untouched


def test_networks_side_by_side_are_served_apart(test_pictures, tmp_path):
    """The bundled model holds two networks in grouped convolutions (`models.side_by_side`); it answers
    through the two, each folded and in bfloat16, run side by side, as the model as saved answers."""
    import keras
    model = _bundled_without_int8(tmp_path)
    assert models.members_of(model) == 2
    nested = [layer for layer in fast_inference.network(model).layers if isinstance(layer, keras.Model)]
    assert len(nested) == 2 and all(getattr(layer, "groups", 1) == 1 for net in nested for layer in net.layers)
    saved = keras.models.load_model(inference.DEFAULT_MODEL, compile=False)
    saved.calibration_temperature = model.calibration_temperature
    # Every network on every picture (the served model's first network alone answers where it is sure).
    served = inference.predict(model, test_pictures[:300], calibrated=False, sure_enough=None)
    exact = inference.predict(saved, test_pictures[:300], calibrated=False, sure_enough=None)
    assert len(fast_inference.networks(model)) == 2 and fast_inference.networks(saved) == []
    assert np.abs(served - exact).mean() < 0.005 and (served.argmax(1) == exact.argmax(1)).mean() >= 0.98
