"""CIFAR-10 loading: a local archive or folder, the Keras cache, or a download.

`load()` resolves the data in this order:
1. `source`, or the CIFAR10_DATA setting: a `cifar-10-python.tar.gz`, or a
   folder holding `cifar-10-batches-py/` (or that folder itself);
2. the Keras cache (`~/.keras/datasets`), where an earlier download left it;
3. a download of the official archive, checked against its sha256 and cached.

Images are uint8 arrays of shape (N, 32, 32, 3), RGB; labels int64 (N,).

An archive or folder is untrusted input: reading one never runs code, and a
malformed or hostile one costs at most a few hundred MB and a few seconds
before a DataError says, in one sentence, which file is wrong and why.
- Batch files are read in 1 MB chunks and refused past 64 MB, whatever a tar
  header or the file system says (a batch is 31 MB as the official archive
  writes it, at most 62 MB as Python 3 writes protocol 2). An archive may
  unpack to 448 MB in all, in at most 64 entries, and tarfile may not read a
  header of more than 1 MB at once.
- A batch is a pickle. Before it is unpickled, its instructions are walked
  without running them: at most 200,000 (a full batch uses 30,000-100,000),
  memo slots numbered below that, objects nested at most 64 deep. Then it is
  unpickled with only the globals a batch needs (numpy's `_reconstruct`,
  `ndarray`, `dtype`, `_frombuffer` for protocol 5, and `_codecs.encode` and
  `bytes`, with which Python 3 writes bytes in protocol 2), each replaced by a
  stand-in that checks its arguments before anything is allocated.
- What comes out must be the official layout: a dict whose b"data" is a
  uint8 array of 1 to 10,000 rows of 3,072 values (R, G, B planes of 32 x 32)
  and whose b"labels" is a list (or integer array) of as many classes 0-9.
  The official batches hold exactly 10,000; fewer is accepted for small
  copies made in the same layout, as the tests do. So a data set holds at most
  50,000 training and 10,000 test pictures.
"""
from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import http.client
import io
import lzma
import math
import os
import pickle
import pickletools
import struct
import tarfile
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cifar_core import process_memory, settings

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")



def with_article(name: str) -> str:
    """ "an airplane", "a cat": class names read as English in sentences."""
    return ("an " if name[:1] in "aeiou" else "a ") + name


URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SAMPLE_PATH = Path(__file__).parent / "assets" / "sample.npz"

Progress = Callable[[int, int], None]


class DataError(ValueError):
    """The data could not be read; the message says which file and why."""


@dataclass(frozen=True)
class Cifar10:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    origin: str          # where it came from, for people: a path, or "bundled sample"
    # Each test picture's number in CIFAR-10's test set, where it is a part of it (the bundled sample):
    # "test picture #900" must be the same picture before a download and after.
    test_numbers: np.ndarray | None = None

    @property
    def is_sample(self) -> bool:
        return len(self.x_train) == 0

    def test_number(self, i: int) -> int:
        """Test picture `i`'s number in CIFAR-10's test set, as pages name it."""
        return int(self.test_numbers[i]) if self.test_numbers is not None else int(i)


# --- Limits: what the official layout allows, checked before memory is taken ------------------------
# A batch holds 10,000 pictures: a (10000, 3072) uint8 array (30,720,000 bytes), a list of 10,000
# labels and 10,000 file names. Its pickle is about 31 MB as the official archive writes it
# (Python 2, protocol 2) and at most about 62 MB as Python 3 writes protocol 2 (raw bytes go through
# _codecs.encode as latin-1 text, two UTF-8 bytes for each value from 128 up).
BATCH_IMAGES = 10_000
_ROW_BYTES = 32 * 32 * 3
_MAX_ARRAY_BYTES = BATCH_IMAGES * _ROW_BYTES   # the largest array a batch holds
_MAX_ENCODED_BYTES = 32 << 20                  # bytes made through _codecs.encode, all calls together
_MAX_MEMBER_BYTES = 64 << 20                   # a batch file, refused past this whatever a header says
_MAX_ARCHIVE_BYTES = 7 * _MAX_MEMBER_BYTES     # all an archive may unpack to, headers and skipped members included
_MAX_MEMBERS = 64                              # tar entries read; the official archive has 9
_CHUNK = 1 << 20                               # the largest single read; tar headers are 512 bytes
_MAX_INSTRUCTIONS = 20 * BATCH_IMAGES          # pickle opcodes; a full batch uses 30,000 to 100,000
_MAX_NESTING = 64                              # how deep objects nest; a batch nests 6 deep
# Entries put in dicts: a batch's one dict has 4. Unbounded, keys that all hash alike (integers 2**61 - 1
# apart) made each entry a comparison with every one before it: 20,000 took 4.7 s of a core.
_MAX_DICT_ENTRIES = 64

