"""A served model is the saved network computing in bfloat16 where the CPU has it, and answers as it does."""
import numpy as np
import pytest

from cifar_core import data, explain, fast_inference, fast_layers, inference, inside

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def saved():
    """The bundled model as saved (float32), and its bfloat16 copy; the copy is made on any CPU (without
    bfloat16 maths it is slow, not wrong)."""
    import keras
    model = keras.models.load_model(inference.DEFAULT_MODEL, compile=False)
    return model, fast_inference._in_bfloat16(model)


def test_the_copy_has_the_same_layers_and_weights_with_a_float32_head(saved):
    import keras
    model, copy = saved
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    for kept, copied in zip(model.weights, copy.weights):
        np.testing.assert_array_equal(kept, copied)
    assert fast_inference.precision(copy) == "bfloat16" and fast_inference.precision(model) == "float32"
    policies = {layer.name: layer.dtype_policy.name for layer in copy.layers}
    assert policies["whiten"] == policies["features"] == "mixed_bfloat16"
    assert all(policies[name] == "float32" for name in ("normalise", "logits", "probabilities"))
    assert sum(policy == "mixed_bfloat16" for policy in policies.values()) > 20
    # GELU in float32 as plain ops: a compiled one would be compiled again for every batch size served
    gelus = [layer for layer in copy.layers if getattr(layer, "activation", None) is keras.activations.gelu]
    assert gelus and all(type(layer) is fast_layers.activation(compiled=False) for layer in gelus)


def test_the_copy_answers_as_the_saved_model_does(saved, real_archive):
    model, copy = saved
    pictures = data.load(real_archive).x_test[:1000]
    exact = inference.predict(model, pictures, calibrated=False)
    served = inference.predict(copy, pictures, calibrated=False)
    assert served.dtype == np.float32
    np.testing.assert_allclose(served.sum(axis=1), 1, atol=1e-5)     # a float32 softmax
    assert np.abs(served - exact).mean() < 0.005
    assert (served.argmax(axis=1) == exact.argmax(axis=1)).mean() >= 0.99


def test_what_looks_inside_by_layer_name_works_on_the_copy(saved, real_archive):
    model, copy = saved
    picture = data.load(real_archive).x_test[0]
    answer = int(inference.predict(model, picture).argmax())
    heat = explain.gradcam(copy, picture, answer)
    np.testing.assert_allclose(heat, explain.gradcam(model, picture, answer), atol=0.02)
    assert heat.max() > 0.5                 # a map, not zeros: the class the model answers drew on the picture
    maps = inside.activations(copy, picture[None])
    assert len(maps) == len(inside.activations(model, picture[None]))
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)


def test_served_is_the_copy_only_where_bfloat16_is_fast(saved, monkeypatch):
    model, _ = saved
    monkeypatch.setattr(fast_inference, "_bfloat16_here", lambda: False)
    assert fast_inference.served(model) is model
    monkeypatch.setattr(fast_inference, "_bfloat16_here", lambda: True)
    copy = fast_inference.served(model)
    assert copy is not model and copy.get_layer("whiten").dtype_policy.name == "mixed_bfloat16"
    assert inference.load_model().get_layer("whiten").dtype_policy.name == "mixed_bfloat16"


def test_a_model_that_cannot_be_copied_is_served_as_it_is(monkeypatch):
    import keras

    class Unrebuildable(keras.layers.Layer):     # a layer with no config to rebuild it from
        def call(self, x):
            return x * 2

        def get_config(self):
            raise NotImplementedError

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(Unrebuildable()(inputs)))
    monkeypatch.setattr(fast_inference, "_bfloat16_here", lambda: True)
    assert fast_inference.served(model) is model
