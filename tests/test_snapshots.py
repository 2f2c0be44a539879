"""Per-epoch snapshots: written by a real training run, replayed, kept across a continued run, read defensively."""
import io
import statistics
import time
import zipfile

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from cifar_core import data, evaluation, inference, inside, models, rundir, runs, snapshots, training
from cifar_core.config import TrainConfig

BUDGET_BYTES = 1_000_000      # a run of 200 epochs
# Of the training time on the tiny data set, whose epochs last a third of a second: there a write's few
# milliseconds (compressing the panel's answers, and the filters) were 1% on a quiet machine and 2.1% on a
# busy CI host. A preset's epochs last a minute or more, where the same writes are a hundredth of that.
BUDGET_SHARE = 0.10


@pytest.fixture
def tiny(tiny_archive):
    return data.read(tiny_archive)


def small(**changes):
    return TrainConfig(arch="airbench_tiny", batch_size=20, precision="float32", **changes)


@pytest.fixture
def trained(tiny, tiny_env, monkeypatch):
    """A finished 3-epoch run in the runs folder, and the seconds its snapshots took to write."""
    spent = []
    write = snapshots.Writer.write

    def timed(self, *args):
        started = time.perf_counter()
        path = write(self, *args)
        spent.append(time.perf_counter() - started)
        return path

    monkeypatch.setattr(snapshots.Writer, "write", timed)
    run = runs.create(small(epochs=3, name="snap"))
    assert training.train(small(epochs=3, name="snap"), run.path, tiny) == "finished"
    # Each write at the median's cost: a pause of a busy shared machine during one write (a few ms here
    # move the share by a percent) says nothing about what writing a snapshot costs.
    return runs.get(run.id), len(spent) * statistics.median(spent)


@pytest.mark.slow
def test_each_epoch_writes_a_snapshot_that_replays(trained, tiny):
    run, seconds = trained
    found = snapshots.files(run.path)
    assert [p.name for p in found.values()] == ["epoch-0001.npz", "epoch-0002.npz", "epoch-0003.npz"]
    history = snapshots.history(run.path)
    assert [s.epoch for s in history] == [1, 2, 3]
    panel = snapshots.panel_indices(tiny.y_test)
    assert len(set(tiny.y_test[panel])) == 8 and all(tiny.y_test[:i].tolist().count(tiny.y_test[i]) == 0 for i in panel)
    for snapshot in history:
        assert snapshot.panel.tolist() == panel.tolist()
        assert snapshot.labels.tolist() == tiny.y_test[panel].tolist()
        assert snapshot.probabilities.shape == (8, 10) and snapshot.probabilities.dtype == np.float32
        assert snapshot.probabilities.sum(axis=1) == pytest.approx(np.ones(8), abs=1e-4)
        assert snapshot.per_class.shape == (10,) and snapshot.per_class.dtype == np.float32
        assert snapshot.filters.shape == (32, 4, 4, 3) and snapshot.filters.dtype == np.uint8   # 32 filters, 4x4 RGB
        # Each scaled on its own around grey: its largest weight at one end of the range (`as_colours`).
        assert ((snapshot.filters.min(axis=(1, 2, 3)) == 0) | (snapshot.filters.max(axis=(1, 2, 3)) == 255)).all()
    assert history[0].pictures.shape == (8, 32, 32, 3) and np.array_equal(history[0].pictures, tiny.x_test[panel])
    assert history[1].pictures is None and history[2].pictures is None      # stored once
    assert not np.array_equal(history[0].filters, history[2].filters)      # they change as it learns
    # Against the reference: the saved model's answers and the run's final per-class accuracy. The saved
    # model as the app serves it (`load_model`), as the test passes the snapshots come from compute them.
    model = inference.load_model(run.path / rundir.MODEL)
    expected = inference.predict(model, tiny.x_test[panel], mirror=False, calibrated=False)
    assert history[-1].probabilities == pytest.approx(expected, abs=1e-4)
    # Each epoch's per-class figures are that epoch's test pass, without the mirror (the run's final
    # status figures are the mirrored ones, as every page shows them).
    plain = inference.predict(model, tiny.x_test, mirror=False, calibrated=False).argmax(axis=1)
    per_class = evaluation.per_class_accuracy(tiny.y_test, plain)
    assert history[-1].per_class.tolist() == pytest.approx(list(per_class.values()))
    assert np.array_equal(history[-1].filters, snapshots.rgb_filters(model))
    # The budget: a small share of the training time, and a small part of a megabyte.
    training_seconds = [m for m in run.metrics() if m["kind"] == "epoch"][-1]["elapsed_s"]
    size = sum(p.stat().st_size for p in found.values())
    print(f"snapshots: {seconds * 1000:.0f} ms for 3 epochs, {seconds / training_seconds:.2%} of "
          f"{training_seconds:.1f} s training; {size} bytes")
    assert seconds < BUDGET_SHARE * training_seconds
    assert size < 40_000