_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"})
_BYTE_ORDERS = ("|", "<", ">", "=", b"|", b"<", b">", b"=")


class _Unsafe(Exception):
    """The pickle does something no CIFAR-10 batch does, in a way that costs memory or runs code."""


class _NotABatch(Exception):
    """The pickle is harmless but does not hold a CIFAR-10 batch."""


def _brief(value) -> str:
    """A short, safe description of a value from an untrusted pickle, for an error message."""
    if isinstance(value, (str, bytes)):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return type(value).__name__


# --- Step 1: walk the pickle's instructions without running them -----------------------------------

_OPCODES = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}
_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: struct.Struct("<B"),
                  pickletools.TAKEN_FROM_ARGUMENT4: struct.Struct("<i"),
                  pickletools.TAKEN_FROM_ARGUMENT4U: struct.Struct("<I"),
                  pickletools.TAKEN_FROM_ARGUMENT8U: struct.Struct("<Q")}
_NEVER_IN_A_BATCH = {"EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
                     "EMPTY_SET", "ADDITEMS", "FROZENSET", "NEXT_BUFFER", "READONLY_BUFFER"}
_FILLS_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "BUILD"}
_MEMO_INDEX = {"BINPUT": lambda a: a[0], "BINGET": lambda a: a[0],
               "LONG_BINPUT": lambda a: int.from_bytes(a, "little"),
               "LONG_BINGET": lambda a: int.from_bytes(a, "little"),
               "PUT": lambda a: int(a), "GET": lambda a: int(a)}


