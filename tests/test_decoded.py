import json
import os
import shutil
import time

import numpy as np
import pytest

from cifar_core import data, decoded
from conftest import write_tiny_archive


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def _copies():
    return sorted(p for p in decoded.cache_root().iterdir() if not p.name.startswith("."))


def _same(a: data.Cifar10, b: data.Cifar10):
    for name in decoded.ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.origin == b.origin


def test_the_decoded_copy_is_mapped_and_equal_to_the_archive(tiny_archive):
    first, again = decoded.read(tiny_archive), decoded.read(tiny_archive)
    _same(first, data.read(tiny_archive))
    _same(again, first)
    assert len(_copies()) == 1
    # Mapped from the file, read-only: no process can change what the others see.
    assert not again.x_train.flags.writeable
    assert type(again.x_train) is np.ndarray


def test_a_changed_source_is_decoded_again_and_the_old_copy_goes(tiny_archive, tmp_path):
    source = tmp_path / "cifar.tar.gz"
    shutil.copy(tiny_archive, source)
    before = decoded.read(source)
    old = _copies()
    # Another archive under the same name: a different test set.
    write_tiny_archive(source, per_batch=12, test=20)
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    after = decoded.read(source)
    _same(after, data.read(source))
    assert len(after.y_test) != len(before.y_test)
    assert len(_copies()) == 1 and _copies() != old


@pytest.mark.parametrize("damage", ["truncated", "missing", "wrong shape", "bad labels", "empty"])
def test_a_damaged_copy_is_made_again_not_trusted(tiny_archive, damage):
    decoded.read(tiny_archive)
    (copy,) = _copies()
    if damage == "truncated":
        raw = (copy / "x_train.npy").read_bytes()
        (copy / "x_train.npy").write_bytes(raw[:len(raw) // 2])
    elif damage == "missing":
        (copy / "y_test.npy").unlink()
    elif damage == "empty":             # a power cut after the rename, before the data reached the disk
        (copy / "x_test.npy").write_bytes(b"")
    elif damage == "wrong shape":
        np.save(copy / "x_test.npy", np.zeros((40, 32, 32), np.uint8))
    else:
        np.save(copy / "y_train.npy", np.full(200, 99, np.int64))
    _same(decoded.read(tiny_archive), data.read(tiny_archive))


def test_without_a_writable_cache_the_pictures_are_read_into_memory(tiny_archive, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("KERAS_HOME", str(blocked))
    cifar = decoded.read(tiny_archive)
    _same(cifar, data.read(tiny_archive))
    assert cifar.x_train.flags.writeable


def test_a_bad_source_gets_its_sentence_and_leaves_no_copy(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(data.DataError, match="not a readable CIFAR-10 archive"):
        decoded.read(bad)
    with pytest.raises(data.DataError, match="does not exist"):
        decoded.read(tmp_path / "nowhere.tar.gz")
    assert not decoded.cache_root().exists() or _copies() == []


def test_load_maps_the_decoded_copy(tiny_archive):
    data.load(tiny_archive)
    assert not data.load(tiny_archive).x_test.flags.writeable


def test_processes_starting_together_decode_once_and_keep_the_copy(tiny_archive, tmp_path):
    """Two servers and a trainer starting at once each decoded the archive, and a slower one removed the
    copy another had just made. One makes it while the others wait for it, then map it."""
    import subprocess
    import sys
    from conftest import ROOT
    script = (
        "import sys, time\n"
        "from cifar_core import data, decoded\n"
        "real = data.read\n"
        "def slow(path):\n"
        "    print('decoding', flush=True)\n"
        "    time.sleep(1.0)\n"
        "    return real(path)\n"
        "data.read = slow\n"
        "cifar = decoded.read(sys.argv[1])\n"
        "print('mapped' if not cifar.x_train.flags.writeable else 'in memory', len(cifar.y_test), flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [subprocess.Popen([sys.executable, "-c", script, str(tiny_archive)], env=env, stdout=subprocess.PIPE,
                                text=True) for _ in range(3)]
    said = [p.communicate(timeout=120)[0].split() for p in started]
    assert sum(s.count("decoding") for s in said) == 1, said
    assert all(s[-2:] == ["mapped", "40"] for s in said), said
    assert len(_copies()) == 1
    _same(decoded.read(tiny_archive), data.read(tiny_archive))


def test_a_half_written_copy_left_by_a_killed_process_is_removed_later(tiny_archive, tmp_path):
    """Looked for at every read: a server killed as it wrote its copy (or downloaded) and started again at
    once made its copy then, and never another, so the half was swept by nothing (up to 184 MB, and 170)."""
    decoded.read(tiny_archive)
    left = decoded.cache_root() / ".writing-killed"
    left.mkdir()
    (left / "x_train.npy").write_bytes(b"x" * 1000)
    cut_short = data.keras_cache_dir() / f"{data.PART_PREFIX}killed.part"
    cut_short.write_bytes(b"x" * 1000)
    for path in (left, cut_short):
        os.utime(path, (time.time() - 2 * decoded.LEFT_BEHIND_S,) * 2)
    young = decoded.cache_root() / ".writing-now"
    young.mkdir()
    decoded.read(tiny_archive)                   # its copy already made: what was left behind is swept all the same
    assert not left.exists() and not cut_short.exists()
    assert young.exists()                        # one still being written (by another process) is not


def test_a_copy_of_a_source_long_gone_is_let_go(tiny_archive, tmp_path):
    """CIFAR10_DATA pointed elsewhere, or the archive moved: its 184 MB copy stayed for good beside the new."""
    moved = tmp_path / "moved.tar.gz"
    shutil.copy(tiny_archive, moved)
    decoded.read(moved)
    [copy] = [c for c in _copies() if json.loads((c / decoded.SOURCE_FILE).read_text())["path"] == str(moved)]
    moved.unlink()
    recent = tmp_path / "recent.tar.gz"          # another gone only a moment (a drive unplugged): kept
    shutil.copy(tiny_archive, recent)
    decoded.read(recent)
    [kept] = [c for c in _copies() if json.loads((c / decoded.SOURCE_FILE).read_text())["path"] == str(recent)]
    recent.unlink()
    os.utime(copy, (time.time() - 2 * decoded.GONE_SOURCE_S,) * 2)
    source = tmp_path / "other.tar.gz"
    shutil.copy(tiny_archive, source)
    decoded.read(source)                          # a copy made: the long-gone source's copy is swept
    assert not copy.exists() and kept.exists()


def test_the_locks_of_copies_gone_are_swept_but_never_one_held(tiny_archive, tmp_path):
    """A lock file is never removed as it is let go, and each size and time a source is seen with has its
    own: a data file copied in slowly left one a page view, for good. One a process holds, building its
    copy, stays: removed, a third process would take a new lock and build the same copy beside it."""
    from filelock import FileLock
    decoded.read(tiny_archive)
    root = decoded.cache_root()
    [copy] = _copies()
    stale, held = root / ".gone-copy.lock", root / ".being-built.lock"
    stale.touch()
    source = tmp_path / "other.tar.gz"
    shutil.copy(tiny_archive, source)
    with FileLock(held):
        decoded.read(source)                       # a copy made: the copies' folder is swept
        assert held.exists()
    assert not stale.exists() and (root / f".{copy.name}.lock").exists()      # its copy is there: kept
