"""Which model each visitor chose, kept on the server so a reload or a new tab keeps it.

One small file per visitor in `<runs dir>/.chosen-models/`, named by the visitor's
owner id (a hash of their cookie token, never the token itself), holding the chosen
model's key: "bundled" or a run id. A dot-folder, so run listings skip it.

Bounded, because every visitor of a hosted copy may write one: a key is at most
64 characters, a file is read only up to MAX_BYTES, and beyond MAX_PEOPLE files the
least recently written are deleted (a forgotten choice only means the bundled model
again). A file is written only when a visitor changes their choice, never on a visit.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cifar_core import rundir, settings

FOLDER = ".chosen-models"
MAX_PEOPLE = 2000       # files kept; about 2000 x 4 KB of disk at most
MAX_BYTES = 256         # a file holds {"model": "<key>"}: anything bigger is not ours
_OWNER = re.compile(r"[0-9a-f]{32}")               # identity.owner_id(): 32 hex digits
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")   # "bundled" or a run id: no path, no dot-file


def _folder() -> Path:
    return settings.get().runs_dir / FOLDER


def _file(owner: str) -> Path | None:
    return _folder() / f"{owner}.json" if isinstance(owner, str) and _OWNER.fullmatch(owner) else None


def recall(owner: str) -> str | None:
    """The key of the model this visitor chose last, or None when there is none (or it cannot be read)."""
    path = _file(owner)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        key = json.loads(raw).get("model") if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) and _KEY.fullmatch(key) else None


def remember(owner: str, key: str) -> bool:
    """Keep `key` as this visitor's choice; False (and nothing written) for an odd owner or key or a full disk."""
    path = _file(owner)
    if path is None or not isinstance(key, str) or not _KEY.fullmatch(key):
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_bytes(path, json.dumps({"model": key}).encode())
    except OSError:
        return False
    _forget_the_oldest()
    return True


def _forget_the_oldest() -> None:
    try:
        files = [(entry.stat().st_mtime, entry.path) for entry in os.scandir(_folder())
                 if entry.name.endswith(".json")]
    except OSError:
        return
    for _, path in sorted(files)[:max(0, len(files) - MAX_PEOPLE)]:
        try:
            os.remove(path)
        except OSError:
            pass        # another server process removed it first
