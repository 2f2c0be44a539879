import hashlib
import io
import json
import pickle
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

import hostile_archives
from cifar_core import data
from conftest import batch_bytes, fill, tiny_images


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
    cache.mkdir(parents=True, exist_ok=True)   # data.load keeps its decoded copy there already
    (cache / "cifar-10-python.tar.gz").write_bytes(tiny_archive.read_bytes())
    assert data.load().origin == str(cache / "cifar-10-python.tar.gz")


def test_keras_own_download_is_found_where_keras_3_15_unpacks_it(tiny_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    unpacked = tmp_path / "keras" / "datasets" / "cifar-10-batches-py-target"
    unpacked.mkdir(parents=True)
    with tarfile.open(tiny_archive) as tar:     # as keras.datasets.cifar10.load_data() leaves it
        tar.extractall(unpacked, filter="data")
    assert data.locate() == unpacked / "cifar-10-batches-py"
    assert len(data.read(data.locate()).x_test) == 40


def test_relative_and_empty_path_settings_name_the_same_place_from_any_folder(tmp_path, monkeypatch):
    """Trainers run from the package's folder: a relative CIFAR10_DATA or KERAS_HOME read there named
    another file than the server's, and an empty KERAS_HOME made the download land in ./datasets."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIFAR10_DATA", "cifar.tar.gz")
    monkeypatch.setenv("KERAS_HOME", "keras")
    assert data.locate() == tmp_path / "cifar.tar.gz"
    assert data.keras_cache_dir() == tmp_path / "keras" / "datasets"
    monkeypatch.setenv("KERAS_HOME", "")
    assert data.keras_cache_dir() == Path.home() / ".keras" / "datasets"


def locked_away(monkeypatch, folder: Path) -> None:
    """`folder` as a folder the server's user may not enter (a teacher's 0750 home): the tests run as
    root, whom no permission stops."""
    real = Path.stat

    def stat(self, *args, **kwargs):
        if self == folder or folder in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "stat", stat)


def test_data_behind_a_folder_the_server_may_not_enter_is_a_sentence(tiny_archive, tmp_path, monkeypatch):
    home = tmp_path / "teacher"
    home.mkdir()
    (home / "cifar.tar.gz").write_bytes(tiny_archive.read_bytes())
    locked_away(monkeypatch, home)
    with pytest.raises(data.DataError, match=r"cannot be read by the user this program runs as \(permission denied\)"):
        data.load(home / "cifar.tar.gz")
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))     # its Keras cache there too: none found
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    assert data.cached() is None and data.locate() is None


def test_an_archive_the_server_may_not_open_is_not_called_corrupt(tiny_archive, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(data, "open", refused, raising=False)
    with pytest.raises(data.DataError, match="permission denied") as refusal:
        data.read(tiny_archive)
    assert "corrupt" not in str(refusal.value)


def test_download_checks_sha256_and_reports_progress(tiny_archive, tmp_path):
    digest = hashlib.sha256(tiny_archive.read_bytes()).hexdigest()
    seen = []
    path = data.download(tmp_path, url=tiny_archive.as_uri(), sha256=digest,
                         progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == tiny_archive.read_bytes()
    assert seen[0] == (0, tiny_archive.stat().st_size)       # its size, as soon as it is connected
    assert seen[-1] == (tiny_archive.stat().st_size, tiny_archive.stat().st_size)
    assert path.stat().st_mode & 0o777 == 0o644       # trainers and other users read it (a temporary file's is 0600)


def serving_once(reply: bytes):
    """An address whose server answers one request with `reply` (status line, headers and body) and
    closes the connection: a download cut short, or a reply no server should send."""
    import socket
    import threading
    listener = socket.create_server(("127.0.0.1", 0))

    def answer():
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(reply)
    threading.Thread(target=answer, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/cifar-10-python.tar.gz"


@pytest.mark.parametrize("reply, said", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 1_000_000, "ended after 1 of 3 MB"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n" + b"x" * 1000, "IncompleteRead"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\nConnection: close\r\n\r\nxyz", "damaged"),
])
def test_a_download_cut_short_or_garbled_is_a_sentence_and_keeps_nothing(tmp_path, reply, said):
    with pytest.raises(data.DataError, match=said):
        data.download(tmp_path, url=serving_once(reply), sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_download_left_by_a_stopped_server_is_swept_by_the_next(tiny_archive, tmp_path):
    import os
    left = tmp_path / f"{data.PART_PREFIX}abc.part"
    left.write_bytes(b"x" * 1000)
    os.utime(left, (time.time() - data.LEFT_BEHIND_S - 60,) * 2)
    running = tmp_path / f"{data.PART_PREFIX}def.part"     # another process's, still arriving
    running.write_bytes(b"x" * 1000)
    digest = hashlib.sha256(tiny_archive.read_bytes()).hexdigest()
    data.download(tmp_path, url=tiny_archive.as_uri(), sha256=digest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, data.ARCHIVE_NAME])


def test_a_damaged_download_is_refused_and_not_kept(tiny_archive, tmp_path):
    with pytest.raises(data.DataError, match="damaged"):
        data.download(tmp_path, url=tiny_archive.as_uri(), sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_offline_download_says_so(tmp_path):
    with pytest.raises(data.DataError, match="offline"):
        data.download(tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_a_download_with_nowhere_to_go_says_so(tiny_archive, small_disk, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(small_disk))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)   # a home it may not write in
    with pytest.raises(data.DataError, match="cannot be saved in .*Read-only.*: set KERAS_HOME"):
        data.download(url=tiny_archive.as_uri())            # the Keras cache, as the app's button downloads
    # A folder the person named (`download --data-dir`): KERAS_HOME has nothing to do with it.
    with pytest.raises(data.DataError, match="cannot be saved in .*Read-only.*: choose a folder this user may write"):
        data.download(small_disk / "mine", url=tiny_archive.as_uri())
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    fill(small_disk, leave=4 << 10)
    with pytest.raises(data.DataError, match="is full, so the data set"):    # not "Are you offline?"
        data.download(small_disk, url=tiny_archive.as_uri())
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


def test_a_download_left_early_keeps_nothing_and_one_runs_at_a_time(tiny_archive, tmp_path):
    """The page that asked for it is left: Streamlit stops its script from inside the progress callback."""
    class Left(BaseException):
        pass

    def progress(done, total):
        with pytest.raises(data.DataError, match="already being downloaded"):   # a second press meanwhile
            data.download(tmp_path, url=tiny_archive.as_uri())
        raise Left

    with pytest.raises(Left):
        data.download(tmp_path, url=tiny_archive.as_uri(), progress=progress)
    assert list(tmp_path.iterdir()) == []
    digest = hashlib.sha256(tiny_archive.read_bytes()).hexdigest()
    assert data.download(tmp_path, url=tiny_archive.as_uri(), sha256=digest).exists()   # and the next one goes on


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



# --- Other pickle protocols, and what the official archive's Python 2 wrote -----------------------

def _batch(images, labels, protocol, changes: dict | None = None) -> bytes:
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {b"batch_label": b"tiny", b"data": planes, b"labels": [int(v) for v in labels],
             b"filenames": [b"x.png"] * len(images)}
    return pickle.dumps({**batch, **(changes or {})}, protocol=protocol)


def _folder_of(tmp_path, batches: dict) -> str:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*data.TRAIN_BATCHES, data.TEST_BATCH):
        (folder / name).write_bytes(batches.get(name) or batch_bytes(*tiny_images(10, 0)))
    return folder


@pytest.mark.parametrize("mode", ["w:", "w:bz2", "w:xz"])
def test_reads_an_uncompressed_bzip2_or_xz_archive(mode, tiny_archive, tmp_path):
    path = tmp_path / "cifar-10-python.tar"
    with tarfile.open(tiny_archive) as source, tarfile.open(path, mode) as tar:
        for member in source:
            tar.addfile(member, source.extractfile(member))
    np.testing.assert_array_equal(data.read(path).x_test, data.read(tiny_archive).x_test)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_reads_batches_in_every_pickle_protocol(protocol, tmp_path):
    images, labels = tiny_images(30, 7)
    folder = _folder_of(tmp_path, {"test_batch": _batch(images, labels, protocol)})
    d = data.read(folder)
    np.testing.assert_array_equal(d.x_test, images)
    assert d.y_test.tolist() == labels.tolist()


def _python2_batch(images, labels) -> bytes:
    """A batch as the official archive's Python 2 cPickle wrote it (protocol 2): str keys, the pixels one
    BINSTRING, numpy.core names, the dtype's flags as ints."""
    def string(raw: bytes) -> bytes:
        return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    dtype = (b"cnumpy\ndtype\n" + string(b"u1") + b"K\x00K\x01\x87R"
             b"(K\x03" + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + string(b"b") + b"\x87R"
             b"(K\x01M" + struct.pack("<H", len(images)) + b"M\x00\x0c\x86" + dtype + b"\x89"
             + string(planes.tobytes()) + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([int(v)]) for v in labels) + b"e"
    names = b"](" + string(b"x.png") * len(images) + b"e"
    return (b"\x80\x02}(" + string(b"batch_label") + string(b"tiny") + string(b"data") + array
            + string(b"labels") + label_list + string(b"filenames") + names + b"u.")


