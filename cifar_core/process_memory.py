"""This process's memory: what it holds, its peak, and handing freed memory back to the system (Linux, glibc).

glibc serves a large allocation from its own mapping, returned to the system
when freed, but only up to a threshold it raises every time such a block is
freed, up to 32 MB. After that, blocks the size of a CIFAR-10 batch (31 MB) or
a test pass's answers come from the heap, and a freed heap stays with the
process: reading the data set peaked at 361 MB to keep 214 MB, and every
first visit, trainer run or data load left its high-water mark behind for
good. `return_large_blocks()` fixes the threshold at 1 MB, so large blocks are
always their own mappings and go back as soon as they are freed: the data
set's load then peaks at 245 MB. Elsewhere every function here does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path

M_MMAP_THRESHOLD = -3          # mallopt's parameter number, from glibc's malloc.h
LARGE_BLOCK = 1 << 20          # blocks from 1 MB up: pictures by the thousand, batches, answers


def _libc():
    return ctypes.CDLL("libc.so.6")


def return_large_blocks() -> None:
    """From now on, give every freed block of LARGE_BLOCK or more back to the system at once."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)


def trim_heap() -> None:
    """Give the freed part of the heap back to the system (what smaller blocks left behind)."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (zeros where /proc is missing)."""
    try:
        text = Path("/proc/self/status").read_text()
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