def _check_instructions(raw: bytes) -> None:
    """Refuse a pickle whose instructions would take memory out of proportion to a batch.

    Without calling anything, a pickle can still ask for gigabytes: millions of one-byte
    instructions that each make an object (EMPTY_DICT) or push one more reference (DUP, BINGET),
    a memo slot numbered in the billions (the unpickler sizes its memo table to match), or a tuple
    nested a million deep (hashing it as a dict key overflows the C stack). This follows the
    unpickler's stack and memo, keeping only how deep each object nests, and stops at the first
    instruction past a limit, so the walk itself is bounded too.
    """
    stack: list[int] = []    # for each object the unpickler would hold, how deep it nests
    marks: list[int] = []    # stack positions of MARKs, as the unpickler keeps them
    memo: dict[int, int] = {}
    entries = 0              # put in dicts so far
    pos, end = 0, len(raw)
    for count in range(1, _MAX_INSTRUCTIONS + 2):
        if pos >= end:
            raise _NotABatch("the pickle ends before its STOP instruction")
        op = _OPCODES.get(raw[pos])
        if op is None:
            raise _NotABatch(f"byte {pos:,} ({raw[pos]:#04x}) is not a pickle instruction")
        if count > _MAX_INSTRUCTIONS:
            raise _Unsafe(f"it has more than {_MAX_INSTRUCTIONS:,} pickle instructions; "
                          f"a batch of {BATCH_IMAGES:,} pictures needs at most about 100,000")
        if op.name in _NEVER_IN_A_BATCH:
            raise _Unsafe(f"it uses the pickle instruction {op.name}, which a CIFAR-10 batch never needs")
        pos += 1
        arg_start = pos
        if op.arg is not None:
            n = op.arg.n
            if n >= 0:
                pos += n
            elif n == pickletools.UP_TO_NEWLINE:
                for _ in range(2 if op.name == "GLOBAL" else 1):   # GLOBAL holds module and name, a line each
                    newline = raw.find(b"\n", pos)
                    if newline < 0:
                        raise _NotABatch("the pickle ends in the middle of an instruction")
                    pos = newline + 1
            else:
                prefix = _LENGTH_PREFIX[n]
                if pos + prefix.size > end:
                    raise _NotABatch("the pickle ends in the middle of an instruction")
                (length,) = prefix.unpack_from(raw, pos)
                if length < 0:
                    raise _NotABatch(f"its {op.name} instruction has a negative length")
                pos += prefix.size + length
            if pos > end:
                raise _NotABatch("the pickle ends in the middle of an instruction")
        fence = marks[-1] if marks else 0
        name = op.name
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET"):
            try:
                index = len(memo) if name == "MEMOIZE" else _MEMO_INDEX[name](raw[arg_start:pos])
            except ValueError:
                raise _NotABatch(f"its {name} instruction has no valid memo number") from None
            if "GET" in name:
                if index not in memo:
                    raise _NotABatch(f"it recalls memo slot {index:,}, which it never filled")
                stack.append(memo[index])
                continue
            if not 0 <= index < _MAX_INSTRUCTIONS:
                raise _Unsafe(f"it stores into memo slot {index:,}, and the unpickler would grow its memo table "
                              "to match (a CIFAR-10 batch uses fewer slots than it has instructions)")
            if len(stack) <= fence:
                raise _NotABatch(f"its {name} instruction has nothing to store")
            memo[index] = stack[-1]
        elif name == "MARK":
            marks.append(len(stack))
        elif name == "POP":
            if marks and marks[-1] == len(stack):
                marks.pop()
            elif len(stack) > fence:
                stack.pop()
            else:
                raise _NotABatch("its POP instruction finds nothing to remove")
        elif name == "DUP":
            if len(stack) <= fence:
                raise _NotABatch("its DUP instruction finds nothing to copy")
            stack.append(stack[-1])
        elif name == "STOP":
            if len(stack) != 1 or marks:
                raise _NotABatch("its STOP instruction does not find exactly one object")
            return
        elif name not in ("PROTO", "FRAME"):
            items: list[int] = []
            below = len(op.stack_before)
            if pickletools.markobject in op.stack_before:       # takes everything since the last MARK
                if not marks:
                    raise _NotABatch(f"its {name} instruction has no MARK to go back to")
                start = marks.pop()
                items, stack[start:] = stack[start:], []
                below = op.stack_before.index(pickletools.markobject)
                fence = marks[-1] if marks else 0
            if len(stack) - below < fence:
                raise _NotABatch(f"its {name} instruction finds too few objects")
            operands, stack[len(stack) - below:] = stack[len(stack) - below:], []
            entries += 1 if name == "SETITEM" else len(items) // 2 if name == "SETITEMS" else 0
            if entries > _MAX_DICT_ENTRIES:
                raise _Unsafe(f"it puts more than {_MAX_DICT_ENTRIES} entries in its dicts; a CIFAR-10 batch's "
                              "one dict has 4")
            if op.stack_after:
                if name in _FILLS_IN_PLACE:     # APPEND, SETITEM, BUILD...: the first operand takes the rest in
                    depth = max(operands[0], 1 + max(operands[1:] + items, default=0))
                else:
                    depth = 1 + max(operands + items, default=0)
                if depth > _MAX_NESTING:
                    raise _Unsafe(f"it nests objects more than {_MAX_NESTING} deep; a CIFAR-10 batch nests 6 deep")
                stack.append(depth)
    raise AssertionError("unreachable")


# --- Step 2: unpickle, with only what a batch needs, each checked before it allocates -------------

class _DtypeSpec:
    """What the pickle gets for numpy.dtype(...): a plain integer type, its byte order set by BUILD."""
    __slots__ = ("dtype",)

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype

    def __setstate__(self, state):
        if not (type(state) is tuple and len(state) >= 2 and state[1] in _BYTE_ORDERS
                and all(part is None for part in state[2:5])):
            raise _Unsafe("it gives a numpy dtype fields or sub-arrays, which a CIFAR-10 batch never has")
        order = state[1].decode() if isinstance(state[1], bytes) else state[1]
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _array(shape, dtype, fortran, raw) -> np.ndarray:
    """An array over the pickle's own bytes, once its shape, type and size are checked against them."""
    if not (type(shape) is tuple and len(shape) <= 4
            and all(type(d) is int and 0 <= d <= _MAX_ARRAY_BYTES for d in shape)):
        raise _Unsafe(f"it gives a numpy array the shape {_brief(shape)}, which no CIFAR-10 batch has")
    if not isinstance(dtype, _DtypeSpec) or type(raw) not in (bytes, bytearray):
        raise _Unsafe("it gives a numpy array contents other than plain bytes")
    size = math.prod(shape) * dtype.dtype.itemsize
    if size > _MAX_ARRAY_BYTES:
        raise _NotABatch(f"it holds an array of shape {shape}, {size:,} bytes; "
                         f"the largest in a batch is {_MAX_ARRAY_BYTES:,} ({BATCH_IMAGES:,} pictures)")
    if size != len(raw):
        raise _NotABatch(f"its array of shape {shape} needs {size:,} bytes but holds {len(raw):,}")
    return np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C")