def test_reads_a_batch_as_python_2_pickled_it(tmp_path):
    images, labels = tiny_images(30, 8)
    d = data.read(_folder_of(tmp_path, {"test_batch": _python2_batch(images, labels)}))
    np.testing.assert_array_equal(d.x_test, images)
    assert d.y_test.tolist() == labels.tolist()


def test_the_largest_official_batch_fits_every_limit():
    """10,000 pictures all of value 255 (each two UTF-8 bytes when Python 3 writes protocol 2), long
    file names: the biggest batch the official layout allows still loads."""
    rows = np.full((10_000, 3072), 255, np.uint8)
    raw = pickle.dumps({b"batch_label": b"training batch 1 of 5", b"data": rows, b"labels": [9] * 10_000,
                        b"filenames": [b"leptodactylus_pentadactylus_s_%06d.png" % i for i in range(10_000)]},
                       protocol=2)
    assert len(raw) > 61_000_000
    loaded, labels = data._read_batch(raw, "largest")
    assert loaded.shape == (10_000, 3072) and (loaded == 255).all() and labels.shape == (10_000,)


# --- What is not a batch ---------------------------------------------------------------------------

_images10, _labels10 = tiny_images(10, 3)
_planes10 = _images10.transpose(0, 3, 1, 2).reshape(10, -1)


