"""The training-only layers compute what the standard ones compute, gradients included."""
import numpy as np
import pytest

from cifar_core import fast_layers, models

tf = pytest.importorskip("tensorflow")


def _values_and_gradients(function, *inputs, upstream):
    inputs = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = function(*inputs)
    return out, tape.gradient(out, inputs, output_gradients=tf.constant(upstream))


def test_tap_product_convolution_has_the_standard_values_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 7, 8)).astype("float32")
    kernel = rng.normal(size=(3, 3, 8, 5)).astype("float32")
    upstream = rng.normal(size=(3, 7, 7, 5)).astype("float32")
    fast, fast_grads = _values_and_gradients(fast_layers._conv3x3_with_tap_products(), x, kernel, upstream=upstream)
    plain, plain_grads = _values_and_gradients(lambda a, k: tf.nn.conv2d(a, k, 1, "SAME"), x, kernel,
                                               upstream=upstream)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, plain_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_float32_gelu_is_keras_gelu_with_its_gradient(dtype, compiled):
    import keras
    x = tf.cast(tf.linspace(-6.0, 6.0, 1001), dtype).numpy()
    upstream = tf.cast(tf.fill((1001,), 0.7), dtype).numpy()
    gelu = fast_layers._gelu_in_float32() if compiled else fast_layers._gelu_in_float32_ops
    fast, (fast_grad,) = _values_and_gradients(gelu, x, upstream=upstream)
    plain, (plain_grad,) = _values_and_gradients(keras.activations.gelu, x, upstream=upstream)
    assert fast.dtype == plain.dtype == dtype and fast_grad.dtype == dtype
    tolerance = 1e-6 if dtype == "float32" else 1e-2   # bfloat16 keeps 8 bits of each number
    np.testing.assert_allclose(tf.cast(fast, "float32"), tf.cast(plain, "float32"), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(tf.cast(fast_grad, "float32"), tf.cast(plain_grad, "float32"),
                               rtol=tolerance, atol=tolerance)


def _airbench(policy: str, for_training: bool):
    import keras
    keras.config.set_dtype_policy(policy)
    try:
        return models.build("airbench", for_training=for_training)
    finally:
        keras.config.set_dtype_policy("float32")


def _gradients(model, images, labels):
    import keras
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(labels, model(images, training=True))
    return [np.asarray(g, "float32") for g in tape.gradient(loss, model.trainable_variables)]


@pytest.fixture(scope="module")
def batch():
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    return images, np.eye(10, dtype="float32")[np.arange(8) % 10]


def test_a_float32_training_network_has_the_plain_networks_gradients(batch):
    """In float32 the stand-ins at work are the fused BatchNorm and the float32 GELU."""
    import keras
    keras.utils.set_random_seed(0)
    plain, fast = _airbench("float32", False), _airbench("float32", True)
    models.init_whitening(plain, batch[0].astype(np.uint8))
    fast.set_weights(plain.get_weights())
    for a, b in zip(_gradients(fast, *batch), _gradients(plain, *batch)):
        # The same maths summed in another order, through BatchNorm on 8 pictures (a variance of 72 numbers
        # on the 3x3 maps). A channel whose variance is near BatchNorm's epsilon magnifies that rounding: one
        # CI machine had single numbers 6% of a layer's largest gradient apart. Over the whole layer the two
        # are within 0.003% here; a wrong gradient is off by the whole of it.
        assert np.linalg.norm(a - b) <= 0.01 * np.linalg.norm(b)


def test_tap_products_work_on_airbench_s_small_wide_maps_in_bfloat16(batch, monkeypatch):
    """The 7x7 and 3x3 maps of 256 channels take the tap products, and the step's gradients are the
    ones TensorFlow's own kernel gives, to bfloat16's rounding (every other op is the same one)."""
    import keras
    keras.utils.set_random_seed(0)
    fast = _airbench("mixed_bfloat16", True)
    models.init_whitening(fast, batch[0].astype(np.uint8))
    sizes = [layer.input.shape[1] for layer in fast.layers
             if hasattr(layer, "_tap_products") and layer._tap_products(layer.input)]
    assert sizes == [7, 7, 3]
    with_taps = _gradients(fast, *batch)
    monkeypatch.setattr(fast_layers, "WIDE", 10**9)
    without = _airbench("mixed_bfloat16", True)
    without.set_weights(fast.get_weights())
    assert not any(hasattr(layer, "_tap_products") and layer._tap_products(layer.input) for layer in without.layers)
    for a, b in zip(with_taps, _gradients(without, *batch)):
        # bfloat16 keeps 8 bits, and the two sum in different orders: single numbers up to 3.0% of a layer's
        # largest gradient apart on a CPU without bfloat16 maths (a 2-core AVX2 EPYC; 0.3% on a Zen 5), as
        # weights drawn afresh fell. Over the whole layer, under 0.005% on the Zen 5. A wrong gradient is off
        # by about all of it.
        assert np.linalg.norm(a - b) <= 0.02 * np.linalg.norm(b)
