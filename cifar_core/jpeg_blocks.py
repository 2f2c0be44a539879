"""Where the blocks of a JPEG's coded data begin, found from the middle of the data.

    Scan.parse(segments)            -> the scan's Huffman tables and block layout, or None
    Scan.mcu_starts(data, bit, ...) -> bit positions where units of blocks (MCUs) begin, read from
                                       `bit` on, once decoders started at different bits agree

Huffman codes resynchronise: a decoder started at the wrong bit reads a few wrong codes and then
falls into step with the right ones (in JPEG's coded data, within a few hundred bits). Decoders
started at several bits and block positions that have all come to the same block boundaries have,
almost surely, come to the file's own. This reads a few hundred codes in Python, so a picture's
coded data can be cut in the middle without decoding the half before it; `jpeg_middle` then checks
the cut against libjpeg's own decode of what follows it.
"""
from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np

from cifar_core import jpeg_segments

MAX_CODE_BITS = 16
# (bit, block of an MCU) the decoders start at: blocks of every kind, bits across the first codes
STARTS = tuple(zip((0, 3, 7, 12, 18, 25, 33, 42, 52, 63, 75, 88), range(12)))
MAX_TABLES = 16            # Huffman tables a file may define (a real one: 4, or a few more)
MERGE_WITHIN = 3_000       # bits a decoder reads before it counts as out of step with the others
TAIL = 256                 # zero bytes past the data's end: a block begun before the end reads at most
                           # 64 codes of up to 31 bits past it


class _Table(NamedTuple):
    fast: list             # the next 8 bits -> (code length, symbol), or None for longer codes
    max_code: list         # per length: the largest code of that length, -1 if none
    first_index: list      # per length: index in `symbols` of its first code, less its first code
    symbols: bytes
    codes: dict            # symbol -> (code, length), for writing


def _table(counts: bytes, symbols: bytes) -> _Table | None:
    """The decoding tables of a DHT table; None if its code lengths do not make a prefix code."""
    fast, max_code, first_index, codes = [None] * 256, [-1] * (MAX_CODE_BITS + 1), [0] * (MAX_CODE_BITS + 1), {}
    code = index = 0
    for length in range(1, MAX_CODE_BITS + 1):
        first_index[length] = index - code
        if code + counts[length - 1] > 1 << length:     # more codes than bits of this length can hold
            return None
        for _ in range(counts[length - 1]):
            symbol = symbols[index]
            codes.setdefault(symbol, (code, length))
            if length <= 8:
                for low in range(1 << (8 - length)):
                    fast[(code << (8 - length)) | low] = (length, symbol)
            code += 1
            index += 1
        max_code[length] = code - 1 if counts[length - 1] else -1
        code <<= 1
    return _Table(fast, max_code, first_index, symbols, codes)


