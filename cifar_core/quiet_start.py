"""TensorFlow imported without its start-up notes on a person's terminal.

    keep_start_up_notes_off()   once, before anything imports TensorFlow (the command line does)

TF_CPP_MIN_LOG_LEVEL quiets most of TensorFlow's C++ lines, but not those it writes before its logging
is set up: on a CPU where it turns oneDNN on by itself (AVX-512 VNNI or BF16, AMX: most servers of
the last years), every command began with absl's "All log messages before absl::InitializeLog()..."
and "oneDNN custom operations are on...", twice each. No setting quiets them short of turning oneDNN
off, which costs speed; so while TensorFlow is imported the error stream goes through a small process
of its own that writes on every line but those. A process, not a thread: where TensorFlow ends this one
as it starts (its "compiled to use AVX instructions" on an old CPU), what it said before is still
written, as the filter reads on to the end.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import subprocess
import sys

START_UP_NOTES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)


def keep_start_up_notes_off() -> None:
    """Catch TensorFlow's start-up notes when it is first imported (by whatever imports it)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)      # once: TensorFlow's own submodules are found as ever
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _without_notes():
            self.loader.exec_module(module)

    def __getattr__(self, name):      # the rest (resources, source) as the real loader has them
        if name == "loader":          # not set yet (a copy being made): not the real loader's either
            raise AttributeError(name)
        return getattr(self.loader, name)


_FILTER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the command's: this reads on until it ends
notes = [note.encode() for note in sys.argv[1:]]
for line in sys.stdin.buffer:
    if not any(note in line for note in notes):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
"""


@contextlib.contextmanager
def _without_notes():
    """The process's error stream (file descriptor 2, where C++ writes) through a filter process meanwhile,
    which writes it on to where it went, without START_UP_NOTES. Where no process can be started, or the
    stream is not there, as it is."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        kept = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        notes = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, *START_UP_NOTES], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=kept)
    except OSError:
        os.close(kept)
        yield
        return
    os.dup2(notes.stdin.fileno(), 2)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(kept, 2)
        os.close(kept)
        notes.stdin.close()
        notes.wait()