def test_two_hundred_epochs_stay_under_a_megabyte(tmp_path):
    # The widest first layer (airbench: 64 filters of 4x4), real pictures, 200 epochs.
    sample = data.load_sample()
    model = models.build("airbench")
    models.init_whitening(model, sample.x_test)
    writer = snapshots.Writer(tmp_path, sample.x_test, sample.y_test, epochs=200)
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), len(sample.y_test))
    for epoch in range(1, 201):
        writer.write(model, epoch, probabilities, np.linspace(0, 1, 10))
    history = snapshots.history(tmp_path)
    assert [s.epoch for s in history] == list(range(1, 201))
    with_filters = [s.epoch for s in history if s.filters is not None]
    assert len(with_filters) == 50 and with_filters[0] == 1 and with_filters[-1] == 200
    assert max(np.diff(with_filters)) <= 5
    size = sum(p.stat().st_size for p in snapshots.files(tmp_path).values())
    print(f"200 epochs of airbench snapshots: {size} bytes")
    assert size < BUDGET_BYTES


def test_filter_epochs_are_evenly_spread():
    assert snapshots.filter_epochs(3) == {1, 2, 3}
    assert snapshots.filter_epochs(50) == set(range(1, 51))
    spread = sorted(snapshots.filter_epochs(51))
    assert len(spread) == 50 and spread[0] == 1 and spread[-1] == 51


def test_the_tutorial_filters_are_its_first_kernel(tiny):
    model = models.build("tutorial")
    first = next(layer for layer in model.layers if layer.name.startswith("conv2d"))
    kernel = snapshots.first_layer_kernel(model)
    assert kernel.shape == (3, 3, 3, 32) and np.array_equal(kernel, first.get_weights()[0])
    filters = snapshots.rgb_filters(model)
    assert filters.shape == (32, 3, 3, 3) and filters.dtype == np.uint8


