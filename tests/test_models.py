import numpy as np
import pytest

from cifar_core import models


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_architecture_trains_a_step_and_round_trips(name, tmp_path):
    import keras
    model = models.build(name)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    models.init_whitening(model, images.astype(np.uint8))
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(images, np.arange(8) % 10)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)),
                               np.asarray(model(images, training=False)), atol=1e-5)
    # and the app loads it as a CIFAR-10 model (`inference.load_model` refuses any other kind).
    from cifar_core import inference
    served = inference.load_model(path)
    assert inference.predict(served, images.astype(np.uint8), mirror=False).shape == (8, 10)


def test_whitening_decorrelates_patches():
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (64, 8, 8, 3)).repeat(4, axis=1).repeat(4, axis=2).astype(np.uint8)
    model = models.build("airbench_tiny")
    models.init_whitening(model, smooth)
    kernel = model.get_layer("whiten").get_weights()[0].reshape(12, 24)[:, :12]
    x = (smooth.astype(np.float32) - models.MEAN) / models.STD
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    covariance = np.cov(patches @ kernel, rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(12), atol=0.05)


def test_unknown_architecture_is_a_sentence():
    with pytest.raises(ValueError, match="Unknown architecture 'nope'; choose one of"):
        models.build("nope")


def test_fused_batchnorm_trains_like_the_standard_layer_and_saves_as_it():
    """The training graph's fused BatchNorm: same outputs, same moving statistics (up to the fused
    kernel's unbiased variance), same variables, so weights copy straight into the plain model."""
    import keras
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    keras.utils.set_random_seed(1)
    plain = models.build("airbench_tiny")
    fused = models.build("airbench_tiny", for_training=True)
    assert [w.shape for w in fused.get_weights()] == [w.shape for w in plain.get_weights()]
    fused.set_weights(plain.get_weights())
    assert any(type(l).__name__ == "FusedBatchNormalization" for l in fused.layers)
    assert not any(type(l).__name__ == "FusedBatchNormalization" for l in plain.layers)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=2e-3)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=1e-4)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-4)


def test_airbench94_networks_draw_their_weights_as_pytorch_does():
    """airbench94's settings were tuned on PyTorch's draw, uniform within 1/sqrt(fan-in); Keras' Glorot
    default draws the last layer 2.4x larger. The one-pass presets' networks keep Glorot's, which their
    settings were tuned on. (Square convolutions start as the identity: nothing drawn.)"""
    def spread(model):     # each drawn kernel's largest weight against 1/sqrt(fan-in)
        out = []
        for layer in model.layers:
            if layer.weights and layer.name != "whiten" and len(layer.get_weights()[0].shape) > 1:
                kernel = layer.get_weights()[0]
                drawn = kernel[(kernel != 0) & (kernel != 1)]
                if drawn.size:
                    out.append(np.abs(drawn).max() * np.sqrt(np.prod(kernel.shape[:-1])))
        return np.array(out)

    torch_like = spread(models.build("airbench"))
    assert len(torch_like) == 3 and np.all(torch_like <= 1) and np.all(torch_like > 0.95)
    assert np.any(spread(models.build("airbench16")) > 1.2)


def _trained_apart(seed: int):
    """An airbench_tiny network with weights drawn at `seed` and BatchNorm statistics of its own."""
    import keras
    keras.utils.set_random_seed(seed)
    model = models.build("airbench_tiny")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.normal(size=beta.shape), rng.normal(size=mean.shape),
                               rng.uniform(0.5, 2, variance.shape)])
    return model


def _scores(model, x):
    import keras
    return np.asarray(keras.Model(model.input, model.get_layer("logits").output)(x))


def test_networks_side_by_side_answer_with_their_averaged_scores():
    from cifar_core import fast_inference
    members = [_trained_apart(seed) for seed in (1, 2, 3)]
    both = models.side_by_side(members)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_scores(both, x), np.mean([_scores(m, x) for m in members], axis=0), atol=1e-4)
    assert models.members_of(both) == 3 and models.members_of(members[0]) == 1
    shared = members[0].get_layer("normalise").count_params()      # one normalisation for all three
    assert both.count_params() == sum(m.count_params() for m in members) - 2 * shared
    # Taken apart again, for serving: the networks as they were.
    for member, again in zip(members, models.apart(both), strict=True):
        np.testing.assert_allclose(again(x), member(x), atol=1e-5)
    np.testing.assert_allclose(fast_inference.answering(both)(x), both(x), atol=0.02)


def test_only_copies_of_one_network_ending_in_pooling_go_side_by_side():
    with pytest.raises(ValueError, match="not the same network"):
        models.side_by_side([models.build("airbench_tiny"), models.build("airbench_small")])
    with pytest.raises(ValueError, match="end in global pooling"):
        models.side_by_side([models.build("tutorial"), models.build("tutorial")])
    import keras
    inputs = keras.Input((32, 32, 3))
    branches = keras.layers.Add()([keras.layers.Conv2D(4, 3)(inputs), keras.layers.Conv2D(4, 3)(inputs)])
    forked = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalMaxPooling2D()(branches)))
    with pytest.raises(ValueError, match="each take the one before"):
        models.side_by_side([forked, forked])
    with pytest.raises(ValueError, match="Two or more"):
        models.side_by_side([models.build("airbench_tiny")])
