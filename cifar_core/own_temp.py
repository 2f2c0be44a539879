"""A trainer's temporary files in a folder of its own, removed once the trainer is gone.

TensorFlow writes the code it generates for a training step (autograph) into the system's temporary
folder, and Keras stages every save in a folder there; both are removed as the process exits normally.
A trainer killed outright (out of memory, the silence check, the machine's service stopped) leaves them
behind, a few files each time, in a folder a hosted server may never empty over a term: the test suite
alone left 1,339 here. So each trainer points its temporary files into `cifar-trainer-<pid>-<start>`
there (`use_own`), and every trainer that starts removes the folders of the trainers that are gone.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from cifar_core import rundir

PREFIX = "cifar-trainer-"


def use_own() -> Path:
    """Send this process's temporary files (Python's `tempfile` and TensorFlow's, which reads TMPDIR) to a
    folder of its own, removed at exit; first the folders of trainers no longer running are removed. Call
    before TensorFlow is imported."""
    base = Path(tempfile.gettempdir())
    sweep(base)
    me = os.getpid()
    folder = base / f"{PREFIX}{me}-{rundir.process_start(me)}"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = tempfile.tempdir = str(folder)
    # Registered before TensorFlow's own clean-up, so it runs after it (last in, first out).
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def sweep(base: Path) -> None:
    """Remove the folders in `base` of trainers that are gone: named for a pid and its start time, which
    together name one process for good (a pid reused later has another start time)."""
    for folder in base.glob(f"{PREFIX}*"):
        pid, _, started = folder.name[len(PREFIX):].partition("-")
        if not pid.isdigit() or str(rundir.process_start(int(pid))) != started:
            shutil.rmtree(folder, ignore_errors=True)     # another user's stays: not ours to remove