def test_airbench_filters_are_the_first_layers_response_to_colours(tiny):
    """Against a reference, the network's own layers: between the picture and airbench's first trainable
    convolution lie the whitening convolution and GELU, and the odd part of that convolution's response,
    (f(x) - f(-x)) / 2, is exactly the drawn kernel applied to the picture."""
    import keras
    model = models.build("airbench_tiny")
    models.init_whitening(model, tiny.x_train)
    rng = np.random.default_rng(0)
    names = [layer.name for layer in model.layers]
    start = names.index("whiten")
    first = next(layer for layer in model.layers[start + 1:] if isinstance(layer, keras.layers.Conv2D))
    first.set_weights([rng.normal(0, 0.3, first.get_weights()[0].shape).astype(np.float32)])  # not the identity start
    kernel = snapshots.first_layer_kernel(model)
    assert kernel.shape == (4, 4, 3, 32)
    x = rng.normal(0, 1, (2, 4, 4, 3)).astype(np.float32)
    x[1] = -x[0]
    out = x
    for layer in model.layers[start:names.index(first.name) + 1]:    # whiten, GELU, the first trainable conv
        out = layer(out)
    out = keras.ops.convert_to_numpy(out)
    odd = (out[0, 1, 1] - out[1, 1, 1]) / 2       # the centre output sees exactly these 4x4 pixels
    assert odd == pytest.approx(np.einsum("hwc,hwco->o", x[0], kernel), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("arch", ["airbench_tiny", "airbench16"])      # GELU after the whitening; ReLU
def test_with_a_learned_whitening_bias_the_filters_are_the_response_to_small_changes(tiny, arch):
    """Once the whitening's bias has learned (the `best` recipe), the drawn kernel is the first trainable
    convolution's response to small colour changes around the average picture (all zeros once
    normalised): its derivative there, each whitening channel weighted by the bend's slope at its bias."""
    import keras
    model = models.build(arch)
    models.init_whitening(model, tiny.x_train)
    rng = np.random.default_rng(1)
    names = [layer.name for layer in model.layers]
    start = names.index("whiten")
    # biases clear of ReLU's kink by more than the small change moves the whitened values (up to ~45x it)
    model.get_layer("whiten").bias.assign((rng.choice([-1, 1], 24) * rng.uniform(0.5, 1.5, 24)).astype(np.float32))
    first = next(layer for layer in model.layers[start + 1:] if isinstance(layer, keras.layers.Conv2D))
    first.set_weights([rng.normal(0, 0.3, first.get_weights()[0].shape).astype(np.float32)])
    kernel = snapshots.first_layer_kernel(model)
    size = kernel.shape[0]
    change = rng.normal(0, 1, (size, size, 3)).astype(np.float32)
    step = 1e-3
    out = np.stack([change * step, -change * step])
    for layer in model.layers[start:names.index(first.name) + 1]:
        out = layer(out)
    out = keras.ops.convert_to_numpy(out)
    centre = out.shape[1] // 2
    derivative = (out[0, centre, centre] - out[1, centre, centre]) / (2 * step)
    assert derivative == pytest.approx(np.einsum("hwc,hwco->o", change, kernel), rel=5e-3, abs=5e-3)
    # and it is not the zero-bias drawing: the bias changed what the layer sees
    assert not np.allclose(kernel, inside.compose(model.get_layer("whiten").get_weights()[0],
                                                  first.get_weights()[0], model.get_layer("whiten").strides[0]) / 2,
                           atol=1e-3)


def _write_npz(path, **arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _good(epoch):
    rng = np.random.default_rng(epoch)
    return {"epoch": np.int64(epoch), "panel": np.arange(8, dtype=np.int32), "labels": np.arange(8, dtype=np.uint8),
            "probabilities": rng.dirichlet(np.ones(10), 8).astype(np.float32),
            "per_class": rng.uniform(0, 1, 10).astype(np.float32),
            "filters": rng.integers(0, 256, (32, 3, 3, 3)).astype(np.uint8),
            "pictures": rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)}


def damage(run_dir):
    """A snapshots folder with good files (epochs 1, 3, 9) among every kind of bad one."""
    folder = run_dir / snapshots.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in (1, 3, 9):
        _write_npz(folder / snapshots.file_name(epoch), **_good(epoch))
    (folder / "epoch-0002.npz").write_bytes(b"PK\x03\x04 not really a zip")           # damaged
    _write_npz(folder / "epoch-0004.npz", **{**_good(4), "probabilities": np.zeros((3, 10), np.float32)})
    _write_npz(folder / "epoch-0005.npz", **{**_good(5), "labels": np.full(8, 99, np.uint8)})
    _write_npz(folder / "epoch-0006.npz", **{**_good(6), "per_class": np.array(["a"] * 10)})
    (folder / "epoch-0007.npz").mkdir()                                                 # not a file
    with zipfile.ZipFile(folder / "epoch-0008.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", bytes(50 << 20))                          # unpacks to 50 MB
    _write_npz(folder / "epoch-0010.npz", **{**_good(10), "epoch": np.array([1, 2])})
    (folder / "epoch-0011.npz").write_bytes(bytes(snapshots.MAX_FILE_BYTES + 1))      # too big
    obj = _good(12)
    obj["per_class"] = np.array([object()] * 10)
    buffer = io.BytesIO()
    np.savez(buffer, **obj)                                                             # needs pickle to read
    (folder / "epoch-0012.npz").write_bytes(buffer.getvalue())
    (folder / "notes.txt").write_text("not a snapshot")
    (folder / ".epoch-0013.npz.tmp").write_bytes(b"half-written")
    _write_npz(folder / "epoch-0014.npz", **{**_good(14), "filters": np.zeros((2, 2), np.float64),
                                             "pictures": np.zeros((8, 32, 32), np.uint8)})
    return folder


def test_damaged_or_missing_snapshots_are_skipped(tmp_path):
    assert snapshots.history(tmp_path) == [] and snapshots.last_epoch(tmp_path) == 0   # no folder at all
    damage(tmp_path)
    history = snapshots.history(tmp_path)
    assert [s.epoch for s in history] == [1, 3, 9, 14]
    assert history[-1].filters is None and history[-1].pictures is None    # unusable parts dropped, the rest kept
    assert snapshots.last_epoch(tmp_path) == 14


def test_a_continued_run_shares_its_parents_snapshots_on_disk(tmp_path, monkeypatch):
    """A chain of continued runs holds each snapshot once (it held a copy per run: disk growing with
    the square of the chain's length), and deleting a parent leaves its child's history whole."""
    parent, child, grandchild = (tmp_path / name for name in ("parent", "child", "grandchild"))
    (parent / snapshots.FOLDER).mkdir(parents=True)
    for epoch in (1, 2, 3):
        _write_npz(parent / snapshots.FOLDER / snapshots.file_name(epoch), **_good(epoch))
    (parent / snapshots.FOLDER / "epoch-0004.npz").write_bytes(b"x" * (snapshots.MAX_FILE_BYTES + 1))
    child.mkdir()
    snapshots.share_history(parent, child)
    _write_npz(child / snapshots.FOLDER / snapshots.file_name(4), **_good(4))     # its own epoch
    grandchild.mkdir()
    snapshots.share_history(child, grandchild)

    found = snapshots.files(grandchild)
    assert list(found) == [1, 2, 3, 4]                                  # the oversized file left out
    for epoch in (1, 2, 3):
        assert found[epoch].stat().st_ino == (parent / snapshots.FOLDER / snapshots.file_name(epoch)).stat().st_ino
    assert found[4].stat().st_ino == snapshots.files(child)[4].stat().st_ino
    for gone in (parent, child):
        for path in (gone / snapshots.FOLDER).iterdir():
            path.unlink()
    assert [s.epoch for s in snapshots.history(grandchild)] == [1, 2, 3, 4]

    def no_links(*args, **kwargs):          # a file system without hard links: copies instead
        raise PermissionError("links not allowed")

    monkeypatch.setattr(snapshots.os, "link", no_links)
    copied = tmp_path / "copied"
    copied.mkdir()
    snapshots.share_history(grandchild, copied)
    assert [s.epoch for s in snapshots.history(copied)] == [1, 2, 3, 4]
    assert snapshots.files(copied)[1].stat().st_ino != snapshots.files(grandchild)[1].stat().st_ino
    snapshots.share_history(tmp_path / "no such run", tmp_path / "nothing")    # nothing to share: no folder
    assert not (tmp_path / "nothing").exists()


def test_a_long_chain_of_continued_runs_shares_a_bounded_history(tmp_path, monkeypatch):
    """A run of 200 epochs continued twelve times held 2,600 snapshots, each opened every time the run was
    shown (seconds of the server's CPU): a continued run takes at most SHARED_MOST of its parent's, evenly
    spread, its first (with the panel's pictures) and its last kept."""
    monkeypatch.setattr(snapshots, "SHARED_MOST", 5)
    parent, child = tmp_path / "parent", tmp_path / "child"
    (parent / snapshots.FOLDER).mkdir(parents=True)
    for epoch in range(1, 22):
        _write_npz(parent / snapshots.FOLDER / snapshots.file_name(epoch), **_good(epoch))
    child.mkdir()
    snapshots.share_history(parent, child)
    assert list(snapshots.files(child)) == [1, 6, 11, 16, 21]
    assert snapshots.last_epoch(child) == snapshots.last_epoch(parent)   # its own epochs go on from the same place
    # Spread by epoch, not by file: a chain's early epochs, already thinned, are not thinned again and again.
    assert snapshots._spread([1, 50, 100, 150, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210], 5) == \
        [1, 50, 100, 150, 210]


def test_a_snapshot_two_runs_share_is_read_once_and_the_heat_map_spans_what_was_left_out(tmp_path, monkeypatch):
    """Hard links in two runs' folders were two entries of the server's snapshot cache: a continued run shown
    beside its parent read and kept every shared file twice. And a thinned history's heat map has no gaps."""
    from app_pages import learning_parts
    learning_parts._read.clear()
    parent, child = tmp_path / "parent", tmp_path / "child"
    (parent / snapshots.FOLDER).mkdir(parents=True)
    for epoch in (1, 2, 3):
        _write_npz(parent / snapshots.FOLDER / snapshots.file_name(epoch), **_good(epoch))
    child.mkdir()
    snapshots.share_history(parent, child)
    opened = []
    real = snapshots.read
    monkeypatch.setattr(snapshots, "read", lambda path: opened.append(path) or real(path))
    assert len(learning_parts.History(parent).readable()) == len(learning_parts.History(child).readable()) == 3
    assert len(opened) == 3
    spec = learning_parts.class_accuracy_chart([(1, np.full(10, 0.5)), (4, np.full(10, 0.6)), (5, np.full(10, 0.7))])
    assert sorted(set(zip(spec.data["start"], spec.data["end"]))) == [(0.5, 3.5), (3.5, 4.5), (4.5, 5.5)]


@pytest.mark.slow
def test_a_continued_run_keeps_the_history_and_numbers_after_it(trained):
    parent, _ = trained
    before = {p.name: p.read_bytes() for p in snapshots.files(parent.path).values()}
    more = runs.continue_run(parent.id, 2)
    deadline = time.monotonic() + 240
    while runs.get(more.id).state in rundir.ACTIVE and time.monotonic() < deadline:
        time.sleep(0.5)
    more = runs.get(more.id)
    assert more.state == "finished", more.status
    found = snapshots.files(more.path)
    assert list(found) == [1, 2, 3, 4, 5]
    assert all(found[e].read_bytes() == before[found[e].name] for e in (1, 2, 3))   # shared as they were
    history = snapshots.history(more.path)
    assert [s.epoch for s in history] == [1, 2, 3, 4, 5]
    assert history[3].pictures is not None and history[3].filters.shape == (32, 4, 4, 3)
    assert [m["epoch"] for m in more.metrics() if m["kind"] == "epoch"] == [1, 2]   # metrics count its own epochs
    assert more.status[runs.EARLIER_EPOCHS] == 3                                     # said when it was made


def _train_page(run):
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
    at.session_state["train_watch"] = run.id
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _images(at) -> int:
    return len(at.get("image"))


@pytest.mark.slow
def test_train_page_replays_a_finished_run(trained, monkeypatch):
    run, _ = trained
    monkeypatch.chdir(ROOT)
    at = _train_page(run)
    slider = at.select_slider(key=f"train_replay_{run.id}")
    assert slider.options == ["1", "2", "3"] and slider.value == 3
    assert any(m.value == "**What it sees after epoch 3**" for m in at.markdown)
    assert sum("right" in m.value or "wrong" in m.value for m in at.markdown) == 8
    assert any("first layer's filters" in c.value for c in at.caption)
    assert _images(at) >= 9        # eight pictures and the sheet of filters
    slider.set_value(1).run()
    assert not at.exception
    assert any(m.value == "**What it sees after epoch 1**" for m in at.markdown)


@pytest.mark.slow
def test_train_page_survives_damaged_snapshots(trained, monkeypatch):
    run, _ = trained
    monkeypatch.chdir(ROOT)
    folder = run.path / snapshots.FOLDER
    (folder / "epoch-0001.npz").write_bytes(b"gone bad")       # the one that holds the pictures
    _write_npz(folder / "epoch-0003.npz", **{**_good(3), "probabilities": np.zeros((3, 10), np.float32)})
    (folder / "epoch-0004.npz").mkdir()
    (folder / "epoch-0005.npz").write_bytes(bytes(snapshots.MAX_FILE_BYTES + 1))
    at = _train_page(run)
    assert len(at.select_slider) == 0                          # one readable epoch: nothing to replay
    assert any(m.value == "**What it sees after epoch 2**" for m in at.markdown)
    assert _images(at) == 1                                    # the filters; no pictures to show
    assert sum("right" in m.value or "wrong" in m.value for m in at.markdown) == 8


def _compare_script():
    from app_pages import learning_parts
    learning_parts.compare_view()


@pytest.mark.slow
def test_compare_view_shows_two_runs_side_by_side(trained, tiny, monkeypatch):
    monkeypatch.chdir(ROOT)
    other = runs.create(small(epochs=2, augment=False, name="no flips"))
    assert training.train(small(epochs=2, augment=False), other.path, tiny) == "finished"
    at = AppTest.from_function(_compare_script, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.selectbox) == 2 and at.selectbox[0].value != at.selectbox[1].value
    assert len(at.get("vega_lite_chart")) == 2           # accuracy per class, one per run
    slider = at.select_slider[0]
    assert slider.options == ["1", "2", "3"]
    slider.set_value(3).run()
    assert not at.exception
    assert any("It has no epoch 3" in c.value for c in at.caption)   # the 2-epoch run shows its last
    assert sum("right" in m.value or "wrong" in m.value for m in at.markdown) == 16


def test_two_compared_runs_of_one_name_are_headed_apart(tiny_env):
    """Two students' runs both named "test", side by side: each heading says which is which, by its id."""
    made = []
    for _ in range(2):
        run = runs.create(small(epochs=1, name="test"))
        (run.path / snapshots.FOLDER).mkdir(parents=True, exist_ok=True)
        _write_npz(run.path / snapshots.FOLDER / snapshots.file_name(1), **_good(1))
        rundir.update_status(run.path, state="finished")
        made.append(run)
    at = AppTest.from_function(_compare_script, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from app_pages.common import plain
    heads = [m.value for m in at.markdown if m.value.startswith("**test")]
    # Each heads its run's answers, and its heat map in the row under them.
    assert sorted(heads) == sorted(2 * [f"**{plain(f'test [{run.id}]')}**" for run in made])
    # The heat maps in a row of their own, level with each other: under the answers, whose words take two
    # lines or three, one stood lower than the other.
    rows = [block for block in at.main.children.values() if block.type == "flex_container"]
    assert [len(row.get("vega_lite_chart")) for row in rows] == [0, 0, 2]     # the runs' pickers, answers, maps


def test_a_continued_run_says_how_many_epochs_it_continues_as_it_is_made(tiny_env, tmp_path):
    parent = runs.create(small(epochs=1))
    (parent.path / snapshots.FOLDER).mkdir(parents=True)
    for epoch in (1, 2, 3):
        _write_npz(parent.path / snapshots.FOLDER / snapshots.file_name(epoch), **_good(epoch))
    model = tmp_path / "model.keras"
    model.write_bytes(b"a model")
    more = runs.create(small(epochs=2, initial_model=str(model)), history_from=parent.path)
    assert more.status[runs.EARLIER_EPOCHS] == 3
    assert runs.EARLIER_EPOCHS not in runs.create(small(epochs=1)).status


def test_compare_view_asks_for_two_runs(tiny_env):
    at = AppTest.from_function(_compare_script, default_timeout=60)
    at.run()
    assert not at.exception
    assert "Comparing needs two runs" in at.info[0].value


def test_a_run_is_described_with_its_augmentation_and_zoom():
    from types import SimpleNamespace

    from app_pages import learning_parts

    def described(**config):
        return learning_parts._describe(SimpleNamespace(config={"arch": "airbench", "epochs": 36, **config},
                                                        state="finished"))
    assert described(augment=True, zoom=0.25) == "airbench, with augmentation and zoom 0.25, 36 epochs · finished"
    assert described(augment=True) == "airbench, with augmentation, 36 epochs · finished"   # runs from before zoom
    assert described(augment=False, zoom=0.25) == "airbench, without augmentation, 36 epochs · finished"
    assert described(augment=True, distill_from=["a.keras", "b.keras"]) == \
        "airbench, with augmentation, learning from 2 models' answers, 36 epochs · finished"
    assert described(augment=True, distill_from=["a.keras"]) == \
        "airbench, with augmentation, learning from 1 model's answers, 36 epochs · finished"


def test_a_filter_of_plain_brightness_is_drawn_light_not_in_a_colour():
    """Each filter was stretched from its own lowest to highest weight: airbench's whitening filter of
    plain brightness (0.089, 0.094, 0.090 for red, green and blue) was drawn bright green, its negative
    magenta, where Look inside says the colour is the pattern the filter responds to most."""
    brightness = np.tile([0.089, 0.094, 0.090], (2, 2, 1))[None]
    drawn = snapshots.as_colours(np.concatenate([brightness, -brightness, np.zeros_like(brightness)]))
    light, dark, nothing = drawn[:, 0, 0]
    assert light.min() >= 240 and dark.max() <= 15 and set(nothing) == {128}      # white, black, grey
    assert int(light.max()) - int(light.min()) < 15                                  # not a colour