@pytest.mark.parametrize("raw, says", [
    (_batch(_images10, _labels10[:9], 2), "it has 10 pictures but 9 labels"),
    (_batch(_images10, [10] * 10, 2), "labels are not all classes 0 to 9"),
    (_batch(_images10, _labels10, 2, {b"labels": _labels10.astype(np.float32)}), "type 'f4'"),
    (_batch(_images10, _labels10, 2, {b"data": _planes10.astype(np.float32)}), "type 'f4'"),
    (_batch(_images10, _labels10, 2, {b"data": _images10}), r"shape \(10, 32, 32, 3\)"),
    (_batch(_images10, _labels10, 2, {b"data": _planes10[:0]}), r"shape \(0, 3072\)"),
    (_batch(_images10, _labels10, 2, {b"data": _planes10.astype(object)}), "type 'O8'"),
    (_batch(_images10, _labels10, 2, {b"data": _planes10.tobytes()}), "'data' is a bytes"),
    (pickle.dumps([1, 2]), "holds a list"),
    (pickle.dumps({"data": _planes10, "labels": _labels10.tolist()}), "no b'data' or no b'labels' entry"),
    (b"\x80\x02cnumpy\nndarray\n)\x81.", "pickle instruction NEWOBJ"),
    (b"\x80\x02}q\x00(", "ends before its STOP"),
    (b"\x80\x02}\xff.", "not a pickle instruction"),
    (b"\x80\x02}h\x05.", "memo slot 5, which it never filled"),
])
def test_a_batch_that_breaks_the_layout_is_refused(raw, says, tmp_path):
    with pytest.raises(data.DataError, match=f"test_batch is not a (safe )?CIFAR-10 batch: .*{says}"):
        data.read(_folder_of(tmp_path, {"test_batch": raw}))


def test_labels_may_be_an_integer_array(tmp_path):
    raw = _batch(_images10, _labels10, 3, {b"labels": _labels10.astype(np.uint8)})
    assert data.read(_folder_of(tmp_path, {"test_batch": raw})).y_test.tolist() == _labels10.tolist()


def test_a_batch_twice_in_one_archive(tmp_path):
    members = _full_layout(batch_bytes(*tiny_images(10, 0)))
    path = _archive_with(tmp_path, {**members, "./cifar-10-batches-py/test_batch": members[
        "cifar-10-batches-py/test_batch"]})
    with pytest.raises(data.DataError, match="holds cifar-10-batches-py/test_batch twice"):
        data.read(path)


# --- Hostile archives: each a small file that once cost gigabytes, crashed, or passed for CIFAR-10 ---

