"""A picture decoded in a process of its own, under a memory cap: for files whose decoding cost cannot be
told from their header.

    needed(raw, size)              -> whether this file is decoded apart
    load(raw, background, budget)  -> the upright RGB picture `decoding.load_image` makes, or ImageError

A lossless WebP (or a lossy one with a lossless alpha channel) names, deep in its coded data, how many
groups of prefix codes it uses, up to one for every 4 x 4 pixels and at most 65,536, and libwebp builds
tables for every one of them before the first pixel: a 295 KB file of 1024 x 1024 took 385 MB, where its
pixels need 13. Finding the number means decoding the stream, so a file big enough to name more than
GROUPS_HERE groups is decoded in a fresh Python (isolated from the environment's paths and the server's
secrets, not a fork of a server holding TensorFlow's threads) that caps its own address space at what it
holds after reading the file, plus `budget` bytes (the decoding places' budget the picture was let in
under) and MARGIN, before it touches a byte of it: past the cap libwebp's allocations fail, and the child
says so in a sentence. About 0.2 s of a core to start the child, spent only on these files; smaller ones
(icons, at most GROUPS_HERE groups of at most 20 KB of tables each) are decoded in the server's process.
"""
from __future__ import annotations

import logging
import struct
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 64 * 2**20       # address space for a decoder's threads' stacks and the allocator's own, past the budget
CPU_SECONDS = 10          # a child's CPU limit; a real lossless WebP of the largest size allowed takes under 1 s
WAIT_S = 30               # the wall-clock wait for a child on a busy server
GROUPS_HERE = 1_024       # groups a file decoded in the server's process may name: tables of at most 20 MB
# The cap is the child's address space over what Linux says it holds (/proc); elsewhere (a laptop on macOS
# or Windows, one visitor) the picture is decoded in the server's process, as everything else is.
CAPPED_HERE = sys.platform.startswith("linux") and Path("/proc/self/status").exists()
# What a child says when its decoder failed after the file opened: damage, or the cap reached.
FAILED = ("The picture is damaged, or would take more memory to decode than is allowed here; please save it "
          "as a JPEG or a PNG.")

_CHILD = """
import resource, struct, sys
sys.path.insert(0, sys.argv[1])
from cifar_core import decoding
if decoding.HEIC:   # a HEIC is read from its preview here, under the cap, where it has one (decoding._preview)
    decoding.pillow_heif.options.THUMBNAILS = True
raw = sys.stdin.buffer.read()
background, budget, cpu = tuple(map(int, sys.argv[2:5])), int(sys.argv[5]), int(sys.argv[6])
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
for limit, wanted in ((resource.RLIMIT_AS, size + budget), (resource.RLIMIT_CPU, cpu), (resource.RLIMIT_CORE, 0)):
    hard = resource.getrlimit(limit)[1]
    resource.setrlimit(limit, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
try:
    image = decoding.load_image(raw, background, apart=False)
except decoding.ImageError as e:
    sys.stdout.buffer.write(b"E" + str(e).encode())
else:
    sys.stdout.buffer.write(b"P" + struct.pack("<II", *image.size) + image.tobytes())
"""


def needed(raw: bytes, size: tuple[int, int]) -> bool:
    """Whether a file of `size` (its canvas) is decoded apart, where a child can be capped here: an AVIF
    or a HEIC (its frame may be larger than its size box, below), or one that may hold a lossless WebP
    stream (a VP8L chunk, or an ALPH one, which is mostly VP8L; looked for anywhere in the file, so a lossy
    one whose bytes happen to spell either name is decoded apart too, at no cost but the child's start),
    large enough to name more than GROUPS_HERE groups of codes."""
    # An AVIF's size is its size box's (`ispe`), which the budgets count; the AV1 decoder allocates the frame
    # its own coded data names, up to 16384 x 16384 (libavif's limit), before libavif compares the two: a 1 KB
    # file whose box said 40 x 30 had a 6000 x 6000 frame decoded, 73 MB. Where the two agree, the child only
    # costs its start (about 0.2 s), beside the 0.35-0.5 s an AVIF photo takes to decode at all (a HEIC's
    # HEVC frames the same, through libheif, 0.5-1.2 s).
    if CAPPED_HERE and raw[4:8] == b"ftyp":     # of such files only AVIF and HEIC are opened (decoding.FORMATS)
        return True
    groups = -(-size[0] // 4) * -(-size[1] // 4)
    return (CAPPED_HERE and groups > GROUPS_HERE and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
            and (b"VP8L" in raw or b"ALPH" in raw))


def _environment() -> dict:
    from cifar_core import settings
    return settings.without_secrets() | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def load(raw: bytes, background: tuple[int, int, int], budget: int) -> Image.Image:
    from cifar_core.decoding import ImageError
    # -I: the child reads neither PYTHONPATH nor the working folder: the project's own code, from ROOT.
    command = [sys.executable, "-I", "-c", _CHILD, str(ROOT), *map(str, background), str(budget + MARGIN),
               str(CPU_SECONDS)]
    try:
        child = subprocess.run(command, input=raw, capture_output=True, timeout=WAIT_S, env=_environment())
    except subprocess.TimeoutExpired:
        raise ImageError("The picture took too long to decode here; please save it as a JPEG or a PNG.") from None
    except OSError as e:
        logging.getLogger(__name__).warning("A picture's decoding process could not start: %s", e)
        raise ImageError("The server could not decode this picture just now; please try again, or save it as "
                         "a JPEG or a PNG.") from None
    out = child.stdout
    if child.returncode == 0 and out[:1] == b"E":
        said = out[1:].decode(errors="replace")
        raise ImageError(FAILED if said.startswith("The picture is damaged or cut short") else said)
    if child.returncode == 0 and out[:1] == b"P" and len(out) >= 9:
        width, height = struct.unpack_from("<II", out, 1)
        if len(out) == 9 + 3 * width * height:
            return Image.frombytes("RGB", (width, height), out[9:])
    if child.returncode > 0:      # not killed for its CPU limit: the child itself failed, which the log keeps
        logging.getLogger(__name__).warning("A picture's decoding process failed: %s",
                                            child.stderr.decode(errors="replace")[-2000:])
    raise ImageError("The picture would take too much memory or time to decode here; please save it as a "
                     "JPEG or a PNG.")