class _ArraySpec:
    """What the pickle gets for an ndarray: filled by BUILD (protocols 0-4) or at once (protocol 5)."""
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None):
        self.array = array

    def __setstate__(self, state):
        if type(state) is not tuple or len(state) not in (4, 5):
            raise _Unsafe("it gives a numpy array a state numpy never writes")
        self.array = _array(*state[-4:])     # (version,) shape, dtype, is_fortran, raw bytes


def _reconstruct(cls, shape, typecode):
    """numpy.core.multiarray._reconstruct as numpy's own pickles call it: an empty array, filled by BUILD."""
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Unsafe("it calls numpy's _reconstruct other than the way numpy pickles an array "
                      "(which allocates whatever shape it is given)")
    return _ArraySpec()


def _frombuffer(buffer, dtype, shape, order):
    """numpy._core.numeric._frombuffer, how protocol 5 pickles an array: its bytes, dtype, shape, order."""
    if order not in ("C", "F"):
        raise _Unsafe(f"it asks numpy for an array in the order {_brief(order)}")
    return _ArraySpec(_array(shape, dtype, order == "F", buffer))


def _empty_bytes(*args):
    """bytes(), how Python 3 writes b"" in protocol 2; with arguments bytes() could allocate any size."""
    if args:
        raise _Unsafe("it calls bytes() with arguments; a CIFAR-10 batch only uses it for empty bytes")
    return b""


def _dtype(name, align=False, copy=True):
    key = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    if not (isinstance(key, str) and key in _DTYPES and align == 0 and copy == 1):
        raise _NotABatch(f"it holds a numpy array of type {_brief(name)}; a CIFAR-10 batch holds integers only")
    return _DtypeSpec(np.dtype(key))