REFUSALS = {     # what the one-sentence DataError says for each of tests/hostile_archives.py
    "pickle_codecs_hex_chain": r"not a safe CIFAR-10 batch: it calls _codecs.encode\(bytes, 'hex'\)",
    "pickle_codecs_latin1_repeated": "not a safe CIFAR-10 batch: it makes more than 32 MB of bytes",
    "pickle_codecs_budget_reset": "not a safe CIFAR-10 batch: it gives one of numpy's or Python's functions a state",
    "pickle_global_state": "not a safe CIFAR-10 batch: it gives one of numpy's or Python's functions a state",
    "pickle_colliding_keys": "not a safe CIFAR-10 batch: it puts more than 64 entries in its dicts",
    "pickle_reconstruct_huge_shape": "not a safe CIFAR-10 batch: it calls numpy's _reconstruct other than",
    "pickle_memo_index": "not a safe CIFAR-10 batch: it stores into memo slot 100,000,000",
    "pickle_empty_dict_flood": "not a safe CIFAR-10 batch: it has more than 200,000 pickle instructions",
    "pickle_memo_list": "not a safe CIFAR-10 batch: it has more than 200,000 pickle instructions",
    "pickle_deep_tuple": "not a safe CIFAR-10 batch: it nests objects more than 64 deep",
    "batch_of_20000": r"test_batch is not a CIFAR-10 batch: it holds an array of shape \(20000, 3072\)",
    "tiny_archive_300k_pictures": "data_batch_1 is not a CIFAR-10 batch: its 'data' is a list",
    "gzip_bomb_member": "data_batch_1 is 2,100,000,000 bytes, more than any CIFAR-10 batch",
    "tar_size_hidden_in_pax": "data_batch_1 is 2,100,000,000 bytes, more than any CIFAR-10 batch",
    "tar_pax_header_bomb": "a tar header in it asks to read 2,100,000,256 bytes at once",
    "tar_million_members": "holds more than 64 files",
    "tar_size_claims_more_than_data": "corrupt or truncated",
    "truncated_archive": "corrupt or truncated",
    "folder_sparse_batch": "data_batch_1 is 3,000,000,000 bytes, more than any CIFAR-10 batch",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """name -> path of each hostile archive (a .tar.gz) or folder, written once for this module."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, builder in hostile_archives.BUILDERS.items():
        paths[name] = folder / f"{name}.tar.gz"
        paths[name].write_bytes(builder())
    for name, builder in hostile_archives.FOLDER_BUILDERS.items():
        paths[name] = builder(folder / name)
    return paths


def test_every_hostile_archive_has_an_expected_refusal():
    assert set(REFUSALS) == set(hostile_archives.BUILDERS) | set(hostile_archives.FOLDER_BUILDERS)


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_hostile_archive_is_refused_quickly_in_one_sentence(name, hostile):
    start = time.perf_counter()
    with pytest.raises(data.DataError, match=REFUSALS[name]) as e:
        data.read(hostile[name])
    assert time.perf_counter() - start < 5
    message = str(e.value)
    assert str(hostile[name]) in message and message.endswith(".") and "\n" not in message and len(message) < 400


_PEAK = """
import json, resource, sys, time
from cifar_core import data
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
base = peak_mb()
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        data.read(path)
        outcome = "loaded"
    except data.DataError:
        outcome = "refused"
    print(json.dumps({"path": path, "outcome": outcome, "seconds": round(time.perf_counter() - start, 2),
                      "growth_mb": peak_mb() - base}), flush=True)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux only")
def test_no_hostile_archive_takes_much_memory(hostile):
    """Each one read in turn in a fresh process: its peak memory, over what importing took, stays under
    300 MB (before these checks they took 0.4 to 2.3 GB, and the deep tuple crashed the process)."""
    paths = [str(hostile[name]) for name in sorted(hostile)]
    result = subprocess.run([sys.executable, "-c", _PEAK, *paths], capture_output=True, text=True, check=False,
                            cwd=Path(data.__file__).parent.parent, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]     # a crash, a segfault included, fails here
    seen = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["path"] for s in seen] == paths
    for s in seen:
        assert s["outcome"] == "refused" and s["growth_mb"] < 300, s


def test_class_names_read_as_english_in_sentences():
    from cifar_core.data import with_article
    assert [with_article(n) for n in ("airplane", "automobile", "cat")] == ["an airplane", "an automobile", "a cat"]
