"""The data set decoded once into plain `.npy` files, then memory-mapped read-only.

Reading the official archive means unpacking and checking six pickles and
leaves 184 MB of pictures in each process that reads it: the app server and
its warm trainer each held a private copy. Decoded once into the Keras cache
and mapped, the pictures live in the operating system's page cache instead:
one copy for every process on the machine, read from disk only where a page
is touched (Explore's fifty pictures, not the 50,000 behind them), and given
back by the kernel when memory is short. Where the cache cannot be written
(a read-only home, a full disk) the pictures are read into memory as before.

One decoded copy is kept per source path; it is made again when the source's
size or modification time changes. Files are checked (shapes, types, labels)
before use, so a damaged or foreign copy is replaced, never trusted. One
process makes it while the others wait for it (a lock per copy): two servers
and a trainer starting together each decoded the archive, and one removed the
copy another had just finished. Its files reach the disk before the copy takes
its name, so a power cut leaves no empty files under it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from cifar_core import data

FORMAT = 1                           # bump when the files' layout changes: old copies are then made again
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
SOURCE_FILE = "source.json"
BUILD_WAIT_S = 300                   # how long a process waits for another to make the copy, then reads alone
LEFT_BEHIND_S = 3600                 # a half-written copy this old was left by a process that was killed
GONE_SOURCE_S = 7 * 24 * 3600        # a copy whose source has been gone this long is let go


def cache_root() -> Path:
    return data.keras_cache_dir() / "cifar-10-decoded"


def source_identity(path: Path) -> dict:
    """What changes when the source does: its resolved path and the size and time of every file read."""
    path = path.resolve()
    names = (*data.TRAIN_BATCHES, data.TEST_BATCH)
    files = [path] if path.is_file() else [f for name in names for f in (path / name, path / data.BATCH_DIR / name)
                                           if f.is_file()]
    return {"format": FORMAT, "path": str(path),
            "files": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def _folder(identity: dict) -> Path:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root() / digest


def _mapped(folder: Path) -> dict[str, np.ndarray] | None:
    """The four arrays mapped read-only, or None when any is missing, damaged or not CIFAR-10's shape."""
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
    except Exception:       # noqa: BLE001 - missing, cut short (an empty file is EOFError), or not an array
        return None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if (x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or y.dtype != np.int64
                or y.shape != (len(x),) or (len(y) and not 0 <= y.min() <= y.max() < len(data.CLASS_NAMES))):
            return None
    return arrays


def _write(folder: Path, cifar: data.Cifar10, identity: dict) -> None:
    """The arrays written beside each other in a fresh folder, which then takes `folder`'s name whole:
    a reader sees all four files or none. When another process got there first, its copy is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".writing-"))
    try:
        for name in ARRAYS:
            with open(fresh / f"{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(getattr(cifar, name)), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())      # on the disk before the copy takes its name
        (fresh / SOURCE_FILE).write_text(json.dumps(identity))
        try:
            fresh.rename(folder)
        except OSError:      # another process finished first: both copies are the same pictures
            pass
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _forget_older_copies(identity: dict, keep: Path) -> None:
    """Earlier copies of the same source (before it changed) removed; a process still mapping one keeps
    its pages until it lets go, as Linux keeps a removed file's data while it is open or mapped."""
    for other in cache_root().iterdir():
        if other.name.startswith(".") and other.name.endswith(".lock"):
            # A copy's lock (lock files are never removed as they are let go): one for each size and time the
            # source was seen with, so a data file copied in slowly left one a page view. One whose copy is not
            # there is removed while held here, never under a process building that copy (a process that
            # took it as it went is told by filelock to take it again).
            if not other.with_name(other.name[1:-5]).exists():
                with contextlib.suppress(OSError, Timeout), FileLock(other, timeout=0):
                    other.unlink()
            continue
        if other == keep or other.name.startswith("."):
            continue
        try:
            source = json.loads((other / SOURCE_FILE).read_text()).get("path")
            # A copy of this source before it changed; or of one gone from its place (moved, or CIFAR10_DATA
            # pointed elsewhere), once it is old enough not to be a drive unplugged for a moment: 184 MB each.
            if source == identity["path"] or (
                    not Path(source).exists() and time.time() - other.stat().st_mtime > GONE_SOURCE_S):
                shutil.rmtree(other, ignore_errors=True)
        except (OSError, ValueError, AttributeError, TypeError):
            continue


def _let_go_of_leftovers() -> None:
    """What a process killed as it wrote left here: a copy half written (up to 184 MB) or a download cut
    short (up to 170 MB). Looked for at every read, not only at the next copy or download, which never come
    once a copy stands: a server killed mid-copy and started again at once kept the half for good."""
    with contextlib.suppress(OSError):
        for other in cache_root().glob(".writing-*"):
            if time.time() - other.stat().st_mtime > LEFT_BEHIND_S:
                shutil.rmtree(other, ignore_errors=True)
    with contextlib.suppress(OSError):
        data.sweep_parts(data.keras_cache_dir())


def read(path: str | os.PathLike) -> data.Cifar10:
    """CIFAR-10 from an archive or folder, as `data.read` gives it, but mapped from its decoded copy
    (made now if need be); read into memory when no copy can be kept. Raises DataError as `data.read`."""
    _let_go_of_leftovers()
    path = Path(path).expanduser()
    try:
        there = path.exists()
    except OSError:     # a folder on the way this user may not enter
        there = False
    if not there:
        return data.read(path)       # its own sentence for a missing path, or one it may not open
    try:
        identity = source_identity(path)
    except OSError:     # a file of it removed or replaced as it was looked at
        return data.read(path)
    folder = _folder(identity)
    arrays = _mapped(folder)
    if arrays is None:
        cifar = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(folder.with_name(f".{folder.name}.lock"), timeout=BUILD_WAIT_S):
                arrays = _mapped(folder)        # made by another process while this one waited
                if arrays is None:
                    cifar = data.read(path)
                    shutil.rmtree(folder, ignore_errors=True)   # a damaged copy, if that is why it did not map
                    _write(folder, cifar, identity)
                    _forget_older_copies(identity, folder)
                    arrays = _mapped(folder)
        except (OSError, Timeout):      # no copy can be kept (a read-only cache, a full disk), or too slow
            pass
        if arrays is None:
            return cifar if cifar is not None else data.read(path)
    # Plain arrays over the mapping (np.memmap's subclass would follow every slice into the pages).
    return data.Cifar10(**{name: np.asarray(a) for name, a in arrays.items()}, origin=str(path))
