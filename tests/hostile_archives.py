"""Hostile CIFAR-10 archives, built in memory: each one a way a data source has cost gigabytes, crashed
the reader, or passed for CIFAR-10 when it was not.

    BUILDERS              name -> function returning the bytes of a `.tar.gz` (deterministic, a second at most)
    FOLDER_BUILDERS       name -> function(folder) writing a hostile `cifar-10-batches-py` folder there
    build(name)           the bytes of one archive
    python tests/hostile_archives.py DIR    writes them all to DIR, for a benchmark to replay

The big ones are small files that unpack to gigabytes. Their gzip streams are written here rather
than by gzip: a run of identical bytes is compressed once and the compressed block repeated, and the
stream is split into gzip members of at most 64 MB (a gzip file may hold several, read one after the
other) so that each member's checksum is quick to compute. Every one is a valid archive.
"""
from __future__ import annotations

import _codecs
import pickle
import struct
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np

BATCH_DIR = "cifar-10-batches-py"
BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
BOMB_BYTES = 2_100_000_000          # what the gzip bombs unpack to: 2.1 GB of zeros from about 2 MB


# --- gzip and tar, written piece by piece ------------------------------------------------------------

def _gzip_member(unit: bytes, times: int) -> bytes:
    """One gzip member holding unit * times: unit compressed once, its block repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)   # the same for every later copy
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(unit, crc)
    body = first + again * (times - 1) + b"\x03\x00"     # an empty final block closes the stream
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, mtime 0
    return header + body + struct.pack("<II", crc, len(unit) * times & 0xFFFFFFFF)


def _gzip(parts: list[tuple[bytes, int]]) -> bytes:
    """A gzip stream of the concatenation of unit * times for each (unit, times)."""
    out, pending = [], bytearray()
    for unit, times in parts:
        if times == 1:
            pending += unit
            continue
        if pending:
            out.append(_gzip_member(bytes(pending), 1))
            pending = bytearray()
        per_member = max(1, (64 << 20) // len(unit))
        whole, rest = divmod(times, per_member)
        if whole:
            out.append(_gzip_member(unit, per_member) * whole)
        if rest:
            out.append(_gzip_member(unit, rest))
    if pending:
        out.append(_gzip_member(bytes(pending), 1))
    return b"".join(out)


class _Tar:
    """A tar stream as (unit, times) parts, so a member of gigabytes costs nothing to describe."""

    def __init__(self):
        self.parts: list[tuple[bytes, int]] = []

    def header(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.type = size, kind
        self.parts.append((info.tobuf(format=tarfile.USTAR_FORMAT), 1))

    def member(self, name: str, *content: tuple[bytes, int], size: int | None = None,
               kind: bytes = tarfile.REGTYPE) -> None:
        """A member holding the content parts; `size` is what its header claims, if not their length."""
        length = sum(len(unit) * times for unit, times in content)
        self.header(name, length if size is None else size, kind)
        self.parts.extend(content)
        self.parts.append((bytes(-length % 512), 1))

    def gz(self, *, end: bool = True) -> bytes:
        return _gzip(self.parts + ([(bytes(1024), 1)] if end else []))


def _zeros(size: int) -> list[tuple[bytes, int]]:
    whole, rest = divmod(size, 1 << 20)
    return [(bytes(1 << 20), whole)] + ([(bytes(rest), 1)] if rest else [])


def _archive(batches: dict[str, bytes]) -> bytes:
    """A .tar.gz in the official layout holding the given batch files (missing ones: a small valid batch)."""
    tar = _Tar()
    for name in BATCHES:
        raw = batches.get(name) or _valid_batch(10)
        tar.member(f"{BATCH_DIR}/{name}", (raw, 1))
    return tar.gz()


def _same_everywhere(raw: bytes) -> bytes:
    return _archive({name: raw for name in BATCHES})


# --- pickles -----------------------------------------------------------------------------------------

class _Call:
    """Pickles as a call of func(*args) (with BUILD state), exactly as written: how a hostile pickle is made."""

    def __init__(self, func, *args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _valid_batch(n: int) -> bytes:
    """A small batch in the official layout (Python 3, protocol 2, as tests/conftest.py writes them)."""
    data = (np.arange(n * 3072) % 251).astype(np.uint8).reshape(n, 3072)
    return pickle.dumps({b"batch_label": b"valid", b"labels": [i % 10 for i in range(n)], b"data": data,
                         b"filenames": [b"x.png"] * n}, protocol=2)


def _dict_items(items: bytes) -> bytes:
    return b"\x80\x02}(" + items + b"u."


def pickle_codecs_hex_chain() -> bytes:
    """A 1 KB archive whose batch calls _codecs.encode(..., 'hex') 24 times on 64 bytes: 1.1 GB of bytes,
    1.6 GB at the peak. _codecs.encode is allowed because Python 3 writes bytes with it in protocol 2."""
    value = bytes(64)
    for _ in range(24):
        value = _Call(_codecs.encode, value, "hex")
    return _same_everywhere(pickle.dumps({b"data": value, b"labels": []}, protocol=2))


def pickle_codecs_latin1_repeated() -> bytes:
    """A 30 MB text encoded 50 times through the memo, each call legitimate on its own: 1.5 GB of bytes."""
    text = "\x00" * 30_000_000
    calls = [_Call(_codecs.encode, text, "latin1") for _ in range(50)]
    return _archive({"data_batch_1": pickle.dumps({b"data": calls, b"labels": []}, protocol=2)})


def pickle_codecs_budget_reset() -> bytes:
    """BUILD on _codecs.encode's stand-in sets its budget to 10**18 bytes; then one 1 MB text is encoded 400
    times through the memo: 400 MB from about 1 KB (50,000 times would be 50 GB)."""
    text = "\x00" * 1_000_000
    reset = (b"c_codecs\nencode\nq\x00" + b"}" + b"X\x06\x00\x00\x00budget"
             + b"\x8a\x08" + (10 ** 18).to_bytes(8, "little", signed=True) + b"sb0")
    kept = b"X" + struct.pack("<I", len(text)) + text.encode() + b"q\x010"
    call = b"h\x00h\x01X\x06\x00\x00\x00latin1\x86R"
    return _archive({"data_batch_1": b"\x80\x02" + reset + kept + b"](" + call * 400 + b"e."})


def pickle_global_state() -> bytes:
    """BUILD on numpy's dtype stand-in, a function: its attributes take a 60 MB text, kept for good by
    every process that read the archive, refused or not."""
    text = "\x00" * 60_000_000
    return _archive({"data_batch_1": b"\x80\x02cnumpy\ndtype\n}X\x04\x00\x00\x00kept"
                                      + b"X" + struct.pack("<I", len(text)) + text.encode() + b"sb."})


def pickle_colliding_keys() -> bytes:
    """A dict of 30,000 integer keys 2**61 - 1 apart, which Python hashes alike: each entry is compared with
    every one before it (20,000 took 4.7 s of a core), in every process that reads the archive."""
    key = 2 ** 61 - 1
    longs = (pickle.encode_long(i * key) for i in range(30_000))
    items = b"".join(b"\x8a" + bytes([len(long)]) + long + b"K\x00" for long in longs)
    return _archive({"data_batch_1": b"\x80\x02}(" + items + b"u."})


def pickle_reconstruct_huge_shape() -> bytes:
    """numpy's _reconstruct asked for 1.6 GB of int8 (numpy allocates whatever shape it is given),
    which the reader then converts to uint8."""
    rows = 520_834                          # 1.6 GB of int8, a whole number of 3,072-byte rows
    reconstruct = np.zeros(1).__reduce__()[0]      # numpy's _reconstruct, wherever this numpy keeps it
    array = _Call(reconstruct, np.ndarray, (rows * 3072,), b"b")
    return _same_everywhere(pickle.dumps({b"data": array, b"labels": []}, protocol=2))


def pickle_memo_index() -> bytes:
    """A 12-byte pickle that stores into memo slot 100,000,000: the unpickler grows its memo table to
    200 million entries, 1.6 GB."""
    return _same_everywhere(b"\x80\x02}r" + struct.pack("<I", 100_000_000) + b".")


def pickle_empty_dict_flood() -> bytes:
    """30 million one-byte EMPTY_DICT instructions in one tuple: 30 MB of pickle (under any size cap),
    2.4 GB of dicts and references."""
    tar = _Tar()
    flood = (b"}" * 65536, 458)                 # 30,015,488 dicts
    content = [(b"\x80\x02(", 1), flood, (b"t.", 1)]
    tar.member(f"{BATCH_DIR}/data_batch_1", *content)
    for name in BATCHES[1:]:
        tar.member(f"{BATCH_DIR}/{name}", (_valid_batch(10), 1))
    return tar.gz()


def pickle_memo_list() -> bytes:
    """A list of 30 million references to one memoised int (BINGET after BINGET, then APPENDS):
    60 MB of pickle, about 500 MB of list and unpickler stack."""
    tar = _Tar()
    content = [(b"\x80\x03}(C\x04dataq\x01]q\x02(K\x07q\x03", 1), (b"h\x03" * 32768, 916), (b"eu.", 1)]
    tar.member(f"{BATCH_DIR}/data_batch_1", *content)
    for name in BATCHES[1:]:
        tar.member(f"{BATCH_DIR}/{name}", (_valid_batch(10), 1))
    return tar.gz()


def pickle_deep_tuple() -> bytes:
    """A tuple nested a million deep, used as a dict key: hashing it overflows the C stack, and the
    process dies of a segmentation fault rather than raising anything."""
    raw = b"\x80\x02}" + b")" + b"\x85" * 1_000_000 + b"Ns."
    return _archive({"data_batch_1": raw})


def batch_of_20000() -> bytes:
    """An honest batch of 20,000 pictures (61 MB, under the file size cap): twice what a batch holds."""
    raw = pickle.dumps({b"data": np.zeros((20_000, 3072), np.uint8), b"labels": [0] * 20_000}, protocol=3)
    return _archive({"test_batch": raw})


def tiny_archive_300k_pictures() -> bytes:
    """About 1 KB that read as 300,000 pictures: every batch lists one memoised row 50,000 times, which
    numpy turns into a (50000, 3072) array, with 50,000 labels to match."""
    row = np.zeros(3072, np.uint8)
    raw = pickle.dumps({b"batch_label": b"x", b"data": [row] * 50_000, b"labels": [0] * 50_000}, protocol=2)
    return _same_everywhere(raw)


def gzip_bomb_member() -> bytes:
    """A 2 MB archive whose data_batch_1 is 2.1 GB of zeros, read whole by `extractfile(...).read()`."""
    tar = _Tar()
    tar.member(f"{BATCH_DIR}/data_batch_1", *_zeros(BOMB_BYTES))
    return tar.gz()


def tar_size_hidden_in_pax() -> bytes:
    """The same bomb behind a lying ustar header: its size field says 1 KB, a pax record says 2.1 GB
    (tarfile believes the pax record)."""
    tar = _Tar()
    tar.member("././@PaxHeader", (_pax_record(b"size", b"%d" % BOMB_BYTES), 1), kind=tarfile.XHDTYPE)
    tar.header(f"{BATCH_DIR}/data_batch_1", 1024)
    tar.parts.extend(_zeros(BOMB_BYTES + -BOMB_BYTES % 512))
    return tar.gz()


def _pax_record(key: bytes, value: bytes) -> bytes:
    """'<length> key=value\\n', where the length counts its own digits."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d%s" % (length, body)