class _BatchUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, ints, bytes and plain integer numpy arrays; refuses every other global.

    The globals a batch needs are replaced by stand-ins that check their arguments before anything
    is allocated: numpy's `_reconstruct` only makes the empty array numpy's pickles start from,
    `dtype` only plain integer types, an array's contents must be bytes of exactly its size, and
    `_codecs.encode` (how Python 3 writes bytes in protocol 2) only turns text into latin-1 bytes,
    at most _MAX_ENCODED_BYTES in all: chained through other codecs ('hex' doubles each time), a
    pickle of a few hundred bytes made gigabytes.
    """

    def __init__(self, raw: bytes):
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self._encode = _LatinEncoder()    # not a method: the unpickler would hold itself in its memo

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return self._encode
        try:
            return _BATCH_GLOBALS[module, name]
        except (KeyError, TypeError):
            raise _Unsafe(f"it tries to load {_brief(module)[1:-1]}.{_brief(name)[1:-1]}, "
                          "which a CIFAR-10 batch never needs") from None


class _Unbuildable:
    """A stand-in the pickle may call but never give a state (BUILD): a function's or a plain object's
    state is its attributes, and BUILD would rewrite them (a budget reset) or keep anything in them."""
    __slots__ = ()

    def __setstate__(self, state):
        raise _Unsafe("it gives one of numpy's or Python's functions a state, which a CIFAR-10 batch never does")


_NDARRAY = _Unbuildable()    # what the pickle gets for numpy.ndarray: only _reconstruct accepts it


class _Calls(_Unbuildable):
    """A global the pickle may call: `call`, nothing else."""
    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def __call__(self, *args):
        return self.call(*args)


class _LatinEncoder(_Unbuildable):
    """_codecs.encode as Python 3 protocol-2 pickles call it for bytes: text to latin-1, within a budget."""
    __slots__ = ("budget",)

    def __init__(self):
        self.budget = _MAX_ENCODED_BYTES

    def __call__(self, text, encoding="utf-8", errors="strict"):
        if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _Unsafe(f"it calls _codecs.encode({type(text).__name__}, {_brief(encoding)}); "
                          "a CIFAR-10 batch only uses it to turn text into latin-1 bytes")
        if len(text) > self.budget:
            raise _Unsafe(f"it makes more than {_MAX_ENCODED_BYTES >> 20} MB of bytes through _codecs.encode, "
                          "more than a CIFAR-10 batch holds")
        self.budget -= len(text)
        return text.encode("latin-1")


_BATCH_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _Calls(_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _Calls(_reconstruct),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Calls(_dtype),
    ("numpy.core.numeric", "_frombuffer"): _Calls(_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Calls(_frombuffer),
    ("__builtin__", "bytes"): _Calls(_empty_bytes),
    ("builtins", "bytes"): _Calls(_empty_bytes),
}


# --- Step 3: check what came out against the layout ------------------------------------------------

def _batch_arrays(batch) -> tuple[np.ndarray, np.ndarray]:
    """The batch's (n, 3072) uint8 rows and (n,) int64 labels, or _NotABatch saying what is wrong."""
    if type(batch) is not dict:
        raise _NotABatch(f"it holds a {type(batch).__name__}, not a dict with 'data' and 'labels'")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if data is None or labels is None:
        raise _NotABatch("it has no b'data' or no b'labels' entry, the keys of a batch's dict")
    if not isinstance(data, _ArraySpec) or data.array is None:
        raise _NotABatch(f"its 'data' is a {type(data).__name__}, not a numpy array")
    rows = data.array
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != _ROW_BYTES or not rows.shape[0]:
        raise _NotABatch(f"its 'data' is a {rows.dtype} array of shape {rows.shape}; a batch holds uint8 rows of "
                         f"{_ROW_BYTES:,} values (32 x 32 pixels x 3 colours), 1 to {BATCH_IMAGES:,} of them")
    n = len(rows)
    if isinstance(labels, _ArraySpec) and labels.array is not None:
        if labels.array.ndim != 1 or labels.array.dtype.kind not in "iu":
            raise _NotABatch(f"its 'labels' is a {labels.array.dtype} array of shape {labels.array.shape}")
        values = labels.array
    elif type(labels) is list:
        values = labels
    else:
        raise _NotABatch(f"its 'labels' is a {type(labels).__name__}, not a list of classes")
    if len(values) != n:
        raise _NotABatch(f"it has {n:,} pictures but {len(values):,} labels")
    if type(values) is list:
        if not all(type(v) is int and 0 <= v < len(CLASS_NAMES) for v in values):
            raise _NotABatch(f"its labels are not all classes 0 to {len(CLASS_NAMES) - 1}")
        return rows, np.array(values, dtype=np.int64)
    y = values.astype(np.int64)
    if y.min() < 0 or y.max() >= len(CLASS_NAMES):
        raise _NotABatch(f"its labels are not all classes 0 to {len(CLASS_NAMES) - 1}")
    return rows, y


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's (n, 3072) uint8 rows (R, G, B planes) and int64 labels, or DataError."""
    try:
        _check_instructions(raw)
        return _batch_arrays(_BatchUnpickler(raw).load())
    except _Unsafe as e:
        raise DataError(f"{where} is not a safe CIFAR-10 batch: {e}.") from None
    except _NotABatch as e:
        raise DataError(f"{where} is not a CIFAR-10 batch: {e}.") from None
    except Exception as e:     # anything else the unpickler raises on a damaged file, MemoryError included
        raise DataError(f"{where} is not a CIFAR-10 batch: its pickle is damaged ({_error(e)}).") from None


def cannot_open(path: Path, e: OSError) -> str:
    """Why `path` could not be opened, for a person: a permission is the server's user's, not the file's."""
    if isinstance(e, PermissionError):
        return f"{path} cannot be read by the user this program runs as (permission denied)."
    return f"{path} could not be read ({_error(e)})."


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --- Reading batch files from a folder or an archive, each with a size cap ------------------------

def _read_capped(file, where: str) -> bytes:
    """A batch file's bytes, read in chunks and refused past _MAX_MEMBER_BYTES whatever its header said."""
    chunks, size = [], 0
    while chunk := file.read(_CHUNK):
        size += len(chunk)
        if size > _MAX_MEMBER_BYTES:
            raise DataError(f"{where} is larger than {_MAX_MEMBER_BYTES >> 20} MB, "
                            "more than any CIFAR-10 batch; it was not read.")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(where: str, size: int) -> DataError:
    return DataError(f"{where} is {size:,} bytes, more than any CIFAR-10 batch "
                     f"(at most {_MAX_MEMBER_BYTES >> 20} MB); it was not read.")


_Batches = dict[str, tuple[np.ndarray, np.ndarray]]


