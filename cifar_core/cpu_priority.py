"""A trainer's CPU priority: below the server's, so visitors' pages are answered first.

A trainer keeps every core busy for as long as it trains, and a school's server
has few: on two cores, one trainer at the same priority as the server took half
the CPU a class's clicks needed, and every photo, page and quiz answer waited for
it. So a trainer lowers its own priority (`CIFAR_TRAINER_NICE`, Linux's nice
value, 10 unless set): while the server has work, the kernel gives the server
the cores first (at 10, about nine tenths of them), and whenever the server is
idle the trainer has them all, as before. A trainer run from the command line on
a laptop is as fast as ever with nothing else to do. Measured with
`benchmarks/pages_while_training.py`.

Linux keeps a nice value per thread, and a new thread starts with its creator's:
every thread the process already has (numpy's, say) is lowered, and the threads
TensorFlow starts afterwards take the value from them. Ray starts its own
workers at 15, so a trainer on a cluster node stays there.

A nice value ranks threads only within their scheduling group, though, and
where the kernel groups by session (autogroup, on by default in Debian's and
Ubuntu's kernels, for processes outside a cpu cgroup) every session gets an even
share: a trainer the app starts in a session of its own (so a server restart
does not end it) took half the cores at nice 10, not a tenth. So a trainer that
leads its own session lowers its session's group too (`/proc/self/autogroup`).
One started from a terminal does not: that group is the person's shell.
"""
from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

from cifar_core import settings


def behind_the_server() -> None:
    """Lower this process's CPU priority to the trainers' (`settings.trainer_nice`), every thread of it;
    never raise it: a trainer started by a process already lower stays as low."""
    wanted = settings.get().trainer_nice
    for thread in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        with contextlib.suppress(OSError):   # a thread that ended meanwhile
            tid = int(thread)
            if os.getpriority(os.PRIO_PROCESS, tid) < wanted:
                os.setpriority(os.PRIO_PROCESS, tid, wanted)
    if os.getsid(0) == os.getpid():
        _session_behind(wanted)


AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_TRIES = 30     # a tenth of a second apart: the kernel takes one change a tenth of a second, machine-wide


def _session_behind(wanted: int, group: Path = AUTOGROUP) -> None:
    """Lower this session's autogroup to `wanted`, never raise it; nothing where the kernel has no
    autogroups (or they are off: the file is there, and the value written does nothing). The kernel
    refuses a change within a tenth of a second of the last one on the machine (EAGAIN) to a process
    without CAP_SYS_ADMIN: trainers started together, all but the first kept their share."""
    for _ in range(AUTOGROUP_TRIES):
        try:
            if int(group.read_text().split("nice")[1]) < wanted:       # "/autogroup-1487 nice 0"
                group.write_text(str(wanted))
            return
        except BlockingIOError:
            time.sleep(0.1 + random.uniform(0, 0.05))
        except (OSError, ValueError, IndexError):      # no such file, or a line not as expected
            return
