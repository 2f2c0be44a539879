"""The frame and Huffman table readers the photo decoders share: what real files hold, and the damaged
segments they refuse (each refusal leaves the file to libjpeg's own decode)."""
import pytest

from cifar_core import jpeg_segments
from test_jpeg_middle import mosaic
from test_jpeg_progressive import segments


def first(raw: bytes, marker: int) -> bytes:
    return next(part for part in segments(raw) if part[1] == marker)


@pytest.mark.parametrize("options, marker, sampling", [
    (dict(quality=90), 0xC0, [(2, 2), (1, 1), (1, 1)]),
    (dict(quality=90, subsampling="4:2:2"), 0xC0, [(2, 1), (1, 1), (1, 1)]),
    (dict(quality=90, progressive=True), 0xC2, [(2, 2), (1, 1), (1, 1)]),
    (dict(quality=90, mode="L"), 0xC0, [(1, 1)]),
])
def test_a_frame_as_pillow_writes_it(options, marker, sampling):
    height, width, channels = jpeg_segments.frame(first(mosaic(1203, 901, **options), marker))
    assert (width, height) == (1203, 901)
    assert [(c.across, c.down) for c in channels] == sampling
    assert len({c.ident for c in channels}) == len(channels) and channels[0].table == 0


def damaged(frame: bytes, at: int, value: int) -> bytes:
    return frame[:at] + bytes([value]) + frame[at + 1:]


def test_frames_it_refuses():
    frame = first(mosaic(1200, 900, quality=90), 0xC0)
    assert jpeg_segments.frame(frame) is not None
    assert jpeg_segments.frame(frame[:15]) is None                   # cut short in its channels
    assert jpeg_segments.frame(damaged(frame, 4, 12)) is None         # 12 bits a sample
    assert jpeg_segments.frame(damaged(damaged(frame, 5, 0), 6, 0)) is None   # no height: a DNL gives it later
    assert jpeg_segments.frame(damaged(frame, 9, 0)) is None          # no channels
    assert jpeg_segments.frame(damaged(frame, 9, 5)) is None          # more than a JPEG has
    assert jpeg_segments.frame(damaged(frame, 13, frame[10])) is None   # two channels with one id
    assert jpeg_segments.frame(damaged(frame, 14, 0x10)) is None      # a sampling factor of 0


def test_huffman_tables_as_pillow_writes_them_and_one_cut_short():
    raw = mosaic(1200, 900, quality=95, optimize=True)
    found = [table for part in segments(raw) if part[1] == 0xC4 for table in jpeg_segments.huffman_tables(part)]
    assert sorted(number for number, *_ in found) == [0x00, 0x01, 0x10, 0x11]
    assert all(len(counts) == 16 and len(symbols) == sum(counts) for _, counts, symbols in found)
    table = first(raw, 0xC4)
    assert jpeg_segments.huffman_tables(table[:-1]) is None
    assert jpeg_segments.huffman_tables(table[:20]) is None         # not even its 16 counts
