"""A picture decoded in a process of its own, under a memory cap: for files whose decoding cost cannot be
told from their header.

    load(raw, background, budget)  -> the upright RGB picture `decoding.load_image` makes, or ImageError

A lossless WebP (or a lossy one with a lossless alpha channel) names, deep in its coded data, how many
groups of prefix codes it uses, up to 65,536, and libwebp builds tables for every one of them before the
first pixel: a 295 KB file of 1024 x 1024 took 385 MB, where its pixels need 13. Finding the number means
decoding the stream, so the file is decoded in a fresh Python (not a fork of a server holding TensorFlow's
threads) that caps its own address space at what it holds after reading the file plus `budget` bytes (the
decoding places' budget the picture was let in under) before it touches a byte of it: past the cap
libwebp's allocations fail, and the child says in a sentence that the picture could not be read. About
0.15 s of a core to start the child, spent only on these files.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 64 * 2**20       # address space for a decoder's threads' stacks and the allocator's own, past the budget
CPU_SECONDS = 10          # a child's CPU limit; a real lossless WebP of the largest size allowed takes under 1 s
WAIT_S = 30               # the wall-clock wait for a child on a busy server

_CHILD = """
import resource, struct, sys
from cifar_core import decoding
raw = sys.stdin.buffer.read()
background, budget, cpu = tuple(map(int, sys.argv[1:4])), int(sys.argv[4]), int(sys.argv[5])
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + budget, size + budget))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
try:
    image = decoding.load_image(raw, background, apart=False)
except decoding.ImageError as e:
    sys.stdout.buffer.write(b"E" + str(e).encode())
else:
    sys.stdout.buffer.write(b"P" + struct.pack("<II", *image.size) + image.tobytes())
"""


# The cap is the child's address space over what Linux says it holds (/proc); elsewhere (a laptop on macOS
# or Windows, one visitor) the picture is decoded in the server's process, as everything else is.
CAPPED_HERE = sys.platform.startswith("linux") and Path("/proc/self/status").exists()


def needed(raw: bytes) -> bool:
    """Whether a file may hold a lossless WebP stream (a VP8L chunk, or an ALPH one, which is mostly VP8L)
    and a child can be capped here: looked for anywhere in the file, so a lossy one whose bytes happen to
    spell either name is decoded apart too, at no cost but the child's start."""
    return CAPPED_HERE and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP" and (b"VP8L" in raw or b"ALPH" in raw)


def load(raw: bytes, background: tuple[int, int, int], budget: int) -> Image.Image:
    from cifar_core.decoding import ImageError
    command = [sys.executable, "-c", _CHILD, *map(str, background), str(budget + MARGIN), str(CPU_SECONDS)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                   "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        child = subprocess.run(command, input=raw, capture_output=True, timeout=WAIT_S, env=environment)
    except (subprocess.TimeoutExpired, OSError):
        raise ImageError("The picture took too long to decode here; please save it as a JPEG or a PNG.") from None
    out = child.stdout
    if child.returncode == 0 and out[:1] == b"E":
        raise ImageError(out[1:].decode(errors="replace"))
    if child.returncode == 0 and out[:1] == b"P" and len(out) >= 9:
        width, height = struct.unpack_from("<II", out, 1)
        if len(out) == 9 + 3 * width * height:
            return Image.frombytes("RGB", (width, height), out[9:])
    # Killed past its CPU limit, or its memory cap hit somewhere Python could not say so.
    raise ImageError("The picture would take too much memory or time to decode here; please save it as a "
                     "JPEG or a PNG.")
