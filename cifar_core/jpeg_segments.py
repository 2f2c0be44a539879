"""The two JPEG header segments the photo decoders read for themselves, each read in one place.

    frame(segment)          -> (height, width, channels) of a frame segment (SOF), or None
    huffman_tables(segment) -> [(class and number, counts, symbols)] of a DHT segment, or None

`jpeg_halves` and `jpeg_progressive` read the frame to decide whether, and where, a file can be cut
or shortened; `jpeg_blocks` and `jpeg_progressive` read the Huffman tables to decode codes or to keep
a table the file defined. A segment here is as the file holds it, from its marker on. Anything these
readers refuse is left to libjpeg, whose own decode says what is wrong.
"""
from __future__ import annotations

from typing import NamedTuple

MAX_CHANNELS = 4              # a JPEG has 1, 3 or 4 (CMYK)


class Channel(NamedTuple):
    ident: int                # what a scan calls it by
    across: int               # its sampling factors (a 4:2:2 photo's brightness: 2 across, 1 down)
    down: int
    table: int                # its quantisation table


def frame(segment: bytes) -> tuple[int, int, tuple[Channel, ...]] | None:
    """(height, width, channels in the frame's order) of a frame segment at 8 bits a sample; None for a
    segment cut short, another depth, no height or width (one given later, by a DNL segment), 0 or more
    than MAX_CHANNELS channels, a sampling factor of 0, or two channels with the same id (a scan could
    not say which it holds)."""
    if len(segment) < 10 or segment[4] != 8:
        return None
    height, width, count = int.from_bytes(segment[5:7], "big"), int.from_bytes(segment[7:9], "big"), segment[9]
    if not height or not width or not 1 <= count <= MAX_CHANNELS or len(segment) < 10 + 3 * count:
        return None
    channels = tuple(Channel(segment[at], segment[at + 1] >> 4, segment[at + 1] & 15, segment[at + 2])
                     for at in range(10, 10 + 3 * count, 3))
    if len({channel.ident for channel in channels}) != count or not all(c.across and c.down for c in channels):
        return None
    return height, width, channels


def huffman_tables(segment: bytes) -> list[tuple[int, bytes, bytes]] | None:
    """The tables a DHT segment defines, in its order: (class << 4 | number, the 16 counts of codes of
    each length, the symbols); None if a table runs past the segment's end."""
    tables, position = [], 4
    while position < len(segment):
        counts = segment[position + 1:position + 17]
        end = position + 17 + sum(counts)
        if len(counts) < 16 or end > len(segment):
            return None
        tables.append((segment[position], counts, segment[position + 17:end]))
        position = end
    return tables