class Scan(NamedTuple):
    blocks: tuple          # per block of an MCU, in order: (DC table, AC table, component index)
    dc_tables: dict        # table id -> _Table
    ac_tables: dict

    @classmethod
    def parse(cls, segments: list[bytes], factors: list[tuple[int, int]], ids: list[int]) -> "Scan | None":
        """The scan of a one-scan baseline JPEG from its kept segments (DHT and SOS among them),
        its components' sampling `factors` and `ids` in frame order; None if a table is missing
        or malformed."""
        dc, ac, sos, tables = {}, {}, None, 0
        for segment in segments:
            if segment[1] == 0xC4:
                read = jpeg_segments.huffman_tables(segment)
                tables += len(read or ())
                if read is None or tables > MAX_TABLES:
                    return None
                for number, counts, symbols in read:
                    table = _table(counts, symbols) if number >> 4 <= 1 else None
                    if table is None:
                        return None
                    (ac if number >> 4 else dc)[number & 15] = table
            elif segment[1] == 0xDA:
                sos = segment
        if sos is None or len(sos) < 5 + 2 * sos[4]:
            return None
        blocks = []
        for n in range(sos[4]):
            selector, tables = sos[5 + 2 * n], sos[6 + 2 * n]
            if selector not in ids or (tables >> 4) not in dc or (tables & 15) not in ac:
                return None
            component = ids.index(selector)
            h, v = factors[component]
            blocks += [(dc[tables >> 4], ac[tables & 15], component)] * (h * v)
        return cls(tuple(blocks), dc, ac)

    def mcu_starts(self, data: bytes, after: int, units: int, bits: int) -> list[int] | None:
        """Bit positions in `data` (coded data with its 0xFF 0x00 stuffing removed, starting at an
        unknown bit of an unknown block) where MCUs begin: the first at least `after` bits past where
        the decoders started in its first bits fell into step (most of those an invalid code did not
        stop), then on to the first that is at least `units` MCUs and `bits` bits past it; None if they
        did not."""
        wide = _windows(data)
        walks = [self._walk(wide, bit, block % len(self.blocks)) for bit, block in STARTS]
        owner, joined, merged = {}, list(range(len(walks))), [0] * len(walks)
        waiting = [(0, n) for n in range(len(walks))]      # decoders in step with no other yet, by bit
        while len(waiting) > 1 and waiting[0][0] <= MERGE_WITHIN:
            _, n = heapq.heappop(waiting)
            state = next(walks[n], None)
            if state is None:                              # an invalid code: a decoder out of step
                continue
            if state in owner:                             # fallen into step with another decoder
                joined[n], merged[n] = owner[state], state[0]
                continue
            owner[state] = n
            heapq.heappush(waiting, (state[0], n))
        members = {n: [] for _, n in waiting}              # by each decoder still going, those in step with it
        for n in range(len(walks)):
            root = n
            while joined[root] != root:
                root = joined[root]
            if root in members:                            # (an invalid code stopped the others: out of step)
                members[root].append(n)
        root = max(members, key=lambda r: len(members[r]), default=None)
        if root is None or 2 * len(members[root]) <= sum(map(len, members.values())):
            return None
        since = max(merged[n] for n in members[root]) + after
        found = [bit for bit, block in sorted(s for s, n in owner.items() if n == root) if block == 0 and bit >= since]
        for bit, block in walks[root]:
            if found and found[-1] >= bit:
                continue
            if block == 0 and bit >= since:
                found.append(bit)
                if len(found) > units and bit - found[0] >= bits:
                    return found
        return None

    def _walk(self, wide: memoryview, bit: int, block: int):
        """(bit, block of the MCU) at each block start in the data `wide` holds (`_windows`), decoding
        from `bit` as if block `block` of an MCU began there; ends where a code is invalid or the data
        runs out."""
        blocks, end = self.blocks, (len(wide) - TAIL) * 8 - 64
        while bit < end:
            yield bit, block
            dc, ac, _ = blocks[block]
            bit = _skip_block(wide, bit, dc, ac)
            if bit < 0:
                return
            block = (block + 1) % len(blocks)


def _windows(data: bytes) -> memoryview:
    """Each byte of `data`, then TAIL zeros, with the two bytes after it as one number: the 16 bits
    from any bit on are then one shift away (a third faster than slicing the bytes for every code)."""
    byte = np.frombuffer(data + bytes(TAIL + 2), np.uint8).astype(np.uint32)
    return memoryview((byte[:-2] << 16) | (byte[1:-1] << 8) | byte[2:])


def _symbol(wide: memoryview, bit: int, table: _Table) -> tuple[int, int]:
    """(symbol, bits it took) at `bit` of the data `wide` holds, or (-1, 0) for no code."""
    window = wide[bit >> 3] >> (8 - (bit & 7)) & 0xFFFF
    entry = table.fast[window >> 8]
    if entry is not None:
        return entry[1], entry[0]
    for length in range(9, MAX_CODE_BITS + 1):
        code = window >> (MAX_CODE_BITS - length)
        if code <= table.max_code[length]:
            return table.symbols[table.first_index[length] + code], length
    return -1, 0


def _skip_block(wide: memoryview, bit: int, dc: _Table, ac: _Table) -> int:
    """The bit after the 8x8 block coded at `bit`, or -1 where the codes make no block."""
    size, length = _symbol(wide, bit, dc)
    if length == 0 or size > 11:
        return -1
    bit += length + size
    k = 1
    while k < 64:
        symbol, length = _symbol(wide, bit, ac)
        if length == 0:
            return -1
        bit += length + (symbol & 15)
        if symbol & 15:
            k += (symbol >> 4) + 1
        elif symbol == 0xF0:
            k += 16
        else:
            break          # end of block
    return bit if k <= 64 else -1
