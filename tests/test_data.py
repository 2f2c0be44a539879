import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from cifar_core import data
from conftest import batch_bytes, tiny_images


def test_reads_the_official_archive_layout(tiny_archive):
    d = data.read(tiny_archive)
    assert d.x_train.shape == (200, 32, 32, 3) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (40, 32, 32, 3)
    assert d.y_train.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    # Pixels come back in (row, column, RGB) order, as written.
    x, _ = tiny_images(40, 1)
    np.testing.assert_array_equal(d.x_train[:40], x)


def test_reads_an_extracted_folder_and_its_parent(tiny_archive, tmp_path):
    with tarfile.open(tiny_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    from_parent = data.read(tmp_path)
    from_folder = data.read(tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(from_parent.x_test, from_folder.x_test)
    np.testing.assert_array_equal(from_parent.x_test, data.read(tiny_archive).x_test)


def test_resolution_order_setting_then_keras_cache(tiny_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CIFAR10_DATA", str(tiny_archive))
    assert data.load().origin == str(tiny_archive)
    monkeypatch.delenv("CIFAR10_DATA")
    assert data.locate() is None
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    (cache / "cifar-10-python.tar.gz").write_bytes(tiny_archive.read_bytes())
    assert data.load().origin == str(cache / "cifar-10-python.tar.gz")


def test_download_checks_sha256_and_reports_progress(tiny_archive, tmp_path):
    digest = hashlib.sha256(tiny_archive.read_bytes()).hexdigest()
    seen = []
    path = data.download(tmp_path, url=tiny_archive.as_uri(), sha256=digest,
                         progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == tiny_archive.read_bytes()
    assert seen[-1] == (tiny_archive.stat().st_size, tiny_archive.stat().st_size)


def test_a_damaged_download_is_refused_and_not_kept(tiny_archive, tmp_path):
    with pytest.raises(data.DataError, match="damaged"):
        data.download(tmp_path, url=tiny_archive.as_uri(), sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_offline_download_says_so(tmp_path):
    with pytest.raises(data.DataError, match="offline"):
        data.download(tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert list(tmp_path.iterdir()) == []


def _archive_with(tmp_path, members: dict) -> str:
    path = tmp_path / "odd.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def _full_layout(test_batch: bytes) -> dict:
    good = batch_bytes(*tiny_images(10, 0))
    members = {f"cifar-10-batches-py/data_batch_{i}": good for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = test_batch
    return members


def test_missing_path(tmp_path):
    with pytest.raises(data.DataError, match="does not exist") as e:
        data.read(tmp_path / "nowhere.tar.gz")
    assert "nowhere.tar.gz" in str(e.value)


def test_corrupt_archive(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"this is not a tar file" * 100)
    with pytest.raises(data.DataError, match="corrupt or truncated") as e:
        data.read(path)
    assert str(path) in str(e.value)


def test_truncated_archive(tiny_archive, tmp_path):
    path = tmp_path / "cut.tar.gz"
    raw = tiny_archive.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match="cut.tar.gz"):
        data.read(path)


def test_wrong_layout(tmp_path):
    path = _archive_with(tmp_path, {"something/else.txt": b"hello"})
    with pytest.raises(data.DataError, match="data_batch_1 is missing"):
        data.read(path)
    with pytest.raises(data.DataError, match="is missing"):
        data.read(tmp_path)   # a folder without the batches


class _RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_that_imports_anything_else_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps({b"data": _RunsCode(), b"labels": [0]}, protocol=2)
    path = _archive_with(tmp_path, _full_layout(evil))
    with pytest.raises(data.DataError, match="not a safe CIFAR-10 batch.*exec") as e:
        data.read(path)
    assert "test_batch" in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_batch_with_the_wrong_contents(tmp_path):
    path = _archive_with(tmp_path, _full_layout(pickle.dumps({b"nothing": 1})))
    with pytest.raises(data.DataError, match="test_batch is not a CIFAR-10 batch"):
        data.read(path)


def test_bundled_sample():
    sample = data.load_sample()
    assert sample.is_sample and sample.origin == "bundled sample"
    assert sample.x_test.shape == (1000, 32, 32, 3) and sample.x_test.dtype == np.uint8
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    assert data.SAMPLE_PATH.stat().st_size < 5_000_000
    assert sample.x_test.std() > 30   # real pictures, not a blank placeholder

