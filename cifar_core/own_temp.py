"""A trainer's temporary files in a folder of its own, removed once the trainer is gone.

TensorFlow writes the code it generates for a training step (autograph) into the system's temporary
folder, and Keras stages every save in a folder there; both are removed as the process exits normally.
A trainer killed outright (out of memory, the silence check, the machine's service stopped) leaves them
behind, a few files each time, in a folder a hosted server may never empty over a term: the test suite
alone left 1,339 here. So each trainer points its temporary files into a folder named for it there
(`use_own`, `name`), and every trainer that starts removes the folders of the trainers that are gone.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

from cifar_core import rundir

PREFIX = "cifar-trainer-"
# The system's temporary folder, as the first trainer found it: what it starts (a worker's hand-over starts
# another worker) inherits TMPDIR pointing into its own folder, which goes when it exits.
BASE = "CIFAR_TEMP_BASE"


def use_own() -> Path | None:
    """Send this process's temporary files (Python's `tempfile` and TensorFlow's, which reads TMPDIR) to a
    folder of its own, removed at exit; first the folders of trainers no longer running are removed. Call
    before TensorFlow is imported. None, the system's folder kept, where no folder of its own can be made."""
    base = _base()
    sweep(base)
    me = os.getpid()
    folder = base / name(me)
    if tempfile.tempdir == str(folder):
        return folder       # already (a second call)
    try:
        # Made here, never taken as found: on a temporary folder every user shares, another could have
        # made one of that name beforehand for TensorFlow to write code into, and import.
        folder.mkdir(mode=0o700)
    except OSError:
        os.environ["TMPDIR"] = tempfile.tempdir = str(base)      # not the starting trainer's, which goes
        return None
    os.environ["TMPDIR"] = tempfile.tempdir = str(folder)
    # Registered before TensorFlow's own clean-up, so it runs after it (last in, first out).
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _base() -> Path:
    """The system's temporary folder: as the trainer that started this one found it, where that is still a
    folder; else the system's own, an inherited trainer's folder (TMPDIR) passed over."""
    given = os.environ.get(BASE, "")
    if os.path.isabs(given) and os.path.isdir(given):
        return Path(given)
    if Path(os.environ.get("TMPDIR", "")).name.startswith(PREFIX):
        del os.environ["TMPDIR"]
    tempfile.tempdir = None
    os.environ[BASE] = tempfile.gettempdir()
    return Path(os.environ[BASE])


def name(pid: int) -> str:
    """The folder of trainer `pid`: named for its process namespace (containers sharing a temporary folder
    each judge only their own), its pid and its start time, which together name one process for good (a
    pid reused later has another start time)."""
    return f"{PREFIX}{rundir.PID_SPACE}-{pid}-{rundir.process_start(pid)}"


OTHERS_KEPT_S = 7 * 24 * 3600    # another namespace's folder untouched this long: a container's before a restart


def sweep(base: Path) -> None:
    """Remove the folders in `base` of this process namespace's trainers that are gone, and another's
    untouched for a week (a container restarted keeps its temporary folder, in a new namespace)."""
    ours = f"{PREFIX}{rundir.PID_SPACE}-"
    for folder in base.glob(f"{PREFIX}*"):
        if folder.name.startswith(ours):
            pid = folder.name[len(ours):].partition("-")[0]
            gone = not (pid.isascii() and pid.isdigit()) or folder.name != name(int(pid))
        else:
            try:
                gone = time.time() - folder.lstat().st_mtime > OTHERS_KEPT_S
            except OSError:
                continue
        if gone:
            shutil.rmtree(folder, ignore_errors=True)     # another user's stays: not ours to remove
