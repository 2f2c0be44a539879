"""This process's memory: what it holds, its peak, and handing freed memory back to the system (Linux, glibc).

glibc serves a large allocation from its own mapping, returned to the system
when freed, but only above a threshold that it raises each time such a block is
freed, up to 32 MB. Reading the data set frees a CIFAR-10 batch (31 MB) at a
time: the first came back, the rest stayed in the heap, and the load peaked at
361 MB to keep 214 MB, a peak every server and trainer then kept for good.
`large_blocks_returned()` fixes the threshold at 1 MB while the data set is
read, so every batch goes back as soon as it is freed (the load peaks at
245 MB), then at 32 MB, the most glibc would have raised it to, with the heap
trimmed only past 64 MB of free space at its top, as glibc then does: a trainer's
steps allocate and free tensors of several MB many times a second, and
mapping or trimming those afresh each time made a training step up to twice
as slow. Elsewhere than Linux and glibc every function here does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3    # mallopt's parameter numbers, from glibc's malloc.h
WHILE_READING = 1 << 20        # 1 MB: batches, pictures by the thousand
AFTERWARDS = 32 << 20          # glibc's own upper bound for its moving threshold on 64-bit systems


def _mallopt(parameter: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(parameter, value)


@contextlib.contextmanager
def large_blocks_returned():
    """While inside, every freed block of 1 MB or more goes straight back to the system."""
    _mallopt(M_MMAP_THRESHOLD, WHILE_READING)
    try:
        yield
    finally:
        # Setting one threshold stops glibc moving either: both go where it would have moved them.
        _mallopt(M_MMAP_THRESHOLD, AFTERWARDS)
        _mallopt(M_TRIM_THRESHOLD, 2 * AFTERWARDS)


def trim_heap() -> None:
    """Give the freed part of the heap back to the system (what smaller blocks left behind)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_mb(pid: int | str = "self") -> tuple[float, float]:
    """A process's resident memory now and at its peak, in MB, this one's by default (zeros once it has
    gone, or where /proc is missing)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith(("VmRSS:", "VmHWM:"))}
    return round(values.get("VmRSS", 0) / 1024, 1), round(values.get("VmHWM", 0) / 1024, 1)


def restart_peak() -> None:
    """Start the peak (VmHWM) again from the present size, so that a peak read later is that stretch's own
    (writing 5 to clear_refs; where that is not possible the peak stays the process's lifetime's)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


OOM_SCORE_ADJ = Path("/proc/self/oom_score_adj")
FIRST_TO_GO = 1000      # the kernel's highest: chosen before any process not marked so


def first_to_go() -> None:
    """Ask Linux to end this process first when the machine runs out of memory. A trainer's memory grows
    with the batch a visitor picks (the `best` recipe at a batch of 4,096 peaks near 6 GB), and the
    kernel would otherwise end whichever process holds the most, which may be the server and every
    visitor's session with it. A trainer ended so is marked failed in a sentence, its checkpoint kept."""
    with contextlib.suppress(OSError):
        OOM_SCORE_ADJ.write_text(str(FIRST_TO_GO))
