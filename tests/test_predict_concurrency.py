"""Predictions from many browser sessions at once: right answers, and nobody waits for a long pass."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cifar_core import inference, models


@pytest.fixture(scope="module")
def model():
    return models.build("airbench_tiny")


def pictures(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_many_threads_at_once_get_the_same_answers_as_one_at_a_time(model):
    batches = [pictures(n, seed) for seed, n in enumerate([1, 3, 200, 1, 57, 129, 2, 300])]
    expected = [inference.predict(model, b) for b in batches]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            got = list(pool.map(lambda b: inference.predict(model, b), batches))
            for e, g in zip(expected, got):
                np.testing.assert_allclose(g, e, atol=1e-5)


def test_a_photo_is_answered_while_a_long_pass_is_half_way(model, monkeypatch):
    """The long pass pauses inside its second chunk until the photo's answer is in: if any lock were held
    across the pass, the photo could not be answered and this test would time out instead."""
    real = inference._forward
    paused, answered = threading.Event(), threading.Event()
    chunks = []

    def forward(m):
        f = real(m)

        def call(x):
            if threading.current_thread().name == "long-pass":
                chunks.append(len(x))
                if len(chunks) == 2:
                    paused.set()
                    assert answered.wait(60), "the photo was never answered"
            return f(x)
        return call

    monkeypatch.setattr(inference, "_forward", forward)
    result = {}
    long_pass = threading.Thread(name="long-pass", target=lambda: result.update(
        probs=inference.predict(model, pictures(1000), sure_enough=None)))
    long_pass.start()
    assert paused.wait(60)
    photo = inference.predict(model, pictures(1, seed=5))
    answered.set()
    long_pass.join(60)
    assert photo.shape == (1, 10) and result["probs"].shape == (1000, 10)
    # The pictures, then their mirror images (every one here), a CHUNK a call.
    assert len(chunks) == 2 * int(np.ceil(1000 / inference.CHUNK)) and max(chunks) == inference.CHUNK