def tar_pax_header_bomb() -> bytes:
    """A pax header of 2.1 GB: tarfile reads a pax header whole, at whatever size its header gives,
    before the reader sees a single member."""
    tar = _Tar()
    tar.member("././@PaxHeader", *_zeros(BOMB_BYTES), kind=tarfile.XHDTYPE)
    return tar.gz()


def tar_million_members() -> bytes:
    """One million empty files (512 MB of headers, 500 KB compressed): tarfile keeps a TarInfo for each."""
    info = tarfile.TarInfo("padding")
    tar = _Tar()
    tar.parts.append((info.tobuf(format=tarfile.USTAR_FORMAT) * 128, 7813))
    for name in BATCHES:
        tar.member(f"{BATCH_DIR}/{name}", (_valid_batch(10), 1))
    return tar.gz()


def tar_size_claims_more_than_data() -> bytes:
    """A header that claims 30 MB for a batch that stops after 1 KB, at the end of the archive."""
    tar = _Tar()
    tar.header(f"{BATCH_DIR}/data_batch_1", 30_000_000)
    tar.parts.append((_valid_batch(1)[:1024], 1))
    return tar.gz(end=False)


def truncated_archive() -> bytes:
    """A valid small archive cut off halfway."""
    raw = _archive({})
    return raw[: len(raw) // 2]


BUILDERS = {f.__name__: f for f in [
    pickle_codecs_hex_chain, pickle_codecs_latin1_repeated, pickle_codecs_budget_reset, pickle_global_state,
    pickle_colliding_keys, pickle_reconstruct_huge_shape, pickle_memo_index,
    pickle_empty_dict_flood, pickle_memo_list, pickle_deep_tuple, batch_of_20000, tiny_archive_300k_pictures,
    gzip_bomb_member, tar_size_hidden_in_pax, tar_pax_header_bomb, tar_million_members,
    tar_size_claims_more_than_data, truncated_archive,
]}


def build(name: str) -> bytes:
    return BUILDERS[name]()


# --- folders -----------------------------------------------------------------------------------------

def folder_sparse_batch(folder: Path) -> Path:
    """A folder whose data_batch_1 is a 3 GB sparse file: no disk space, but `read_bytes` takes 3 GB."""
    batches = Path(folder) / BATCH_DIR
    batches.mkdir(parents=True, exist_ok=True)
    for name in BATCHES:
        (batches / name).write_bytes(_valid_batch(10))
    with open(batches / "data_batch_1", "r+b") as file:
        file.truncate(3_000_000_000)
    return Path(folder)


FOLDER_BUILDERS = {f.__name__: f for f in [folder_sparse_batch]}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile_archives")
    out.mkdir(parents=True, exist_ok=True)
    for name, builder in BUILDERS.items():
        (out / f"{name}.tar.gz").write_bytes(builder())
        print(f"{name:<32} {(out / f'{name}.tar.gz').stat().st_size:>12,} bytes")
    for name, builder in FOLDER_BUILDERS.items():
        builder(out / name)
        print(f"{name:<32} {'(folder)':>12}")
