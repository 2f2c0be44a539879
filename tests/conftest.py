"""Shared fixtures: a tiny CIFAR-10 archive in the official layout, and the real one where present."""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import filelock
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CIFAR_SHARED_DIR", ROOT.parent / "shared"))


def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch pickled as the official archive does: bytes keys, R/G/B planes, labels as a list."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return pickle.dumps({b"batch_label": b"tiny", b"data": planes, b"labels": [int(v) for v in labels],
                         b"filenames": [b"x.png"] * len(images)}, protocol=2)


def tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is visible (a colour per class plus noise), so a model can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    colours = np.random.default_rng(0).uniform(20, 235, (10, 3))   # the same colours in every batch
    images = colours[labels][:, None, None, :] + rng.normal(0, 25, (n, 32, 32, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_tiny_archive(path: Path, per_batch: int = 40, test: int = 40) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        members = {f"data_batch_{i}": tiny_images(per_batch, i) for i in range(1, 6)}
        members["test_batch"] = tiny_images(test, 99)
        for name, (x, y) in members.items():
            raw = batch_bytes(x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, fileobj=io.BytesIO(raw))
    return path


@pytest.fixture(autouse=True)
def _this_process_stays_the_server():
    """A test that runs the command line's `train` in this process marks it first to go when memory runs
    out and lowers its CPU priority, as a trainer's are; this process stands in for the server in later
    tests, so both are put back (lowering the mark and raising the priority need root, as CI and this
    machine have)."""
    adjust = Path("/proc/self/oom_score_adj")
    before = adjust.read_text() if adjust.exists() else None
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    yield
    if before is not None and adjust.read_text() != before:
        adjust.write_text(before)
    for thread in map(int, os.listdir("/proc/self/task")):    # TensorFlow's threads started meanwhile too
        with contextlib.suppress(OSError):      # a thread that has ended
            if os.getpriority(os.PRIO_PROCESS, thread) != nice:
                os.setpriority(os.PRIO_PROCESS, thread, nice)


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    return write_tiny_archive(tmp_path_factory.mktemp("tiny") / "cifar-10-python.tar.gz")


@pytest.fixture
def tiny_env(tiny_archive, tmp_path, monkeypatch):
    """Settings pointing at the tiny archive and a fresh runs directory."""
    monkeypatch.setenv("CIFAR10_DATA", str(tiny_archive))
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CIFAR_WORKER_IDLE_S", "3")   # a test's warm trainer must not outlive it by minutes
    return tmp_path


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB file system of its own (tmpfs), to fill up: a server's disk running full. Skipped where this
    process may not mount one (not root, no tmpfs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("a small file system cannot be mounted here (mounting needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Take all but about `leave` bytes of `disk`'s free space."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")      # cgroup v1's memory controller, where this machine has it


@pytest.fixture
def small_memory(tmp_path):
    """A memory cgroup of 1.3 GB, no swap: a server that runs out of memory. Skipped where none can be made."""
    group = MEMORY_CGROUPS / f"cifar-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(1300 << 20))
        (group / "memory.swappiness").write_text("0")
    except OSError:
        pytest.skip("no memory cgroup can be made here (cgroup v1 and root needed)")
    yield group
    for _ in range(50):                 # the processes in it must be gone before it can be removed
        try:
            group.rmdir()
            break
        except OSError:
            time.sleep(0.1)


@pytest.fixture(scope="session")
def real_archive() -> Path:
    """The whole data set (offline JPEG copy), where this machine has it; else the test is skipped."""
    if os.environ.get("CIFAR10_DATA"):
        return Path(os.environ["CIFAR10_DATA"])
    tool = SHARED / "tools" / "cifar10_archive.py"
    if not tool.exists():
        pytest.skip("the offline CIFAR-10 copy (../shared/data) is not on this machine")
    # One at a time: the other test process would otherwise build the same archive into the same file.
    with filelock.FileLock(Path(tempfile.gettempdir()) / "cifar10-archive-for-tests.lock"):
        out = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def as_teacher(at, monkeypatch) -> None:
    """An AppTest session's browser unlocked, as typing the teacher password does (`common.teacher_login`)."""
    from app_pages import common, identity
    monkeypatch.setenv("CIFAR_ADMIN_PASSWORD", "s3cret")
    common.unlocked_browsers().add(identity.owner_id(at.session_state["owner"]))


class AtOnce:
    """A slow stand-in for something costly, counting how many calls of it ran at the same time."""

    def __init__(self, seconds: float = 0.2):
        self.seconds, self.running, self.most = seconds, 0, 0
        self._lock = threading.Lock()

    def returning(self, result):
        def call(*args, **kwargs):
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(self.seconds)
            with self._lock:
                self.running -= 1
            return result() if callable(result) else result
        return call


# Run two at a time (pytest-xdist, `-n 2` in pytest.ini), a file to a worker: a file's module fixtures (a
# Streamlit server, a trained model) are made once. Files that share something costly are kept together.
SHARED_BY = {"ray": {"test_ray_backend.py", "test_runs_backends.py"}}   # one local Ray cluster per process


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        group = next((name for name, files in SHARED_BY.items() if item.path.name in files), item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails says what its page showed then: a failure seen once in CI can be read."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    from playwright.sync_api import Page
    page = next((v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Page)), None)
    if page is None:
        return
    try:
        shown = page.inner_text("body", timeout=5_000)
        page.screenshot(path=ROOT / "test-artifacts" / f"failed-{item.name[:80]}.png", full_page=True, timeout=10_000)
    except Exception as e:       # the page itself may be what broke
        shown = f"(the page could not be read: {e})"
    report.sections.append(("what the page showed", shown[-4_000:]))
