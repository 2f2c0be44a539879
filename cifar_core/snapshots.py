"""Per-epoch snapshots of what a network has learned, for the "learning, live" views.

A trainer writes one small file per epoch into its run directory:

    snapshots/epoch-0001.npz     written atomically after each epoch's test pass

Each is a NumPy .npz archive (plain arrays, never pickles) holding:

    epoch          int64 ()            the epoch, counted over the run's whole history: a continued
                                       run carries on after its parent's last snapshot
    panel          int32 (8,)          the panel: indices of 8 test pictures, the same for every run
                                       (the first test picture of each of the first 8 classes met)
    labels         uint8 (8,)          their true classes
    probabilities  float32 (8, 10)     the network's probabilities for them (one view, no temperature)
    per_class      float32 (10,)       the share of each class's test pictures it got right (NaN: none)
    filters        uint8 (n, h, w, 3)  the first layer's filters as RGB pictures (`as_colours`);
                                       on at most FILTER_EPOCHS epochs of a trainer, evenly spread
    pictures       uint8 (8, 32, 32, 3) the panel's pictures, in the first snapshot each trainer writes

The filters are those of the first trainable convolution. In the airbench
networks that layer sees the output of a fixed 2x2 "whitening" convolution
followed by GELU or ReLU, not the picture, so its filters are drawn as the
colour pattern they respond to in the picture: their response to small changes
around the average picture (`inside.seen_through`), which, while the whitening's
bias is zero, is exactly the odd part of their response to any picture. Those
patterns cover 4x4 pixels (6x6 where the whitening steps over 2x2 patches);
the tutorial network's cover 3x3.

Readers skip a damaged, oversized or foreign file as if it were missing.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_core import rundir

FOLDER = rundir.SNAPSHOTS
PANEL_SIZE = 8
FILTER_EPOCHS = 50              # filters on at most this many epochs of one trainer (keeps 200 epochs < 1 MB)
SHARED_MOST = 100               # of its parent's snapshots a continued run takes (`share_history`)
MAX_FILE_BYTES = 256 << 10      # a snapshot is 1-30 KB; anything bigger is not ours
_NAME = re.compile(r"epoch-(\d{4,9})\.npz")
_SHAPES = {"panel": ((PANEL_SIZE,), np.integer), "labels": ((PANEL_SIZE,), np.integer),
           "probabilities": ((PANEL_SIZE, 10), np.floating), "per_class": ((10,), np.floating)}


@dataclass(frozen=True)
class Snapshot:
    epoch: int
    panel: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    per_class: np.ndarray
    filters: np.ndarray | None = None
    pictures: np.ndarray | None = None


def panel_indices(labels: np.ndarray, size: int = PANEL_SIZE) -> np.ndarray:
    """The first picture of each class, in the order the classes first appear, for the first `size` classes."""
    _, first = np.unique(np.asarray(labels), return_index=True)
    return np.sort(first)[:size].astype(np.int32)


def filter_epochs(count: int, most: int = FILTER_EPOCHS) -> set[int]:
    """Which of epochs 1..count keep their filters: all of them, or `most` evenly spread with the first and last."""
    if count <= most:
        return set(range(1, count + 1))
    return {1 + round(i * (count - 1) / (most - 1)) for i in range(most)}


def first_layer_kernel(model) -> np.ndarray | None:
    """The first trainable convolution's kernel as it acts on the picture's colours, (h, w, 3, filters),
    in normalised pixel units; None for a network whose first layer cannot be drawn in picture colours."""
    from keras import layers
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    first = next((layer for layer in convs if layer.trainable and layer.name != "whiten"), None)   # its bias learns
    if first is None:
        return None
    kernel = np.asarray(first.get_weights()[0], dtype=np.float32)        # (kh, kw, in, out)
    if kernel.shape[2] == 3:
        return kernel
    stem = next((layer for layer in convs if layer.name == "whiten"), None)
    if stem is None:
        return None
    whiten = stem.get_weights()[0]                                      # (2, 2, 3, in)
    if whiten.shape[2] != 3 or whiten.shape[3] != kernel.shape[2]:
        return None
    from cifar_core.inside import seen_through
    return seen_through(model, stem, kernel)        # the same squares Look inside draws


def rgb_filters(model) -> np.ndarray | None:
    """`first_layer_kernel` as uint8 RGB pictures (filters, h, w, 3), drawn by `as_colours`."""
    kernel = first_layer_kernel(model)
    if kernel is None:
        return None
    return as_colours(kernel.transpose(3, 0, 1, 2))


def as_colours(filters: np.ndarray) -> np.ndarray:
    """Filters (N, h, w, 3) as uint8 RGB pictures, each scaled on its own around zero: grey where a weight
    is nothing, lighter where it is positive, darker where negative, its largest weight at the end of the
    range. Stretched from its own lowest to highest, a filter that adds up the light (airbench's whitening
    filter of plain brightness, 0.089, 0.094 and 0.090 for red, green and blue) was drawn bright green, and
    its negative magenta."""
    filters = np.asarray(filters, np.float32)
    largest = np.abs(filters).max(axis=(1, 2, 3), keepdims=True)
    scaled = np.where(largest > 0, filters / np.where(largest > 0, largest, 1), 0.0)
    return np.round(127.5 + 127.5 * scaled).astype(np.uint8)


class Writer:
    """Writes a trainer's snapshots: `write(...)` after each epoch's test pass."""

    def __init__(self, run_dir: Path, x_test: np.ndarray, y_test: np.ndarray, epochs: int):
        self.folder = Path(run_dir) / FOLDER
        self.panel = panel_indices(y_test)
        self.labels = np.asarray(y_test)[self.panel].astype(np.uint8)
        self.pictures = np.asarray(x_test)[self.panel].astype(np.uint8)
        self.keep_filters = filter_epochs(epochs)
        self.offset: int | None = None
        self.written = 0

    def write(self, model, epoch: int, probabilities: np.ndarray, per_class: np.ndarray) -> Path:
        """Snapshot after this trainer's `epoch` (1, 2, ...); `probabilities` are the whole test set's."""
        if self.offset is None:
            # Decided at the first write, not at start: a continued run's history is copied in
            # while its trainer is still starting up.
            self.offset = last_epoch(self.folder.parent)
        arrays = {"epoch": np.int64(self.offset + epoch), "panel": self.panel, "labels": self.labels,
                  "probabilities": np.asarray(probabilities)[self.panel].astype(np.float32),
                  "per_class": np.asarray(per_class, dtype=np.float32)}
        if epoch in self.keep_filters:
            filters = rgb_filters(model)
            if filters is not None:
                arrays["filters"] = filters
        if not self.written:
            arrays["pictures"] = self.pictures
        self.folder.mkdir(exist_ok=True)
        path = self.folder / file_name(self.offset + epoch)
        with rundir.whole_file(path) as file:
            np.savez_compressed(file, **arrays)
        self.written += 1
        return path


def file_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.npz"


def files(run_dir: Path) -> dict[int, Path]:
    """Every snapshot file by epoch, oldest first, from the names alone (nothing is opened)."""
    try:
        entries = os.scandir(Path(run_dir) / FOLDER)
    except OSError:
        return {}
    with entries:
        found = {int(m.group(1)): Path(e.path) for e in entries if (m := _NAME.fullmatch(e.name))}
    return dict(sorted(found.items()))


def last_epoch(run_dir: Path) -> int:
    return max(files(run_dir), default=0)


def read(path: Path) -> Snapshot | None:
    """One snapshot, or None when the file is missing, damaged, oversized or not a snapshot."""
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            return None
        raw = Path(path).read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:   # no member may unpack to more than the cap
            if any(info.file_size > MAX_FILE_BYTES for info in archive.infolist()):
                return None
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files if name in Snapshot.__dataclass_fields__}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError):
        return None
    for name, (shape, kind) in _SHAPES.items():
        value = arrays.get(name)
        if value is None or value.shape != shape or not np.issubdtype(value.dtype, kind):
            return None
    epoch = arrays.get("epoch")
    if epoch is None or epoch.shape != () or not np.issubdtype(epoch.dtype, np.integer) or epoch < 1:
        return None
    if np.any(arrays["labels"] >= 10) or np.any(arrays["labels"] < 0):
        return None
    filters, pictures = arrays.get("filters"), arrays.get("pictures")
    if filters is not None and (filters.dtype != np.uint8 or filters.ndim != 4 or filters.shape[-1] != 3):
        filters = None
    if pictures is not None and (pictures.dtype != np.uint8 or pictures.shape != (PANEL_SIZE, 32, 32, 3)):
        pictures = None
    return Snapshot(int(epoch), arrays["panel"].astype(np.int64), arrays["labels"].astype(np.int64),
                    arrays["probabilities"].astype(np.float32), arrays["per_class"].astype(np.float32),
                    filters, pictures)


def history(run_dir: Path) -> list[Snapshot]:
    """Every readable snapshot of a run, oldest first; damaged ones are skipped."""
    return [s for s in map(read, files(run_dir).values()) if s is not None]


def _spread(epochs: list[int], most: int) -> list[int]:
    """Up to `most` of these epochs (ascending), each the nearest to one of `most` evenly spaced between
    the first and the last, which are kept."""
    if len(epochs) <= most:
        return epochs
    known = np.asarray(epochs)
    wanted = np.linspace(known[0], known[-1], most)
    after = np.clip(np.searchsorted(known, wanted), 1, len(known) - 1)
    nearest = np.where(wanted - known[after - 1] <= known[after] - wanted, after - 1, after)
    return [int(e) for e in np.unique(known[nearest])]


def share_history(source_run: Path, run_dir: Path) -> None:
    """Give `run_dir` its parent's (`source_run`'s) snapshot files, epoch numbers kept: hard links, so a
    chain of continued runs holds each snapshot once on disk however long the chain, and a parent
    deleted later leaves them whole; copies where the file system cannot link. Files gone meanwhile,
    unreadable or oversized ones are left out. Snapshots are replaced whole, never written in place
    (`rundir.atomic_write_bytes`), so a file two runs share is never changed under either.

    At most SHARED_MOST of them, the nearest to evenly spread epochs, the first and the last kept: every
    page showing a run opens each of its snapshots, and a run of 200 epochs continued twelve times held
    2,600, seconds of the server's CPU each time it was shown. So a run holds at most SHARED_MOST and its
    own; spread by epoch, not by file, so a long chain's early epochs are not thinned again at every link."""
    found = files(source_run)
    if not found:
        return
    folder = Path(run_dir) / FOLDER
    folder.mkdir(exist_ok=True)
    for epoch in _spread(list(found), SHARED_MOST):
        path = found[epoch]
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            try:
                os.link(path, folder / path.name, follow_symlinks=False)
            except OSError:         # no hard links here (another device, a file system without them)
                rundir.atomic_write_bytes(folder / path.name, path.read_bytes())
        except OSError:             # gone meanwhile, or unreadable
            continue