def _batches_from_folder(folder: Path) -> _Batches:
    if (folder / BATCH_DIR).is_dir():
        folder = folder / BATCH_DIR
    out = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder} does not hold the CIFAR-10 python batches: {name} is missing.")
        try:
            if path.stat().st_size > _MAX_MEMBER_BYTES:
                raise _too_big(str(path), path.stat().st_size)
            with open(path, "rb") as file:
                raw = _read_capped(file, str(path))
        except OSError as e:
            raise DataError(cannot_open(path, e)) from None
        out[name] = _read_batch(raw, f"{folder}: {name}")
    return out


class _BoundedStream:
    """An archive's decompressed bytes as tarfile reads them, refusing to run past _MAX_ARCHIVE_BYTES.

    tarfile reads a pax or GNU long-name header whole at the size its own header gives, and skips
    a member by decompressing it: a small archive could take gigabytes of memory or minutes that
    way. Here every read asks for at most _CHUNK bytes and no position lies past the limit.
    """

    def __init__(self, raw, where: str):
        self._raw, self._where, self._pos, self._rewound = raw, where, 0, 0

    def _reach(self, end: int) -> None:
        if end > _MAX_ARCHIVE_BYTES or self._rewound > _MAX_ARCHIVE_BYTES:
            raise DataError(f"{self._where} unpacks to more than {_MAX_ARCHIVE_BYTES >> 20} MB, more than a "
                            "CIFAR-10 archive does; reading stopped there.")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise io.UnsupportedOperation("only absolute seeks")
        if offset < self._pos:
            self._rewound += offset       # a compressed stream goes back by decompressing again from the start
        self._reach(offset)
        self._pos = self._raw.seek(offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size is None or not 0 <= size <= _CHUNK:
            raise DataError(f"{self._where} is not a CIFAR-10 archive: a tar header in it asks to read "
                            f"{size:,} bytes at once (the official archive's headers are 512 bytes).")
        self._reach(self._pos + size)
        data = self._raw.read(size)
        self._pos += len(data)
        return data


_COMPRESSED = ((b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
               (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile))


def _batches_from_archive(path: Path) -> _Batches:
    wanted = {f"{BATCH_DIR}/{name}": name for name in (*TRAIN_BATCHES, TEST_BATCH)}
    out = {}
    try:
        with contextlib.ExitStack() as stack:
            try:
                stream = stack.enter_context(open(path, "rb"))
            except OSError as e:    # not the archive's fault: no "corrupt or truncated" for a permission
                raise DataError(cannot_open(path, e)) from None
            magic = stream.read(6)
            stream.seek(0)
            for prefix, opener in _COMPRESSED:
                if magic.startswith(prefix):
                    stream = stack.enter_context(opener(stream))
                    break
            tar = stack.enter_context(tarfile.open(fileobj=_BoundedStream(stream, str(path)), mode="r:"))
            for count, member in enumerate(tar, start=1):
                if count > _MAX_MEMBERS:
                    raise DataError(f"{path} holds more than {_MAX_MEMBERS} files; "
                                    "the official CIFAR-10 archive holds 9.")
                name = wanted.get(member.name.lstrip("./"))
                if not name or not member.isfile():
                    continue
                where = f"{path}: {name}"
                if name in out:
                    raise DataError(f"{path} holds {BATCH_DIR}/{name} twice; the official archive holds it once.")
                if member.size > _MAX_MEMBER_BYTES:
                    raise _too_big(where, member.size)
                out[name] = _read_batch(_read_capped(tar.extractfile(member), where), where)
    except DataError:
        raise
    except Exception as e:     # tarfile, gzip, bz2, lzma and zlib errors, EOFError, OSError, ...
        raise DataError(f"{path} is not a readable CIFAR-10 archive (corrupt or truncated: {_error(e)}).") from None
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in out]
    if missing:
        raise DataError(f"{path} does not have the official layout: {BATCH_DIR}/{missing[0]} is missing.")
    return out


def _images(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) images and (N,) labels from batches of rows, letting go of each batch once copied."""
    labels = np.concatenate([y for _, y in batches])
    images = np.empty((len(labels), 32, 32, 3), np.uint8)
    start = 0
    while batches:
        rows, _ = batches.pop(0)
        images[start:start + len(rows)] = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        start += len(rows)
    return images, labels


def read(path: str | os.PathLike) -> Cifar10:
    """Read CIFAR-10 from a `.tar.gz` archive or a folder, or raise DataError."""
    path = Path(path).expanduser()
    try:
        there, folder, file = path.exists(), path.is_dir(), path.is_file()
    except OSError as e:        # a folder on the way this user may not enter (a teacher's 0750 home)
        raise DataError(cannot_open(path, e)) from None
    if not there:
        raise DataError(f"{path} does not exist.")
    if not (folder or file):
        raise DataError(f"{path} is neither a CIFAR-10 archive nor a folder.")
    with process_memory.large_blocks_returned():   # each batch's memory back once copied (process_memory)
        try:
            batches = _batches_from_folder(path) if folder else _batches_from_archive(path)
        except OSError as e:    # a folder of it this user may not look into
            raise DataError(cannot_open(path, e)) from None
        x_train, y_train = _images([batches.pop(name) for name in TRAIN_BATCHES])
        x_test, y_test = _images([batches.pop(TEST_BATCH)])
    return Cifar10(x_train, y_train, x_test, y_test, origin=str(path))


def keras_cache_dir() -> Path:
    """Where Keras keeps downloads, as an absolute path: trainers run from the package's folder, not the
    server's (`settings.keras_home`)."""
    return settings.keras_home() / "datasets"


def cached() -> Path | None:
    """A copy left in the Keras cache by an earlier download (ours or Keras's own), if any."""
    cache = keras_cache_dir()
    for candidate in (cache / ARCHIVE_NAME, cache / BATCH_DIR,
                      cache / f"{BATCH_DIR}_extracted" / BATCH_DIR,
                      cache / f"{BATCH_DIR}-target" / BATCH_DIR):    # where Keras 3.15's load_data unpacks it
        try:
            if candidate.exists():
                return candidate
        except OSError:     # a home folder this user may not look into: no copy there for it
            continue
    return None


def download(dest_dir: str | os.PathLike | None = None, *, progress: Progress | None = None,
             url: str | None = None, sha256: str = SHA256) -> Path:
    """Download the official archive into `dest_dir` (the Keras cache by default), check it, return its path.

    One download at a time in a process: on a shared server every visitor sees the button, and thirty
    presses would be thirty downloads of 170 MB. Whatever ends a download early (an error, or its
    progress callback raising) leaves no partial file behind."""
    if not _downloading.acquire(blocking=False):
        raise DataError("The data set is already being downloaded on this server; it is used here as soon as "
                        "that download is done.")
    try:
        return _download(dest_dir, progress, url or URL, sha256)
    finally:
        _downloading.release()


_downloading = threading.Lock()


@dataclass(frozen=True)
class Downloading:
    """Where this server's download in the background stands (`download_in_background`)."""
    running: bool = False
    done: int = 0                 # bytes so far
    total: int = 0                # bytes in all; 0 until the server has said
    error: str | None = None      # why the last one failed, until another starts


_background = Downloading()
_background_lock = threading.Lock()


def download_in_background() -> bool:
    """Start downloading the official archive into the Keras cache in a thread of the server's own;
    False when one is under way already. Run in a page's script, a download stopped with that script:
    a click, another page or a closed tab ended it, though everyone else had been told to wait for it."""
    global _background
    with _background_lock:
        if _background.running:
            return False
        _background = Downloading(running=True)

    def progress(done: int, total: int) -> None:
        global _background
        _background = Downloading(True, done, total)

    def fetch() -> None:
        global _background
        try:
            download(progress=progress, url=URL, sha256=SHA256)
            _background = Downloading()
        except DataError as e:
            _background = Downloading(error=str(e))
        except Exception:       # a bug: still a sentence on the page, and the button again
            _background = Downloading(error="The download stopped unexpectedly; nothing was kept. Please try again.")
    threading.Thread(target=fetch, name="cifar10-download", daemon=True).start()
    return True


def downloading() -> Downloading:
    return _background


def _download(dest_dir: str | os.PathLike | None, progress: Progress | None, url: str, sha256: str) -> Path:
    given_dir = bool(dest_dir)
    dest_dir = Path(dest_dir) if dest_dir else keras_cache_dir()
    dest = dest_dir / ARCHIVE_NAME
    digest = hashlib.sha256()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        sweep_parts(dest_dir)
        tmp = tempfile.NamedTemporaryFile(dir=dest_dir, prefix=PART_PREFIX, suffix=".part", delete=False)
    except OSError as e:    # a service account whose home may not be written, say
        if dest_dir.exists() and not dest_dir.is_dir():
            raise DataError(f"The data set cannot be saved in {dest_dir}: it is a file, not a folder.") from None
        if given_dir:       # the person chose the folder: KERAS_HOME has nothing to do with it
            raise DataError(f"The data set cannot be saved in {dest_dir} ({e.strerror or e}): choose a folder "
                            "this user may write in.") from None
        raise DataError(f"The data set cannot be saved in {dest_dir} ({e.strerror or e}): set KERAS_HOME to a "
                        "folder this server may write, or CIFAR10_DATA to a copy of the data set.") from None
    with tmp:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                length = response.headers.get("Content-Length") or "0"
                total = int(length) if length.isdigit() else 0      # a size it cannot say is no size
                done = 0
                if progress:        # connected: its size is known before the first megabyte arrives
                    progress(0, total)
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if done > MAX_DOWNLOAD_BYTES:
                        raise DataError(f"The download from {url} went on past {MAX_DOWNLOAD_BYTES >> 20} MB, "
                                        "more than the data set is; nothing was kept.")
                    if progress:
                        progress(done, total)
            tmp.flush()
            os.fsync(tmp.fileno())      # on the disk before it takes the archive's name: a power cut then
                                        # left a cut-short archive there, which every page fell back from
            if total and done < total:
                raise DataError(f"The connection to {url} ended after {done / 1e6:.0f} of {total / 1e6:.0f} MB; "
                                "nothing was kept. Please try again.")
            if digest.hexdigest() != sha256:
                raise DataError(f"The download from {url} is damaged (its sha256 does not match); nothing was "
                                "kept.")
            # Readable by every user, as a download by hand would be: the server's trainers, or another
            # user's server, read it (a temporary file is its owner's alone).
            os.chmod(tmp.fileno(), 0o644)
            os.replace(tmp.name, dest)
        except (OSError, http.client.HTTPException) as e:     # HTTPException: a reply cut short mid-chunk
            os.unlink(tmp.name)
            if getattr(e, "errno", None) == errno.ENOSPC:
                raise DataError(f"The disk holding {dest_dir} is full, so the data set (170 MB) could not be "
                                "saved; nothing was kept.") from None
            raise DataError(f"Could not download CIFAR-10 from {url} ({getattr(e, 'reason', None) or _error(e)}). "
                            "Are you offline? Set CIFAR10_DATA to a local copy instead.") from None
        except BaseException:
            os.unlink(tmp.name)
            raise
    return dest


MAX_DOWNLOAD_BYTES = 200 << 20      # the official archive is 163 MB
PART_PREFIX = "cifar-10-download-"
LEFT_BEHIND_S = 3600.0      # a download's file this old was left by a server stopped mid-download


def sweep_parts(folder: Path) -> None:
    """Downloads left behind in `folder` by a server stopped while it downloaded (up to 170 MB each):
    removed once old enough that no download still running could own them."""
    for part in folder.glob(f"{PART_PREFIX}*.part"):
        with contextlib.suppress(OSError):
            if time.time() - part.stat().st_mtime > LEFT_BEHIND_S:
                part.unlink()


def locate(source: str | os.PathLike | None = None) -> Path | None:
    """The path `load` would read without downloading, or None."""
    if source is not None:
        return Path(source).expanduser()
    return settings.get().data or cached()


def load(source: str | os.PathLike | None = None, *, progress: Progress | None = None) -> Cifar10:
    """The whole data set, from `source`, CIFAR10_DATA, the Keras cache, or a download; mapped from its
    decoded copy, so that every process on the machine shares one (cifar_core/decoded.py)."""
    from cifar_core import decoded     # it builds on this module
    named = settings.get().data if source is None else None
    if named is not None and not named.exists():      # "/x does not exist." did not say where /x came from
        raise DataError(f"CIFAR10_DATA names {named}, which does not exist: set it to a cifar-10-python.tar.gz "
                        "or a folder holding cifar-10-batches-py/.")
    return decoded.read(locate(source) or download(progress=progress))


def load_sample() -> Cifar10:
    """The bundled offline sample: 1,000 test images, 100 per class, no training images."""
    with np.load(SAMPLE_PATH) as sample:
        x, y, numbers = sample["x"], sample["y"].astype(np.int64), sample["index"].astype(np.int64)
    return Cifar10(x[:0], y[:0], x, y, origin="bundled sample", test_numbers=numbers)

