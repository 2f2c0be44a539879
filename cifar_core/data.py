"""CIFAR-10 loading: a local archive or folder, the Keras cache, or a download.

`load()` resolves the data in this order:
1. `source`, or the CIFAR10_DATA setting: a `cifar-10-python.tar.gz`, or a
   folder holding `cifar-10-batches-py/` (or that folder itself);
2. the Keras cache (`~/.keras/datasets`), where an earlier download left it;
3. a download of the official archive, checked against its sha256 and cached.

Batches are pickles; they are read with an unpickler that only rebuilds numpy
arrays, so an archive from an untrusted path cannot run code.
Images are uint8 arrays of shape (N, 32, 32, 3), RGB; labels int64 (N,).
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cifar_core import settings

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SAMPLE_PATH = Path(__file__).parent / "assets" / "sample.npz"

Progress = Callable[[int, int], None]


class DataError(ValueError):
    """The data could not be read; the message says which file and why."""


@dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    origin: str          # where it came from, for people: a path, or "bundled sample"

    @property
    def is_sample(self) -> bool:
        return len(self.x_train) == 0


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes and numpy arrays; refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),   # how protocol-2 pickles written by Python 3 store raw bytes
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it tries to load {module}.{name}, which a CIFAR-10 batch never needs")


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except pickle.UnpicklingError as e:
        raise DataError(f"{where} is not a safe CIFAR-10 batch: {e}.") from None
    except Exception:
        raise DataError(f"{where} is not a CIFAR-10 batch (expected a pickled dict with 'data' and 'labels').") from None
    if len(images) != len(labels) or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(CLASS_NAMES):
        raise DataError(f"{where} has labels that do not match its images.")
    return np.ascontiguousarray(images), labels


def _batches_from_folder(folder: Path) -> dict[str, bytes]:
    if (folder / BATCH_DIR).is_dir():
        folder = folder / BATCH_DIR
    out = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder} does not hold the CIFAR-10 python batches: {name} is missing.")
        out[name] = path.read_bytes()
    return out


def _batches_from_archive(path: Path) -> dict[str, bytes]:
    wanted = {f"{BATCH_DIR}/{name}": name for name in (*TRAIN_BATCHES, TEST_BATCH)}
    out = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = wanted.get(member.name.lstrip("./"))
                if name and member.isfile():
                    out[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path} is not a readable CIFAR-10 archive (corrupt or truncated: {e}).") from None
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in out]
    if missing:
        raise DataError(f"{path} does not have the official layout: {BATCH_DIR}/{missing[0]} is missing.")
    return out


def read(path: str | os.PathLike) -> Cifar10:
    """Read CIFAR-10 from a `.tar.gz` archive or a folder, or raise DataError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    raw = _batches_from_folder(path) if path.is_dir() else _batches_from_archive(path)
    train = [_read_batch(raw[name], f"{path}: {name}") for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(raw[TEST_BATCH], f"{path}: {TEST_BATCH}")
    return Cifar10(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                   x_test, y_test, origin=str(path))


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def cached() -> Path | None:
    """A copy left in the Keras cache by an earlier download (ours or Keras's own), if any."""
    cache = keras_cache_dir()
    for candidate in (cache / ARCHIVE_NAME, cache / BATCH_DIR,
                      cache / f"{BATCH_DIR}_extracted" / BATCH_DIR):
        if candidate.exists():
            return candidate
    return None


def download(dest_dir: str | os.PathLike | None = None, *, progress: Progress | None = None,
             url: str | None = None, sha256: str = SHA256) -> Path:
    """Download the official archive into `dest_dir` (the Keras cache by default), check it, return its path."""
    url = url or URL
    dest_dir = Path(dest_dir) if dest_dir else keras_cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / ARCHIVE_NAME
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=dest_dir, suffix=".part", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except OSError as e:
            os.unlink(tmp.name)
            raise DataError(f"Could not download CIFAR-10 from {url} ({getattr(e, 'reason', e)}). "
                            "Are you offline? Set CIFAR10_DATA to a local copy instead.") from None
    if digest.hexdigest() != sha256:
        os.unlink(tmp.name)
        raise DataError(f"The download from {url} is damaged (its sha256 does not match); nothing was kept.")
    os.replace(tmp.name, dest)
    return dest


def locate(source: str | os.PathLike | None = None) -> Path | None:
    """The path `load` would read without downloading, or None."""
    if source is not None:
        return Path(source).expanduser()
    return settings.get().data or cached()


def load(source: str | os.PathLike | None = None, *, progress: Progress | None = None) -> Cifar10:
    """The whole data set, from `source`, CIFAR10_DATA, the Keras cache, or a download."""
    return read(locate(source) or download(progress=progress))


def load_sample() -> Cifar10:
    """The bundled offline sample: 1,000 test images, 100 per class, no training images."""
    with np.load(SAMPLE_PATH) as sample:
        x, y = sample["x"], sample["y"].astype(np.int64)
    return Cifar10(x[:0], y[:0], x, y, origin="bundled sample")

