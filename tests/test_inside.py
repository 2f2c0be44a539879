"""Inside the network: maps checked against Keras sub-models, fields against gradients, the top
patches against a brute-force search, and the Look inside page on a run that is still training."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from cifar_core import inference, inside, models
from conftest import ROOT, tiny_images


@pytest.fixture(scope="module")
def bundled():
    return inference.load_model()


@pytest.fixture(scope="module")
def built():
    """Every registered architecture, freshly built (untrained weights show the geometry as well)."""
    nets = {name: models.build(name) for name in models.REGISTRY}
    models.init_whitening(nets["airbench_tiny"], tiny_images(200, 1)[0])
    return nets


def shipped_top(path, images: np.ndarray) -> np.ndarray | None:
    """What a model saved at `path` ships of the closer look's search in these pictures (`x.inside.npz`)."""
    from cifar_core import evaluation
    found = evaluation.shipped_beside(path, inside.SHIPPED_SUFFIX, "top", evaluation.fingerprint(images))
    return found if found is not None and found.ndim == 3 and found.shape[1:] == (inside.TOP, 4) else None


def pictures(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def reference_maps(model, images) -> list[np.ndarray]:
    import keras
    return [np.asarray(keras.Model(model.input, model.get_layer(b.layer).output)(images.astype(np.float32),
                                                                                 training=False))
            for b in inside.blocks(model)]


@pytest.mark.parametrize("name", ["bundled", *models.REGISTRY])
def test_feature_maps_equal_a_keras_sub_model_built_directly(name, bundled, built):
    model = bundled if name == "bundled" else built[name]
    images = pictures()
    expected = reference_maps(model, images)
    for got, want in zip(inside.activations(model, images), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for got, want in zip(inside.feature_maps(model, images[2]), expected, strict=True):
        np.testing.assert_allclose(got, want[2], rtol=1e-5, atol=1e-5)


def test_every_architecture_has_blocks_a_layer_table_and_first_filters(built):
    for name, model in built.items():
        shown = inside.blocks(model)
        titles = [b.title for b in shown]
        if name == "tutorial":          # no whitening, no BatchNorm: a conv with ReLU ends each block
            assert titles == ["Block 1", "Block 2", "Block 3"]
            assert [b.shape for b in shown] == [(30, 30, 32), (13, 13, 64), (4, 4, 64)]
            [first] = inside.first_filters(model)
            assert first.kernel.shape == (3, 3, 3, 32) and not first.fixed and not first.seen_through
        elif name.startswith("airbench16"):   # whitening over 2x2 patches, without overlap: 16x16 maps, 2 blocks
            assert titles == ["Whitening", "Block 1", "Block 2"]
            assert [b.shape[:2] for b in shown] == [(16, 16), (8, 8), (4, 4)]
            whiten, learned = inside.first_filters(model)
            assert whiten.layer == "whiten" and whiten.fixed and whiten.kernel.shape == (2, 2, 3, 24)
            assert learned.seen_through == "whiten" and learned.kernel.shape[:3] == (6, 6, 3)   # 3x3 of 2x2 patches
            assert "2 pixels apart" in inside.layer_table(model)[2]["does"]
            assert "set from the data, not learned" in inside.layer_table(model)[2]["does"]      # its filters; its bias may learn
        else:
            assert titles == ["Whitening", "Block 1", "Block 2", "Block 3"]
            assert [b.shape[:2] for b in shown] == [(31, 31), (15, 15), (7, 7), (3, 3)]
            whiten, learned = inside.first_filters(model)
            assert whiten.layer == "whiten" and whiten.fixed and whiten.kernel.shape == (2, 2, 3, 24)
            assert learned.seen_through == "whiten" and learned.kernel.shape[:3] == (4, 4, 3)
        for filters in inside.first_filters(model):
            patches = filters.patches
            assert patches.dtype == np.uint8 and patches.shape[1:] == (*filters.kernel.shape[:2], 3)
        table, names = inside.layer_table(model), inside.shown_names(model)
        assert [r["layer"] for r in table] == [names[l.name] for l in model.layers]
        assert sum(r["weights"] for r in table) == model.count_params()
        assert [r["layer"] for r in table if r["shown"]] == [names[b.layer] for b in shown]
        # each part is a run of rows, in order: the picture, the blocks as What it sees names them, the answer;
        # a block's shown layer is its last row
        parts = [r["part"] for r in table]
        assert list(dict.fromkeys(parts)) == [inside.BEFORE_BLOCKS, *titles, inside.AFTER_BLOCKS]
        assert table[0]["part"] == inside.BEFORE_BLOCKS and table[-1]["part"] == inside.AFTER_BLOCKS
        for block in shown:
            last = max(i for i, r in enumerate(table) if r["part"] == block.title)
            assert table[last]["layer"] == names[block.layer]
        assert all(r["does"] for r in table), [r["layer"] for r in table if not r["does"]]


def test_the_layer_table_says_what_each_layer_really_does(bundled, built):
    """ReLU turns a negative number to 0 (GELU only damps it); a hidden Dense layer makes numbers, not scores
    for as many classes; a whitening layer whose offsets were learned is not called wholly unlearned."""
    does = {r["layer"]: r["does"] for r in inside.layer_table(built["tutorial"])}
    assert does["features"] == "weighs every number before it into 64 numbers, then keeps what is positive"
    assert does["logits"] == "weighs every number before it into 10 scores"
    def bends(model) -> set:
        return {r["does"] for r in inside.layer_table(model) if r["type"] == "Activation"} - {"turns scores into probabilities"}
    relu = bends(built["airbench16_mini"])
    assert relu == {"keeps what is positive, turns the rest to 0"}
    assert bends(bundled) == {"keeps what is positive, damps the rest"}
    whiten = bundled.get_layer("whiten")
    assert np.any(whiten.get_weights()[1])          # the second network's offsets learned in training
    assert [r["does"] for r in inside.layer_table(bundled) if r["layer"] == "whiten"] == [
        "48 filters of 2 x 2 pixels, set from the data (only their offsets were learned)"]


def test_layers_are_named_as_in_a_network_built_alone_and_names_given_stay(bundled, built):
    """The bundled model's first convolution showed as conv2d_6 and its first activation as activation_7:
    Keras counts every layer of a type the process made before (here, the networks built ahead of it).
    Names given on purpose (image, normalise, whiten) stay."""
    names = [r["layer"] for r in inside.layer_table(bundled)]
    assert [n for n in names if n.startswith("conv2d")][:3] == ["conv2d", "conv2d_1", "conv2d_2"]
    assert names[:5] == ["image", "normalise", "whiten", "activation", "conv2d"]
    assert len(set(names)) == len(names)
    # The same network built twice in one process is shown by the same names both times.
    again = models.build("airbench_tiny")
    assert [l.name for l in again.layers] != [l.name for l in built["airbench_tiny"].layers]
    assert ([r["layer"] for r in inside.layer_table(again)]
            == [r["layer"] for r in inside.layer_table(built["airbench_tiny"])])


def test_the_pairs_first_filters_say_why_they_come_round_twice():
    """The bundled pair's two whitening layers were set from the same pictures: filters 24-47 repeat 0-23."""
    from streamlit.testing.v1 import AppTest

    def page():
        from app_pages import inside_parts
        from cifar_core import inference
        inside_parts.filters(inference.load_model())
    at = AppTest.from_function(page, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    fixed = at.caption[0].value
    assert "filters 0-23 are network 1's, 24-47 network 2's" in fixed and "The shares are alike" in fixed
    assert not any("The shares are alike" in c.value for c in at.caption[1:])     # the learned ones differ


def test_what_a_place_of_a_map_sees_is_its_field_clipped_to_the_picture(built):
    """A deep block's field is wider than the picture, but a place at its edge reads padding there: the
    page said every place of the class recipe's last block saw "the whole picture and past its edges"."""
    from app_pages import inside_parts
    last = inside.blocks(built["airbench16"])[-1]
    assert (last.field.size, last.shape[0]) == (44, 4) and last.field.seen(4) == (26, 32)
    assert inside_parts._seen(last.field, 4) == "the middle ones seeing the whole picture, those at the edges as little as 26 x 26"
    first = inside.blocks(built["tutorial"])[0]
    assert inside_parts._seen(first.field, first.shape[0]) == "each seeing 3 x 3 pixels of the picture"
    assert inside.Field(9, 2, -3).seen(15) == (6, 9)


@pytest.mark.parametrize("name", ["bundled", "tutorial"])
def test_receptive_fields_are_where_the_gradient_reaches(name, bundled, built):
    """The square each map pixel sees is exactly the input pixels its value depends on (clipped to the picture)."""
    import keras
    import tensorflow as tf
    model = bundled if name == "bundled" else built[name]
    images = tf.constant(pictures(16, 3).astype(np.float32))
    for block in inside.blocks(model):
        probe = keras.Model(model.input, model.get_layer(block.layer).output)
        for y, x in {(0, 0), (block.shape[0] // 2, block.shape[1] // 2), (block.shape[0] - 1, 1)}:
            with tf.GradientTape() as tape:
                tape.watch(images)
                value = tf.reduce_sum(probe(images, training=False)[:, y, x, :])
            reached = np.abs(tape.gradient(value, images).numpy()).sum(axis=(0, 3)) > 0
            rows, columns = np.flatnonzero(reached.any(axis=1)), np.flatnonzero(reached.any(axis=0))
            top, left = block.field.corner(y, x)
            size = block.field.size
            assert (rows[0], rows[-1]) == (max(top, 0), min(top + size, 32) - 1), (block, y, x)
            assert (columns[0], columns[-1]) == (max(left, 0), min(left + size, 32) - 1), (block, y, x)


def test_top_activations_match_a_brute_force_search(built, monkeypatch):
    model = built["airbench_tiny"]
    images = np.concatenate([tiny_images(20, 5)[0], pictures(13, 4)])
    monkeypatch.setattr(inside, "CHUNK", 7)            # several chunks, merged
    found = inside.top_activations(model, images, k=4)
    for maps, best in zip(inside.activations(model, images), found, strict=True):
        n, _, _, channels = maps.shape
        assert best.shape == (channels, 4, 4)
        strongest = maps.reshape(n, -1, channels).max(axis=1)           # (n, C)
        for c in range(channels):
            np.testing.assert_allclose(best[c, :, 3], np.sort(strongest[:, c])[::-1][:4], rtol=1e-6)
            for index, row, column, value in best[c]:
                assert maps[int(index), int(row), int(column), c] == pytest.approx(value)


def test_top_activations_are_kept_beside_the_model(built, tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    built["tutorial"].save(path)
    model = inference.load_model(path)
    images = pictures(12, 6)
    first = inside.cached_top_activations(path, model, images, "tiny:12")
    assert list(tmp_path.glob("model.eval-*.npy"))
    monkeypatch.setattr(inside, "top_activations", lambda *a, **k: pytest.fail("computed again"))
    again = inside.cached_top_activations(path, model, images, "tiny:12")
    assert [a.shape for a in again] == [(32, 9, 4), (64, 9, 4), (64, 9, 4)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_top_activations_shipped_with_a_model_are_used_for_it_and_those_pictures_only(built, tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    built["tutorial"].save(path)
    model = inference.load_model(path)
    shipped, other = pictures(12, 6), pictures(12, 7)
    assert inside.ship_top_activations(path, model, shipped).name == "model.inside.npz"
    searched = []
    real_search = inside.top_activations
    monkeypatch.setattr(inside, "top_activations", lambda *a, **k: searched.append(1) or real_search(*a, **k))
    found = inside.cached_top_activations(path, model, shipped, "tiny:12")
    assert not searched and [a.shape for a in found] == [(32, 9, 4), (64, 9, 4), (64, 9, 4)]
    for a, b in zip(found, real_search(model, shipped), strict=True):
        np.testing.assert_array_equal(a, b)
    inside.cached_top_activations(path, model, other, "tiny:12 other")            # other pictures: searched
    assert searched == [1]
    built["airbench_tiny"].save(path)                                             # another model, same file name
    inside.cached_top_activations(path, inference.load_model(path), shipped, "tiny:12")
    assert searched == [1, 1]


def test_the_bundled_model_ships_its_closer_look_at_the_sample(bundled):
    """Found in the shipped file, not searched on the server (21 s of CPU on two cores for the test set's
    2,000), and true to the model: each record's picture has that value at that place."""
    from cifar_core import data
    sample = data.load_sample().x_test[:inside.TOP_PICTURES]
    shipped = shipped_top(inference.DEFAULT_MODEL, sample)
    assert shipped is not None
    for block, records in zip(inside.blocks(bundled), np.split(shipped, np.cumsum(
            [b.shape[2] for b in inside.blocks(bundled)])[:-1]), strict=True):
        for channel in (0, block.shape[2] - 1):
            best = records[channel]
            assert np.all(np.diff(best[:, 3]) <= 0)                              # strongest first
            maps = inside.activations(bundled, sample[best[:, 0].astype(int)])[inside.blocks(bundled).index(block)]
            at = maps[np.arange(len(best)), best[:, 1].astype(int), best[:, 2].astype(int), channel]
            np.testing.assert_allclose(at, best[:, 3], rtol=1e-3, atol=1e-3)
            assert maps[..., channel].max() == pytest.approx(best[0, 3], rel=1e-3, abs=1e-3)


def test_top_activations_of_a_replaced_checkpoint_are_not_kept_under_the_new_ones_name(built, tmp_path):
    """A run still training replaces model.keras every epoch: answers for the model loaded before
    must not be filed under the newer file's bytes."""
    path = tmp_path / "model.keras"
    built["tutorial"].save(path)
    loaded_at = path.stat().st_mtime
    model = inference.load_model(path)
    os.utime(path, (loaded_at + 5, loaded_at + 5))                    # the trainer wrote the next checkpoint
    found = inside.cached_top_activations(path, model, pictures(5, 2), "tiny:5", modified=loaded_at)
    assert [a.shape for a in found] == [(32, 9, 4), (64, 9, 4), (64, 9, 4)]
    assert not list(tmp_path.glob("*.eval-*.npy"))


def test_patches_are_the_part_of_the_picture_a_map_pixel_sees():
    images = pictures(3, 7)
    [stem] = inside.patches(images, inside.Field(2, 1, 0), np.array([[1, 4, 6, 0.5]]))
    np.testing.assert_array_equal(stem, images[1, 4:6, 6:8])
    corner, middle = inside.patches(images, inside.Field(9, 2, -3), np.array([[2, 0, 0, 1], [0, 5, 5, 1]]))
    assert corner.shape == middle.shape == (9, 9, 3)
    assert (corner[:3] == np.round(models.MEAN).astype(np.uint8)).all()         # past the edge: the mean colour
    np.testing.assert_array_equal(corner[3:, 3:], images[2, :6, :6])
    np.testing.assert_array_equal(middle, images[0, 7:16, 7:16])
    assert inside.patches(images, inside.Field(2, 1, 0), np.full((2, 4), -np.inf)) == []   # fewer pictures than slots
    # A square bigger than the picture: the picture, greyed where the map pixel cannot see it.
    edge, inner = inside.patches(images, inside.Field(51, 8, -21), np.array([[0, 0, 0, 1], [1, 1, 1, 1]]))
    assert edge.shape == inner.shape == (32, 32, 3)
    np.testing.assert_array_equal(edge[:30, :30], images[0, :30, :30])      # it sees rows and columns -21..29
    assert (edge[30:] == np.round(models.MEAN).astype(np.uint8)).all()
    np.testing.assert_array_equal(inner, images[1])                          # -13..37: all of it


def test_folded_filters_equal_the_two_layers_in_a_row(bundled):
    """The bundled model's networks side by side (`models.side_by_side`): each one's learned filters are
    seen through its own share of the whitening."""
    import tensorflow as tf
    whiten, learned = inside.first_filters(bundled)
    groups = models.members_of(bundled)
    second = bundled.get_layer(learned.layer).get_weights()[0]
    # Each whitening filter weighed by GELU's slope at its bias: 1/2 where it has none (the first network's)
    slopes = inside._slopes(bundled, bundled.get_layer("whiten"))
    assert (slopes[:24] == 0.5).all()
    for kernel, theirs, seen, slope in zip(*(np.split(k, groups, axis=-1)
                                             for k in (whiten.kernel, second, learned.kernel, slopes))):
        np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])  # +/- pairs: GELU passes x/2 on exactly
        x = tf.constant(np.random.default_rng(8).normal(size=(2, 12, 12, 3)).astype(np.float32))
        two = tf.nn.conv2d(tf.nn.conv2d(x, kernel, 1, "VALID"), theirs, 1, "VALID")
        one = tf.nn.conv2d(x, inside.compose(kernel, theirs), 1, "VALID")
        np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(seen, inside.compose(kernel * slope, theirs), rtol=1e-5, atol=1e-6)
    patches = whiten.patches
    filters = whiten.kernel.shape[-1]
    flat = patches.reshape(filters, -1).astype(int)
    assert ((flat.min(axis=1) == 0) | (flat.max(axis=1) == 255)).all()      # scaled around grey, each on its own


def test_folded_filters_of_a_whitening_over_2x2_patches_equal_the_two_layers_in_a_row():
    import tensorflow as tf
    rng = np.random.default_rng(9)
    kernel = rng.normal(size=(2, 2, 3, 24)).astype(np.float32)
    second = rng.normal(size=(3, 3, 24, 5)).astype(np.float32)
    x = tf.constant(rng.normal(size=(2, 16, 16, 3)).astype(np.float32))
    two = tf.nn.conv2d(tf.nn.conv2d(x, kernel, 2, "VALID"), second, 1, "VALID")      # 8x8 -> 6x6
    one = tf.nn.conv2d(x, inside.compose(kernel, second, stride=2), 2, "VALID")      # a 6x6 kernel, stepping 2
    assert inside.compose(kernel, second, stride=2).shape == (6, 6, 3, 5)
    np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-4, atol=1e-4)


def test_colours_run_from_dark_purple_to_yellow_getting_lighter():
    ramp = inside.colour(np.linspace(0, 1, 256), 0.0, 1.0)
    assert tuple(ramp[0]) == (0x44, 0x01, 0x54) and tuple(ramp[-1]) == (0xfd, 0xe7, 0x25)
    lightness = ramp.astype(float) @ [0.2126, 0.7152, 0.0722]
    assert (np.diff(lightness) >= 0).all()
    flat = inside.colour(np.full((3, 3), 5.0), 5.0, 5.0)          # a map with nothing in it: no division by zero
    assert (flat == ramp[0]).all()
    enlarged = inside.map_images(np.random.default_rng(0).random((7, 7, 4)), [2, 0], size=96)
    assert [e.shape for e in enlarged] == [(98, 98, 3)] * 2                       # 14 x 7: crisp squares


def test_feature_maps_from_many_threads_at_once(built):
    model = models.build("airbench_tiny")      # a model nobody has traced yet: the first calls race to build it
    images = pictures(4, 9)
    expected = reference_maps(model, images)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = inside.feature_maps(model, images[i])
        except Exception as e:      # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(4):
        for got, want in zip(results[i], expected, strict=True):
            np.testing.assert_allclose(got, want[i], rtol=1e-5, atol=1e-5)


def test_the_page_works_on_a_run_that_is_still_training(tiny_env, monkeypatch, built):
    """A running run's checkpoint can be looked inside, and a newer checkpoint replaces it on the next visit."""
    from streamlit.testing.v1 import AppTest

    from cifar_core import rundir, runs
    from cifar_core.config import TrainConfig
    run = runs.create(TrainConfig(arch="airbench_tiny", epochs=50, batch_size=50, precision="float32", name="live"))
    rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()))
    built["airbench_tiny"].save(run.path / "model.keras")
    assert runs.get(run.id).state == "running"

    from app_pages import common, inside_parts
    finished_models_loaded, real = [], common._model
    monkeypatch.setattr(common, "_model", lambda path, modified: finished_models_loaded.append(path) or real(path, modified))
    finished_models_searched, real_top = [], inside_parts._top
    monkeypatch.setattr(inside_parts, "_top", lambda path, *a: finished_models_searched.append(path) or real_top(path, *a))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/inside.py")
    at.run()
    label = next(o for o in at.selectbox(key="inside_network").options if o.startswith("Run live"))
    at.selectbox(key="inside_network").select(label)
    at.session_state["inside_picture"] = tiny_images(1, 3)[0][0]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value.split(":")[0] for m in at.markdown] == ["**Whitening**", "**Block 1**", "**Block 2**", "**Block 3**"]
    assert "of its 32 maps" in at.markdown[1].value                      # airbench_tiny: 32 wide, not the bundled 64
    assert any("excite it most" in c for c in image_captions(at))

    before = [i.url for i in at.get("image")[1].proto.imgs]
    models.build("airbench_tiny").save(run.path / ".next.keras")     # the trainer writes the next epoch's
    os.replace(run.path / ".next.keras", run.path / "model.keras")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [i.url for i in at.get("image")[1].proto.imgs] != before       # the new weights' maps
    # A training run's checkpoints are kept apart, in their own two places: none of them took one of the
    # places of the finished models the class answers with.
    assert str(run.path / "model.keras") not in finished_models_loaded
    assert str(run.path / "model.keras") not in finished_models_searched     # nor of their closer looks
    rundir.update_status(run.path, state="stopped", ended=rundir.now())


def image_captions(at) -> list[str]:
    return [caption for image in at.get("image") for caption in (i.caption for i in image.proto.imgs)]


def test_predict_and_explore_hand_their_picture_to_look_inside(tiny_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from cifar_core import data
    monkeypatch.chdir(ROOT)
    test = data.read(data.locate())
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/predict.py")
    at.run()
    at.button_group(key="predict_source").set_value("Test picture").run()
    at.button(key="predict_inside").click().run()
    assert not at.exception, [e.value for e in at.exception]
    np.testing.assert_array_equal(at.session_state["inside_picture"], test.x_test[at.session_state["predict_test_index"]])
    assert at.title[0].value == "Look inside the network" and len(at.markdown) == 4

    at.switch_page("app_pages/explore.py")
    from app_pages import common
    from app_pages import closer_look
    loaded = common.loaded()[0]
    at.session_state["explore_pick"] = (closer_look.place(loaded.origin, "Training", loaded.y_train, loaded.x_train), 5)
    at.session_state["explore_pick:open"] = True     # its closer look open, where the button is
    at.run()
    assert any(c.value.startswith("A training picture: the model may have learnt from this very picture") for c in at.caption)
    at.button(key="explore_inside").click().run()
    assert not at.exception, [e.value for e in at.exception]
    np.testing.assert_array_equal(at.session_state["inside_picture"], test.x_train[5])
    assert at.title[0].value == "Look inside the network"


def test_a_grid_click_sent_by_a_script_picks_nothing_and_breaks_nothing(tiny_env):
    """The browser sends the clicked picture's index; a script may send anything in the selection."""
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from app_pages import inside_parts
        st.session_state["inside_grid_0"] = {"selection": {"picked": st.session_state["sent"]}}
        inside_parts._pick("inside_grid_0")

    for sent in (7, {"a": 1}, "x", [3], [{"index": -1}], [{"index": 10**9}], [{"index": "2"}], None):
        at = AppTest.from_function(script)
        at.session_state["sent"] = sent
        at.run()
        assert not at.exception and "inside_picture" not in at.session_state, sent
    at.session_state["sent"] = [{"index": 2}]
    at.run()
    assert at.session_state["inside_picture"].shape == (32, 32, 3)


def test_a_phone_is_given_the_layers_as_a_list_of_each_part_in_order(bundled):
    """The table showed three of its seven columns on a phone; the list says the same of every layer."""
    import pandas as pd

    from app_pages import inside_parts
    table = inside.layer_table(bundled)
    listed = inside_parts.layers_listed(pd.DataFrame(table))
    items = [line for line in listed.splitlines() if line.startswith("- ")]
    assert len(items) == len(table)
    parts = [line.strip("*").replace("\\", "") for line in listed.splitlines() if line.startswith("**")]
    assert parts == list(dict.fromkeys(r["part"] for r in table))          # each part once, in the table's order
    assert sum(item.endswith("; maps shown") for item in items) == sum(r["shown"] for r in table)
    first = next(r for r in table if r["weights"])
    assert any(f"{first['weights']:,} weights" in item for item in items)
    assert "Hands on 32 x 32 x 3; no weights" in items[0]
