import io
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import hostile_images
from cifar_core import decoding, decoding_apart, evaluation, inference
from cifar_core.decoding import ImageError
from conftest import ROOT


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width=40, height=30) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    rgb = np.concatenate([x + 0 * y, y + 0 * x, np.full((height, width, 1), 128.0)], axis=2)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    source = gradient().convert(mode)
    fmt = {"CMYK": "TIFF", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    image = decoding.load_image(encode(source, fmt))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_sixteen_bit_images_keep_their_contrast():
    ramp = (np.linspace(0, 65535, 64 * 8).reshape(8, 64)).astype(np.uint16)
    source = Image.frombytes("I;16", (64, 8), ramp.astype("<u2").tobytes())
    image = np.asarray(decoding.load_image(encode(source, "PNG")))
    assert image.min() == 0 and image.max() == 255


def test_deep_grey_tiffs_keep_which_end_is_white():
    """A 16-bit TIFF whose zero is white (WhiteIsZero) came out as its negative, and a 32-bit unsigned one
    wrapped round past 2**31, its brightest half drawn darkest (Pillow keeps both as they are stored)."""
    from hostile_images import _tiff

    def ramp_tiff(dtype: str, bits: int, photometric: int) -> bytes:
        ramp = np.tile(np.linspace(0, np.iinfo(dtype).max, 64).astype(dtype), (8, 1))
        return _tiff({256: (4, [64]), 257: (4, [8]), 258: (3, [bits]), 259: (3, [1]), 262: (3, [photometric]),
                      277: (3, [1]), 278: (4, [8]), 279: (4, [ramp.nbytes]), 339: (3, [1])},
                     ramp.tobytes(), data_tag=273)

    white_is_zero = np.asarray(decoding.load_image(ramp_tiff("<u2", 16, 0)))[0, :, 0]
    assert white_is_zero[0] == 255 and white_is_zero[-1] == 0 and (np.diff(white_is_zero.astype(int)) <= 0).all()
    unsigned = np.asarray(decoding.load_image(ramp_tiff("<u4", 32, 1)))[0, :, 0]
    assert unsigned[0] == 0 and unsigned[-1] == 255 and (np.diff(unsigned.astype(int)) >= 0).all()


def test_a_flat_sixteen_bit_or_float_picture_keeps_its_level():
    for level, shown in ((65535, 255), (32896, 128), (0, 0)):
        flat = Image.frombytes("I;16", (16, 8), np.full((8, 16), level, "<u2").tobytes())
        assert (np.asarray(decoding.load_image(encode(flat, "PNG"))) == shown).all(), level
    assert (np.asarray(decoding.load_image(encode(Image.new("F", (16, 8), 0.75), "TIFF"))) == 191).all()


def test_one_colour_named_transparent_takes_the_background():
    """A PNG whose grey or RGB pixels are opaque but for one colour named in its tRNS chunk, as PNG
    optimisers write an RGBA picture with nothing half transparent."""
    blue = (0, 0, 255)
    rgb = Image.new("RGB", (8, 4), (10, 20, 30))
    rgb.paste((200, 0, 0), (0, 0, 4, 4))
    pixels = np.asarray(decoding.load_image(encode(rgb, "PNG", transparency=(10, 20, 30)), background=blue))
    assert (pixels[:, :4] == (200, 0, 0)).all() and (pixels[:, 4:] == blue).all()
    grey = Image.new("L", (8, 4), 0)
    grey.paste(90, (0, 0, 4, 4))
    pixels = np.asarray(decoding.load_image(encode(grey, "PNG", transparency=0)))
    assert (pixels[:, :4] == 90).all() and (pixels[:, 4:] == 255).all()
    for bits in (2, 4):     # grey in 2 or 4 bits: the level named is in those bits, the pixels stretched
        low = Image.new("L", (8, 4), 255)
        low.paste(85 if bits == 2 else 17, (0, 0, 4, 4))
        pixels = np.asarray(decoding.load_image(encode(low, "PNG", bits=bits, transparency=1), background=blue))
        assert (pixels[:, :4] == blue).all() and (pixels[:, 4:] == 255).all()
    deep = np.full((4, 8), 60_000, np.uint16)          # 16 bits: the transparent level out of the stretch
    deep[:, :2], deep[:, 2:4] = 1_000, 30_000
    raw = encode(Image.fromarray(deep), "PNG", transparency=60_000)
    assert Image.open(io.BytesIO(raw)).info.get("transparency") == 60_000
    pixels = np.asarray(decoding.load_image(raw, background=blue))
    assert (pixels[:, :2] == 0).all() and (pixels[:, 2:4] == 255).all() and (pixels[:, 4:] == blue).all()
    # 16-bit RGB: Pillow reads the pixels' high bytes, and compared them with the colour's low bytes
    rows = np.zeros((4, 8, 3), ">u2")
    rows[:, :4], rows[:, 4:] = (0xFF12, 0, 0), (0, 0x8000, 0)
    header = struct.pack(">IIBBBBB", 8, 4, 16, 2, 0, 0, 0)
    raw = (b"\x89PNG\r\n\x1a\n" + hostile_images._png_chunk(b"IHDR", header)
           + hostile_images._png_chunk(b"tRNS", struct.pack(">HHH", 0xFF12, 0, 0))
           + hostile_images._png_chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows)))
           + hostile_images._png_chunk(b"IEND", b""))
    pixels = np.asarray(decoding.load_image(raw, background=blue))
    assert (pixels[:, :4] == blue).all() and (pixels[:, 4:] == (0, 128, 0)).all()


def test_a_long_panorama_is_costed_at_the_size_it_is_shrunk_to():
    """A 20000 x 600 PNG (12 megapixels) was refused as 80 MB "over 12 megapixels": its cost counted it
    shrunk by 2, where it is shrunk by 5 to no longer than LONGEST_KEPT."""
    image = decoding.load_image(encode(Image.new("RGB", (20_000, 600), (30, 60, 90)), "PNG"))
    assert image.size == (4000, 120)


def test_palette_transparency_becomes_white():
    source = Image.new("P", (10, 10), 1)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pixels = np.asarray(decoding.load_image(encode(source, "PNG", transparency=1)))
    assert (pixels == 255).all()
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert (np.asarray(decoding.load_image(encode(rgba, "PNG"))) == 255).all()


def test_exif_orientation_is_applied():
    source = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 degrees clockwise to display
    image = decoding.load_image(encode(source, "JPEG", exif=exif.tobytes()))
    assert image.size == (30, 40)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_an_avif_or_heic_is_read_as_its_jpeg_is_and_turned_upright(fmt):
    """AVIF, as browsers save pictures from many websites, and HEIC, an iPhone's photos as a Mac or a PC keeps
    them: the model is shown the same picture as from a JPEG of it, and it is turned as its file says
    (libavif reports the orientation, nothing turns the pixels; libheif turns them by its rotation box,
    which its EXIF orientation becomes)."""
    from cifar_core import data
    photo = Image.fromarray(data.load_sample().x_test[0]).resize((640, 480), Image.Resampling.BICUBIC)
    from_jpeg = inference.views(decoding.load_image(encode(photo, "JPEG", quality=90))).astype(int)
    from_it = inference.views(decoding.load_image(encode(photo, fmt, quality=90))).astype(int)
    assert np.abs(from_jpeg - from_it).mean() < 3
    exif = Image.Exif()
    exif[0x0112] = 6
    assert decoding.load_image(encode(gradient(40, 30), fmt, exif=exif.tobytes())).size == (30, 40)


def test_an_avifs_cost_follows_its_bit_depth_and_colour_subsampling():
    """Bytes a pixel of the AV1 decoder's planes, from the file's AV1 configuration box (its third byte)."""
    def box(flags: int) -> bytes:
        return b"\0\0\0\x0cav1C\x81\x00" + bytes([flags]) + b"\x00"
    assert decoding._avif_plane_bytes(box(0x0C), "RGB") == 1.5            # 8 bits, 4:2:0
    assert decoding._avif_plane_bytes(box(0x00), "RGB") == 3.0            # 8 bits, 4:4:4
    assert decoding._avif_plane_bytes(box(0x1C), "RGB") == 1.0            # grey
    assert decoding._avif_plane_bytes(box(0x40), "RGB") == 6.0            # 10 bits, 4:4:4
    assert decoding._avif_plane_bytes(box(0x0C) + box(0x40), "RGB") == 6.0    # the costlier of two
    assert decoding._avif_plane_bytes(box(0x0C), "RGBA") == 3.5           # and an alpha plane
    assert decoding._avif_plane_bytes(b"no configuration", "RGB") == 6.0  # none found: the dearest
    assert decoding._avif_plane_bytes(box(0x0C) * 65, "RGB") == 6.0       # more than a real file has
    # A real one: what Pillow writes, 4:2:0 at 8 bits.
    assert decoding._avif_plane_bytes(encode(gradient(40, 30), "AVIF"), "RGB") == 1.5


def test_an_avif_is_decoded_apart_where_a_child_can_be_capped():
    """Its size box is what the budgets count, its AV1 frame what the decoder allocates: a 1 KB file whose box
    said 40 x 30 had a 6000 x 6000 frame decoded in the server's process, 73 MB."""
    raw = hostile_images.build("avif_frame_larger_than_its_size_box")
    assert decoding_apart.needed(raw, (40, 30)) == decoding_apart.CAPPED_HERE
    assert not decoding_apart.needed(encode(gradient(300, 200), "WEBP", quality=80), (300, 200))


def test_a_damaged_avif_or_heic_is_called_damaged_and_an_svg_unsupported():
    for fmt in ("AVIF", "HEIF"):
        raw = encode(gradient(40, 30), fmt)
        with pytest.raises(ImageError, match="damaged or cut short"):
            decoding.load_image(raw[:len(raw) // 2], apart=False)
        with pytest.raises(ImageError, match="damaged"):
            decoding.load_image(raw[:len(raw) // 2])
    heic = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + bytes(200)     # HEIC under a brand AVIF shares
    with pytest.raises(ImageError, match="damaged or cut short"):
        decoding.load_image(heic)
    with pytest.raises(ImageError, match="try JPEG, PNG, WebP, AVIF, HEIC, GIF, BMP or TIFF; SVG is not supported"):
        decoding.load_image(b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"></svg>')


def test_a_heics_cost_follows_its_bit_depth_and_colour_subsampling():
    """Bytes a pixel of the HEVC decoder's planes, from the file's HEVC configuration record."""
    def record(chroma: int, luma_bits: int, chroma_bits: int) -> bytes:
        return b"\0\0\0\x1fhvcC" + bytes(16) + bytes([0xFC | chroma, 0xF8 | luma_bits - 8, 0xF8 | chroma_bits - 8])
    assert decoding._heic_plane_bytes(record(1, 8, 8), "RGB") == 1.5          # 8 bits, 4:2:0
    assert decoding._heic_plane_bytes(record(3, 8, 8), "RGB") == 3.0          # 8 bits, 4:4:4
    assert decoding._heic_plane_bytes(record(0, 8, 8), "RGB") == 1.0          # grey
    assert decoding._heic_plane_bytes(record(1, 10, 10), "RGB") == 3.0        # 10 bits, 4:2:0
    assert decoding._heic_plane_bytes(record(2, 8, 8), "RGBA") == 4.0         # 4:2:2, and an alpha plane
    assert decoding._heic_plane_bytes(record(1, 8, 8)[:-3], "RGB") == 6.0     # cut short: the dearest
    # Real ones: what pillow-heif writes, 4:2:0 at 8 bits, and 4:4:4.
    assert decoding._heic_plane_bytes(encode(gradient(40, 30), "HEIF"), "RGB") == 1.5
    assert decoding._heic_plane_bytes(encode(gradient(40, 30), "HEIF", chroma=444), "RGB") == 3.0


def test_a_size_box_counts_only_where_the_decoders_read_one():
    """`ispe` in the coded picture's bytes (one HEIC photo of 4-5 MB in a thousand spells it by chance) refused
    a real photo as trillions of pixels; decoys before the real box hid its size."""
    for fmt in ("HEIF", "AVIF"):
        raw = encode(gradient(400, 300), fmt, quality=50)
        mdat = raw.index(b"mdat")
        planted = raw[:mdat + 40] + b"ispe\xff\xff\xff\xff\xff\xff\xff\xff" + raw[mdat + 52:]    # same length
        image, size, cost = decoding._planned(planted, decoding.Structure())
        assert size == (400, 300) and cost == decoding._planned(raw, decoding.Structure())[2], fmt
    def box(width: int, height: int) -> bytes:
        return b"\0\0\0\x14ispe\0\0\0\0" + struct.pack(">II", width, height)
    assert decoding._largest_size_box(box(40, 30) + box(12000, 12000)) == (12000, 12000)
    assert decoding._largest_size_box(b"\0\0\0\x15ispe\0\0\0\0" + struct.pack(">II", 9, 9)) == (0, 0)  # not a box
    with pytest.raises(ImageError, match="describes more pictures than a photo does"):
        decoding._largest_size_box(box(40, 30) * 64 + box(12000, 12000))


def test_a_heics_thumbnail_is_never_decoded_to_choose_it():
    """pillow-heif decodes a thumbnail as it picks one (Image.draft), before any budget is checked, and its
    HEVC frame need not be the size its file says: the server's process reads none (the capped child does,
    below)."""
    photo = gradient(2000, 1500)
    with_thumbnail = io.BytesIO()
    photo.save(with_thumbnail, "HEIF", quality=50, thumbnails=[600])
    assert b"thmb" in with_thumbnail.getvalue()          # the file's reference from a thumbnail to its picture
    opened, size, _ = decoding._planned(with_thumbnail.getvalue(), decoding.Structure())
    assert opened.size == size == (2000, 1500) and not opened.info.get("thumbnails")


@pytest.mark.skipif(not decoding_apart.CAPPED_HERE, reason="a preview is read only in a capped child, on Linux")
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")   # pytest shows what decoding ignores
def test_a_heic_is_read_from_its_preview_where_it_has_one():
    """libheif decodes a HEIC photo whole: 0.9 s of a core for 12 megapixels, and a recent iPhone's 24 take
    190 MB, over every budget. The preview the file holds (an iPhone's: 320 x 240) is read instead, in the
    capped child, turned as the photo is. A preview under PREVIEW_SMALLEST both ways will not do: the photo
    is decoded whole, or refused as before where it is over every budget."""
    photo = gradient(5712, 4284)
    photo.paste((250, 0, 0), (300, 300, 1500, 1200))        # a red block near the top left, to see it turned
    turned = Image.Exif()
    turned[0x0112] = 6
    image = decoding.load_image(encode(photo, "HEIF", quality=50, thumbnails=[320], exif=turned.tobytes()))
    upright = photo.transpose(Image.Transpose.ROTATE_270)
    red, green, blue = image.getpixel((200, 50))            # the block, now near the top right
    assert image.mode == "RGB" and image.size == (240, 320) and red > 230 and green < 20 and blue < 20
    assert np.abs(inference.prepare(image).astype(int) - inference.prepare(upright)).mean() < 2
    small = decoding.PREVIEW_SMALLEST - 40
    with pytest.raises(ImageError, match=re.escape("too large to decode here (5712 x 4284 pixels")):
        decoding.load_image(encode(Image.new("RGB", photo.size), "HEIF", quality=10, thumbnails=[small]))
    within = photo.resize((2000, 1500))                     # within the budgets: its preview, or itself
    assert decoding.load_image(encode(within, "HEIF", quality=50, thumbnails=[320])).size == (320, 240)
    assert decoding.load_image(encode(within, "HEIF", quality=50, thumbnails=[small])).size == (400, 300)
    # A preview over PREVIEW_LONGEST would be decoded before its cost is counted: the picture is counted
    # instead, here one whose size box claims 12000 x 12000, refused for that, its 1500-pixel preview unread.
    claiming = bytearray(encode(within, "HEIF", quality=10, thumbnails=[1500]))
    at = claiming.find(b"ispe") + 8                         # the picture's size box, before its preview's
    claiming[at:at + 8] = struct.pack(">II", 12000, 12000)
    with pytest.raises(ImageError, match=re.escape("too large to decode here (12000 x 12000 pixels")):
        decoding.load_image(bytes(claiming))
    assert decoding.load_image(encode(within, "HEIF", quality=50, thumbnails=[320, 1500])).size == (400, 300)


def test_exif_orientation_is_applied_from_a_block_too_big_for_pillow_to_read():
    """A WebP's EXIF may be larger than a JPEG's 64 KB; its orientation is still read, in either byte order."""
    source = gradient(40, 30)
    for order in ("<", ">"):
        exif = Image.Exif()
        exif[0x0112] = 6
        exif[0x010E] = "x" * 70_000            # a long description: 70 KB of EXIF
        raw = exif.tobytes()
        if order == ">":                       # the same directory written big-endian, as some cameras do
            raw = _big_endian_orientation_six(70_000)
        assert len(raw) > 65_536
        assert decoding.load_image(encode(source, "WEBP", exif=raw)).size == (30, 40), order


def _big_endian_orientation_six(padding: int) -> bytes:
    """A big-endian EXIF block: one directory holding the orientation (6) and a long description."""
    import struct
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">HHII", 0x010E, 2, padding, 8 + 2 + 24 + 4)
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + bytes(4) + b"x" * padding


def test_a_twelve_bit_jpeg_is_refused_as_what_it_is():
    raw = bytearray(encode(gradient(40, 30), "JPEG"))
    frame = raw.index(b"\xff\xc0")
    raw[frame + 4] = 12                          # the frame's precision: 12 bits a sample
    with pytest.raises(ImageError, match="more than 8 bits a colour"):
        decoding.load_image(bytes(raw))


@pytest.mark.skipif(not shutil.which("jpegtran"), reason="needs libjpeg-turbo's jpegtran to write arithmetic coding")
@pytest.mark.parametrize("options", [[], ["-progressive"]])
def test_an_arithmetic_coded_jpeg_over_64_kb_is_read(options):
    """libjpeg's arithmetic decoder cannot stop partway for more data, and Pillow handed it 64 KB at a
    time, so such a JPEG was refused as damaged."""
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8))
    huffman = encode(picture, "JPEG")
    raw = subprocess.run(["jpegtran", "-arithmetic", *options], input=huffman, capture_output=True, check=True).stdout
    assert len(raw) > 64 << 10 and b"\xff\xc0" not in raw[:raw.index(b"\xff\xda")]    # no Huffman frame
    image = decoding.load_image(raw)
    expected = decoding.load_image(huffman)      # the same coefficients, Huffman-coded
    assert image.size == expected.size
    assert np.array_equal(np.asarray(image), np.asarray(expected))


@pytest.mark.skipif(not shutil.which("jpegtran"), reason="needs libjpeg-turbo's jpegtran to write arithmetic coding")
def test_a_big_arithmetic_coded_jpeg_is_refused_before_it_holds_a_core():
    rng = np.random.default_rng(2)
    picture = Image.fromarray(rng.integers(0, 256, (2800, 2800, 3), dtype=np.uint8))
    raw = subprocess.run(["jpegtran", "-arithmetic"], input=encode(picture, "JPEG", quality=95),
                         capture_output=True, check=True).stdout
    assert len(raw) > decoding.MAX_ARITHMETIC_BYTES
    with pytest.raises(ImageError, match="arithmetic coding"):
        decoding.load_image(raw)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    raw = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixel = np.asarray(decoding.load_image(raw))[4, 4]
    assert pixel[0] > 200 and pixel[2] < 50


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF", "GIF", "BMP", "TIFF"])
def test_upload_formats(fmt, tmp_path):
    raw = encode(gradient(), fmt)
    assert decoding.load_image(raw).size == (40, 30)
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(raw)
    assert decoding.load_image(path).size == (40, 30)
    assert decoding.load_image(io.BytesIO(raw)).size == (40, 30)


def test_extreme_shapes_are_fine():
    assert inference.prepare(decoding.load_image(encode(Image.new("RGB", (1, 1), "red"), "PNG"))).shape == (32, 32, 3)
    assert inference.prepare(decoding.load_image(encode(Image.new("RGB", (5000, 10), "red"), "PNG"))).shape == (32, 32, 3)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have (as a decompression bomb does)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + end


@pytest.mark.parametrize("raw, message", [
    (b"", "The file is empty."),
    (b"hello, I am a text file named photo.png\n", "not a picture in a format we can read"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG is not supported"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "damaged or cut short"),
    (_png_claiming(100_000, 100_000), "too large"),
    (_png_claiming(20_000, 10_000), "too large"),
    (_png_claiming(0, 10), "picture"),
    # Files that begin as a format read here, cut short in their header: not "not a picture in a format we
    # can read (try JPEG, PNG, ...)", which named the file's own format.
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "damaged or cut short"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "damaged or cut short"),
    (b"BM" + bytes(12), "damaged or cut short"),
    (b"RIFF\x00\x01\x00\x00WEBPVP8 ", "damaged or cut short"),
])
def test_bad_inputs_get_a_sentence(raw, message):
    with pytest.raises(ImageError, match=message) as e:
        decoding.load_image(raw)
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_truncated_jpeg_gets_a_sentence():
    raw = encode(gradient(400, 300), "JPEG")
    with pytest.raises(ImageError, match="damaged or cut short"):
        decoding.load_image(raw[: len(raw) // 2])


def test_missing_file_gets_a_sentence(tmp_path):
    with pytest.raises(ImageError, match="Could not read"):
        decoding.load_image(tmp_path / "nope.jpg")


def test_transparent_parts_take_the_background_colour():
    blue = (0, 0, 255)
    clear = Image.new("RGBA", (6, 4), (255, 0, 0, 0))
    assert (np.asarray(decoding.load_image(encode(clear, "PNG"), background=blue)) == blue).all()
    palette = Image.new("P", (6, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert (np.asarray(decoding.load_image(encode(palette, "PNG", transparency=1), background=blue)) == blue).all()
    half = Image.new("LA", (6, 4), (0, 128))                 # black at half opacity on white: mid grey
    assert abs(int(np.asarray(decoding.load_image(encode(half, "PNG"))).mean()) - 127) <= 1


def test_big_pictures_come_back_reduced_and_give_the_model_the_same_input():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1500, 0:2000]
    detail = np.stack([x % 256, y % 200, (x // 7 + y // 5) % 256], -1) + rng.normal(0, 20, (1500, 2000, 3))
    full = Image.fromarray(np.clip(detail, 0, 255).astype(np.uint8))
    for fmt in ("PNG", "JPEG"):
        image = decoding.load_image(encode(full, fmt))
        assert WORKING <= min(image.size) < 2 * WORKING and abs(image.width / image.height - 4 / 3) < 0.01
        reference = inference.prepare(Image.open(io.BytesIO(encode(full, fmt))).convert("RGB"))
        assert np.abs(inference.prepare(image).astype(int) - reference).mean() < 2


def test_files_over_the_size_limit_get_a_sentence(monkeypatch, tmp_path):
    monkeypatch.setattr(decoding, "MAX_FILE_BYTES", 1000)
    raw = encode(gradient(200, 200), "BMP")
    (tmp_path / "big.bmp").write_bytes(raw)
    for source in (raw, tmp_path / "big.bmp", io.BytesIO(raw)):
        with pytest.raises(ImageError, match="The file is too big"):
            decoding.load_image(source)


@pytest.mark.parametrize("fmt, width", [("PNG", 200), ("JPEG", 300)])
def test_a_long_thin_picture_is_not_kept_at_its_full_length(fmt, width):
    strip = gradient(width, 100 * width)       # 300 x 30,000: 26 MB as RGB, of which the model sees the middle 900 rows
    image = decoding.load_image(encode(strip, fmt))
    assert max(image.size) <= decoding.LONGEST_KEPT and image.size[1] > 10 * image.size[0]
    assert all(view.shape == (32, 32, 3) for view in inference.views(image))


def test_formats_the_uploader_does_not_offer_are_refused():
    for fmt in ("ICO", "PPM", "TGA", "PCX"):
        with pytest.raises(ImageError, match="not a picture in a format we can read"):
            decoding.load_image(encode(gradient(), fmt))


# Hostile files (tests/hostile_images.py): a sentence each, except these, which are pictures within the budget.
WORKING = decoding.WORKING_SIZE
LOADS = {"mpo_phone", "jpeg_ff_run", "jpeg_huge_baseline", "jpeg_segments_after_the_scan", "tiff_float_nan", "png_rgba_at_budget", "png_16bit_at_budget",
         "png_palette_at_budget", "tiff_float_at_budget", "webp_at_budget", "jpeg_progressive_at_budget", "avif_at_budget",
         "heic_at_budget", *({"heic_24_megapixels_with_preview"} if decoding_apart.CAPPED_HERE else ()),
         "avif_frame_larger_than_its_size_box",
         *hostile_images.ALONE}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for name, build in hostile_images.BUILDERS.items():
        (folder / name).write_bytes(build())
    return folder


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")   # Pillow's, for 169 megapixels
@pytest.mark.parametrize("name", sorted(hostile_images.BUILDERS))
def test_hostile_files_give_a_picture_or_a_sentence(name, hostile):
    try:
        image = decoding.load_image(hostile / name)
    except ImageError as e:
        assert name not in LOADS, f"{name} should load: {e}"
        assert "\n" not in str(e) and str(e).endswith(".")
    else:
        assert name in LOADS, f"{name} should be refused"
        assert image.mode == "RGB" and min(image.size) < 2 * WORKING       # big ones come back reduced
        if name == "mpo_phone":   # decoded at an eighth of 4000 x 3000, then turned upright (portrait)
            assert image.size == (375, 500)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")   # pytest shows what decoding ignores
def test_hostile_files_are_refused_for_what_they_are(hostile):
    def sentence(name):
        with pytest.raises(ImageError) as e:
            decoding.load_image(hostile / name)
        return str(e.value)
    assert "too large to decode here (7000 x 7000 pixels" in sentence("png_16bit_7000")
    assert "too large to decode here (7000 x 7000 pixels" in sentence("jpeg_progressive_7000")
    assert "more than 100 scans" in sentence("jpeg_many_scans")
    assert "scans that go over 16 million blocks" in sentence("jpeg_refinement_scans")
    assert "holds its picture as JPEG inside it" in sentence("tiff_jpeg")
    assert "bytes that belong to no part of it" in sentence("gif_stray_bytes")
    assert "bytes of padding" in sentence("jpeg_padding")
    assert "more than one frame header" in sentence("jpeg_many_frame_headers")
    assert "more than 4 EXIF blocks" in sentence("jpeg_many_exif_blocks")
    assert "more than 8 Photoshop blocks" in sentence("jpeg_many_photoshop_blocks")
    assert "more than 20,000 chunks" in sentence("png_many_chunks")
    assert "run-length compressed BMP is too large" in sentence("bmp_rle8_7000")
    # Decoded in Python at 0.4 s of a core a megapixel: a 1,000 x 1,000 one of 2 KB is refused, 640 x 480 read.
    from hostile_images import bmp_rle8
    with pytest.raises(ImageError, match="please use one under 0.5 megapixels, or a PNG"):
        decoding.load_image(bmp_rle8(1000, 1000))
    assert decoding.load_image(bmp_rle8(640, 480)).size == (640, 480)
    assert "damaged" in sentence("tiff_rational_offsets")
    assert "16 scans that go over 16 million blocks" in sentence("jpeg_repeated_channel_names")
    assert "tags whose values add up to more bytes than the whole file" in sentence("tiff_many_big_tags")
    assert "lists of more than 32,768 numbers" in sentence("tiff_exif_fractions")       # in its Exif directory
    assert "too large to decode here (12000 x 12000 pixels" in sentence("avif_claiming_12000")
    # Its picture cropped to 40 x 30 (`clap`): the size box, which the decoder makes whole, is what counts.
    assert "too large to decode here (12000 x 12000 pixels" in sentence("heic_claiming_12000")
    # Its preview's frame larger than the preview's size box: libheif will not decode it, and no other will do.
    assert "too large to decode here (12000 x 12000 pixels" in sentence("heic_preview_frame_larger_than_its_size_box")
    assert "too large to decode here (8900 x 8900 pixels" in sentence("tiff_turned_8900")
    assert "not a picture in a format we can read" in sentence("im_bad_size")
    assert "This PNG holds 19 MB of text besides its picture" in sentence("png_text_after_its_pixels")
    assert "This PNG holds 16 MB of text besides its picture" in sentence("png_compressed_text_after_its_pixels")
    assert "holds its picture as JPEG inside it" in sentence("tiff_jpeg_compression_as_a_long")
    assert "This TIFF holds 19 MB of text and other data besides its picture" in sentence("tiff_description_at_budget")


def test_text_and_tags_besides_the_pixels_are_counted_in_a_pictures_cost():
    """A picture with a few megabytes of text (an AI image's settings, a Photoshop file's history) is read;
    with a picture at the budget, the text's copies are counted with its pixels, and it is refused."""
    from hostile_images import _after_the_pixels, _international_text, _png_chunk
    small = encode(gradient(), "PNG")
    assert decoding.load_image(_after_the_pixels(small, _international_text(4 * 2**20))).size == gradient().size
    workflow = _png_chunk(b"tEXt", b"workflow\x00" + b'{"nodes": []}' * 600_000)     # 7.8 MB of Latin-1 text
    assert decoding.load_image(_after_the_pixels(small, workflow)).size == gradient().size
    at_budget = hostile_images.build("png_16bit_at_budget")
    decoding.load_image(at_budget)
    with pytest.raises(ImageError, match=r"too large to decode here \(5000 x 5000 pixels would take \d+ MB of memory, "
                                         r"13 MB of it for its text and tags\); please use one under 2[0-9] megapixels"):
        decoding.load_image(_after_the_pixels(at_budget, _international_text(2**20)))
    # Compressed: Pillow inflates an iTXt whose flag is any but 0 (a flag of 2 went uncounted).
    text = zlib.compress(b"a" * (2**20 - 68) + "\U0001F600".encode(), 9)
    chunks = [_png_chunk(b"iTXt", b"k%d\x00\x02\x00\x00\x00" % i + text) for i in range(8)]
    with pytest.raises(ImageError, match="This PNG holds 8 MB of text"):
        decoding.load_image(_after_the_pixels(small, *chunks))


def test_a_tiffs_jpeg_strips_are_refused_however_its_compression_is_written(monkeypatch):
    """Three SHORTs stored elsewhere (one a sample) and a LONG8 were read from the entry itself, an
    offset; and whatever the check reads, Pillow's own reading of the tag refuses them too."""
    def with_compression(kind: int, count: int) -> bytes:
        raw = bytearray(encode(Image.new("RGB", (64, 64), (200, 30, 30)), "TIFF", compression="jpeg"))
        (directory,) = struct.unpack_from("<I", raw, 4)
        for entry in range(struct.unpack_from("<H", raw, directory)[0]):
            at = directory + 2 + 12 * entry
            if struct.unpack_from("<H", raw, at)[0] == 259:
                struct.pack_into("<HHII", raw, at, 259, kind, count, len(raw))
        return bytes(raw) + (struct.pack("<HHH", 7, 7, 7) if kind == 3 else struct.pack("<Q", 7))

    for kind, count in ((3, 3), (16, 1)):
        with pytest.raises(ImageError, match="holds its picture as JPEG inside it"):
            decoding.load_image(with_compression(kind, count))
    monkeypatch.setattr(decoding, "_check_tiff", lambda raw: 0)
    with pytest.raises(ImageError, match="holds its picture as JPEG inside it"):
        decoding.load_image(hostile_images.build("tiff_jpeg"))


def test_a_tiff_with_a_bad_exif_pointer_is_still_checked_whole():
    """The Exif directory was walked as soon as its tag came up, and a pointer past the file's end ended the
    whole check: the first directory's later tags (990 of 200 KB each; JPEG strips) went unread, to libtiff."""
    def tiff(entries: list[tuple[int, int, int, int]], data: bytes) -> bytes:
        """A little-endian TIFF whose one directory holds `entries` in the order given (libtiff and Pillow
        take them unsorted), then `data`."""
        return (b"II*\x00" + struct.pack("<IH", 8, len(entries))
                + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4 + data)

    bad_exif = (34665, 4, 1, 0xFFFFFF00)
    start = 8 + 2 + 12 * 1000 + 4
    picture = [(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, start), (277, 3, 1, 1),
               (278, 4, 1, 8), (279, 4, 1, 64)]
    big_tags = [(40000 + i, 7, 200_000, start + 64) for i in range(990)]
    with pytest.raises(ImageError, match="add up to more bytes than the whole file"):
        decoding.load_image(tiff([bad_exif, (259, 3, 1, 8), *picture, *big_tags], bytes(200_064)))
    start = 8 + 2 + 12 * 10 + 4
    picture = [(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, start), (277, 3, 1, 1),
               (278, 4, 1, 8), (279, 4, 1, 64)]
    with pytest.raises(ImageError, match="holds its picture as JPEG inside it"):
        decoding.load_image(tiff([bad_exif, *picture, (259, 3, 1, 7)], bytes(64)))
    # A SHORT pointer read as a LONG went elsewhere, and the Exif directory Pillow reads went unchecked.
    fractions = hostile_images.build("tiff_exif_fractions")
    short = bytearray(fractions)
    for i in range(struct.unpack_from("<H", fractions, 8)[0]):
        at = 10 + 12 * i
        tag, _, _, value = struct.unpack_from("<HHII", fractions, at)
        if tag in (34665, 34853):
            struct.pack_into("<HHIHH", short, at, tag, 3, 1, value, 0xFFFF)
    with pytest.raises(ImageError, match="lists of more than 32,768 numbers"):
        decoding.load_image(bytes(short))


def test_a_tiff_turned_by_its_xmp_costs_its_second_copy_too():
    """Pillow turns a TIFF upright as it loads it by its XMP's orientation where it has no Orientation tag:
    80 KB of grey 8900 x 8900 took 163 MB where the budget counted 79."""
    width = 8900
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    offsets = 8 + 2 + 12 * 11 + 4
    counts = offsets + 4 * width
    pixels = counts + 4 * width
    entries = [(256, 4, 1, width), (257, 4, 1, width), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, width, offsets), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, width, counts), (284, 3, 1, 1),
               (700, 1, len(xmp), pixels + width)]
    raw = (b"II*\x00" + struct.pack("<IH", 8, len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
           + b"\x00" * 4 + struct.pack(f"<{width}I", *[pixels] * width) + struct.pack(f"<{width}I", *[width] * width)
           + bytes(width) + xmp)
    with pytest.raises(ImageError, match="too large to decode here"):
        decoding.load_image(raw)
    small = io.BytesIO()
    Image.new("L", (40, 30), 90).save(small, "TIFF", tiffinfo={700: xmp})
    assert decoding.load_image(small.getvalue()).size == (30, 40)       # turned, as Pillow turns it


@pytest.mark.skipif(not decoding_apart.CAPPED_HERE, reason="a child's memory is capped on Linux only")
def test_a_lossless_webp_is_decoded_apart_to_the_same_picture(monkeypatch):
    """libwebp's tables for a lossless stream cannot be told from the header (`decoding_apart`): decoded in a
    process of its own under a memory cap, it comes back as the same picture, its transparency on the
    background; a file whose tables pass the cap is refused in a sentence."""
    picture = Image.new("RGBA", (300, 200), (10, 200, 30, 128))
    picture.paste((200, 10, 10, 255), (0, 0, 150, 100))
    raw = encode(picture, "WEBP", lossless=True)
    assert decoding_apart.needed(raw, picture.size)
    assert not decoding_apart.needed(encode(gradient(300, 200), "WEBP", quality=80), (300, 200))    # lossy
    # An icon names at most GROUPS_HERE groups (one per 4 x 4 pixels): decoded here, at no child's cost.
    assert not decoding_apart.needed(encode(gradient(128, 128), "WEBP", lossless=True), (128, 128))
    apart = decoding.load_image(raw, background=(0, 0, 255))
    here = decoding.load_image(raw, background=(0, 0, 255), apart=False)
    assert apart.tobytes() == here.tobytes() and apart.getpixel((200, 150)) == (5, 100, 142)
    with pytest.raises(ImageError, match="would take more memory to decode than is allowed here"):
        decoding.load_image(hostile_images.build("webp_many_prefix_groups"))
    monkeypatch.setenv("CIFAR_ADMIN_PASSWORD", "s3cret")          # the child parses hostile bytes: no secrets
    assert "CIFAR_ADMIN_PASSWORD" not in decoding_apart._environment()
    loads = []
    monkeypatch.setattr(decoding_apart, "load", lambda *args: loads.append(args) or gradient())
    decoding.load_image(raw)
    assert loads and loads[0][2] == decoding.MEMORY_BUDGET        # capped at the one place it holds


def test_a_lossless_jpeg_is_refused_in_a_sentence_of_its_own():
    """libjpeg cannot decode one at a reduced size: 512 pixels or wider, it failed as "damaged"."""
    raw = bytearray(encode(gradient(), "JPEG"))
    frame = raw.index(b"\xff\xc0")
    raw[frame + 1] = 0xC3                                   # the same frame, marked lossless (SOF3)
    with pytest.raises(ImageError, match="stored losslessly"):
        decoding.load_image(bytes(raw))


def test_a_picture_comes_back_without_the_files_text_and_profiles():
    """A page keeps the picture for its visitor: a PNG's 19 MB text chunk was kept with it, past the upload
    budget, and a JPEG's ICC profile and EXIF likewise."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "A" * 2_000_000)
    assert decoding.load_image(encode(gradient(), "PNG", pnginfo=text)).info == {}
    turned = Image.Exif()
    turned[0x0112] = 6
    image = decoding.load_image(encode(gradient(), "JPEG", exif=turned, icc_profile=b"\x00" * 100_000))
    assert image.info == {} and image.size == (30, 40)      # still turned upright by its EXIF


def test_a_pngs_exif_in_a_long_text_is_read_from_its_first_directory(monkeypatch):
    """ImageMagick writes a PNG's EXIF as hex in a text chunk, which Pillow decodes and reads entry by entry
    in Python: 1.6 MB of it took 0.24 s. Its first directory holds the orientation."""
    turned = Image.Exif()
    turned[0x0112] = 6
    exif = turned.tobytes() + b"\x00" * 200_000
    text = PngImagePlugin.PngInfo()
    text.add_text("Raw profile type exif", f"\nexif\n{len(exif):8d}\n" + exif.hex())
    raw = encode(gradient(), "PNG", pnginfo=text)
    monkeypatch.setattr(Image.Image, "getexif", lambda self: pytest.fail("Pillow's EXIF reader was given it"))
    assert decoding.load_image(raw).size == (30, 40)        # turned upright


# Peak memory and time of load_image + prepare, in a fresh process: the growth of its peak resident
# set over what it held before reading the file. The peak is Linux's VmHWM: getrusage's ru_maxrss
# would include the memory of the pytest process that started it.
MEASURE = """
import resource, sys, time
from cifar_core import decoding, evaluation, inference

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))

before = status("VmRSS")
started = time.perf_counter()
try:
    inference.prepare(decoding.load_image(sys.argv[1]))
except decoding.ImageError:
    pass
apart = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024    # a picture decoded apart: its peak
print(max(status("VmHWM") - before, apart), time.perf_counter() - started)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
@pytest.mark.parametrize("name", sorted(hostile_images.BUILDERS))
def test_hostile_files_take_bounded_memory_and_time(name, hostile):
    result = subprocess.run([sys.executable, "-c", MEASURE, str(hostile / name)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    peak, seconds = map(float, result.stdout.split())
    # A photo decoded alone holds every place's budget (`decoding._places`), the others' too.
    bound = 150e6 + (decoding.DECODING_AT_ONCE - 1) * decoding.MEMORY_BUDGET * (name in hostile_images.ALONE)
    assert peak < bound and seconds < 10, f"{name}: {peak / 1e6:.0f} MB, {seconds:.1f} s"


def test_a_photo_over_one_budget_is_decoded_alone_and_others_wait_for_it(monkeypatch):
    """A big progressive JPEG (libjpeg holds every coefficient) takes every decoding place: it is read, and
    no other picture is decoded meanwhile, so the process still holds at most DECODING_AT_ONCE budgets."""
    import time
    big = hostile_images.build("jpeg_progressive_at_two_budgets")
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buffer, "JPEG")
    spans, real = [], decoding._decode

    def timed(image, raw, *args, **options):
        started = time.monotonic()
        time.sleep(0.03)      # long enough for the other threads to arrive meanwhile
        try:
            return real(image, raw, *args, **options)
        finally:
            spans.append((started, time.monotonic(), raw is big))
    monkeypatch.setattr(decoding, "_decode", timed)
    loaded = {}
    threads = [threading.Thread(target=lambda n=n, raw=raw: loaded.__setitem__(n, decoding.load_image(raw)))
               for n, raw in enumerate([buffer.getvalue()] * 3 + [big] + [buffer.getvalue()] * 6)]
    for thread in threads:
        thread.start()
        time.sleep(0.005)
    for thread in threads:
        thread.join()
    assert len(loaded) == 10 and loaded[3].size == (382, 282)          # read at an eighth, then halved
    (first, last), = [(start, end) for start, end, alone in spans if alone]
    assert not [span for span in spans if not span[2] and span[0] < last and span[1] > first]
    assert any(start < first for start, _, alone in spans if not alone)   # others came before it and after
    assert any(start > last for start, _, alone in spans if not alone)


def test_pictures_take_their_turns_in_the_order_they_came_and_a_photo_back_for_every_place_first():
    """Under load a plain lock let later pictures in before a big photo that was in line already, which
    was starved of its places for as long as small ones kept coming."""
    import time
    turns, order = decoding._Turns(), []

    def wait(name, first=False):
        with turns.turn(first=first):
            order.append(name)
    threads = []
    with turns.turn():
        for name, first in [("a", False), ("b", False), ("photo", True), ("c", False), ("photo 2", True),
                            ("d", False)]:
            threads.append(threading.Thread(target=wait, args=(name, first)))
            threads[-1].start()
            while len(turns._waiting) + len(turns._back) < len(threads):
                time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert order == ["photo", "photo 2", "a", "b", "c", "d"]


def test_a_picture_interrupted_while_waiting_for_its_turn_leaves_the_line():
    turns, taken = decoding._Turns(), threading.Event()

    def interrupted(*args, **options):
        raise KeyboardInterrupt
    turns._changed.wait_for = interrupted
    with pytest.raises(KeyboardInterrupt):
        with turns.turn():
            pass
    del turns._changed.wait_for

    def next_one():
        with turns.turn():
            taken.set()
    threading.Thread(target=next_one, daemon=True).start()
    assert taken.wait(10), "the next picture waits for ever behind one that left"


def test_only_a_photo_may_take_more_than_one_budget():
    """A PNG that costs a little over one budget is a screen, a scan or a file built to cost it: refused,
    where a JPEG or WebP that costs as much is decoded alone; past every place's budget, refused too."""
    with pytest.raises(decoding.ImageError, match=re.escape("too large to decode here (3300 x 3300 pixels")):
        decoding.load_image(hostile_images._png(3300, 3300, 8, 6))                 # RGBA: 87 MB
    assert decoding.load_image(hostile_images.build("webp_at_two_budgets")).size == (259, 259)   # a twelfth
    with pytest.raises(decoding.ImageError, match="please use one under 28 megapixels"):
        decoding.load_image(hostile_images.build("jpeg_progressive_7000"))         # 294 MB


def test_a_class_uploading_at_once_decodes_a_few_pictures_at_a_time(monkeypatch):
    """Thirty uploads at once: each may take MEMORY_BUDGET while it is decoded, so only a few decode at once."""
    import time
    at_once, most = [0], [0]
    lock = threading.Lock()
    real = decoding._decode

    def counted(*args, **options):
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        time.sleep(0.02)      # long enough for every other thread to arrive meanwhile
        try:
            return real(*args, **options)
        finally:
            with lock:
                at_once[0] -= 1
    monkeypatch.setattr(decoding, "_decode", counted)
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buffer, "JPEG")
    pictures = []
    threads = [threading.Thread(target=lambda: pictures.append(decoding.load_image(buffer.getvalue())))
               for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pictures) == 30 and most[0] == decoding.DECODING_AT_ONCE


def test_prepare_squeezes_the_whole_picture_into_a_square():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)       # left third red
    wide[:, 100:200] = (0, 255, 0)    # centre green
    wide[:, 200:] = (0, 0, 255)       # right third blue
    small = inference.prepare(Image.fromarray(wide))
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    assert (small[:, :8, 0] > 240).all() and (small[:, 13:19, 1] > 240).all() and (small[:, 24:, 2] > 240).all()
    centre = inference.prepare(Image.fromarray(wide), inference.crop_box(300, 100))
    assert (centre[:, 4:28, 1] > 240).all() and centre[:, 4:28, [0, 2]].max() < 15


def test_a_panorama_is_squeezed_no_more_than_three_to_one():
    assert inference.whole_box(640, 480) == (0, 0, 640, 480)
    assert inference.whole_box(100, 1000) == (0, 350, 100, 650)      # its middle 3:1, tall too
    strip = np.zeros((100, 500, 3), np.uint8)
    strip[:, :100] = strip[:, 400:] = (255, 0, 0)                    # red ends, left out...
    strip[:, 100:400] = (0, 0, 255)                                  # ...the middle 3:1 blue
    middle = inference.prepare(Image.fromarray(strip))
    assert middle[:, 2:30, 0].max() < 5 and middle[..., 2].min() > 200    # (Lanczos reads a pixel past the box)
    assert (inference.cut_off(500, 100), inference.cut_off(300, 100), inference.cut_off(100, 1000)) == (0.4, 0, 0.7)


def test_prepare_antialiases():
    stripes = np.zeros((320, 320, 3), np.uint8)
    stripes[:, ::2] = 255   # one-pixel stripes average to mid grey, not to black or white
    small = inference.prepare(Image.fromarray(stripes))
    assert 100 < small.mean() < 155 and small.std() < 10


def edges(picture: np.ndarray) -> float:
    """Mean absolute difference of neighbouring grey pixels: how sharp a picture is."""
    grey = picture.astype(np.float32).mean(axis=-1)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def test_a_photo_is_shown_whole_and_as_a_closer_square_softened():
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[...] = (255, 0, 0)                   # red all round...
    photo[:, :40] = photo[:, 360:] = (255, 255, 0)   # (yellow ends, outside the largest centre square)
    photo[30:270, 80:320] = (0, 255, 0)        # ...a green square of 80% of the shorter side (300 -> 240)
    photo[140:160, 190:210] = (0, 0, 255)      # and a blue dot in the middle
    views = inference.views(Image.fromarray(photo))
    assert views.shape == (2, 32, 32, 3) and views.dtype == np.uint8
    assert np.array_equal(views[0], inference.prepare(Image.fromarray(photo)))
    assert views[0][16, [0, 31], 1].min() > 200 and views[0][[0, 31], 16, 1].max() < 30   # yellow ends, red above
    assert views[1][[0, 31, 16, 16], [16, 16, 0, 31], 1].min() > 200  # the closer square: green to its edges
    assert views[1][16, 16, 2] > views[0][16, 16, 2]                  # and the dot bigger in it
    noise = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sharp = np.asarray(Image.fromarray(noise).resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3.0))
    assert edges(inference.prepare(Image.fromarray(noise))) < 0.8 * edges(sharp)   # softened once shrunk


def test_a_cifar_sized_picture_is_shown_as_it_is():
    rng = np.random.default_rng(4)
    picture = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    views = inference.views(Image.fromarray(picture))
    assert views.shape == (1, 32, 32, 3) and np.array_equal(views[0], picture)   # not zoomed, not softened
    assert len(inference.views(Image.fromarray(rng.integers(0, 256, (36, 50, 3), dtype=np.uint8)))) == 1
    # 32 pixels high: squeezed across but not a photo, so not softened (nor evened out) either.
    narrow = Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    assert not inference.is_photo(*narrow.size)
    assert np.array_equal(inference.prepare(narrow), np.asarray(narrow.resize((32, 32), Image.Resampling.LANCZOS)))


@pytest.fixture(scope="module")
def model():
    from cifar_core import models
    return models.build("airbench_tiny")


def test_predict_returns_probabilities(model):
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3)).astype(np.uint8)
    probabilities = inference.predict(model, images)
    assert probabilities.shape == (7, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(inference.predict(model, images[0]), probabilities[:1], atol=1e-6)
    with pytest.raises(ValueError, match="Expected images of shape"):
        inference.predict(model, np.zeros((2, 28, 28, 3)))


def test_what_sure_means_is_said_truly_for_a_model_never_calibrated(tmp_path):
    """A model saved without a temperature (a run stopped before its final checks) answered under a line
    saying its "% sure" was right that often on test pictures."""
    import shutil
    from cifar_core import explain
    shutil.copyfile(inference.DEFAULT_MODEL, tmp_path / "stopped.keras")
    assert inference.load_model().calibrated and not inference.load_model(tmp_path / "stopped.keras").calibrated
    assert explain.what_sure_means(0.8, False).startswith("Of the answers this model gives 80% sure on CIFAR-10")
    assert "saved without its \"% sure\" checked" in explain.what_sure_means(0.8, False, calibrated=False)
    # The help beside the figure too: it called every model's "% sure" honest on test pictures.
    for photo in (False, True):
        assert "honest" in explain.sure_help(photo) and "honest" not in explain.sure_help(photo, calibrated=False)
        assert "saved without its \"% sure\" checked" in explain.sure_help(photo, calibrated=False)


def test_a_picture_that_is_no_photo_is_answered_as_a_test_picture_is():
    """A test picture saved and uploaded (32 x 32) was answered by both networks and its mirror image
    whatever, where the test-picture picker answers it by the rule Evaluate measures: the same pixels were
    up to 14 points apart in "% sure"."""
    from cifar_core import data
    bundled, pictures = inference.load_model(), data.load_sample().x_test[:60]
    shown = inference.predict(bundled, pictures)
    uploaded = np.stack([inference.predict_views(bundled, picture[None], (32, 32)) for picture in pictures])
    np.testing.assert_allclose(uploaded, shown, atol=1e-6)


def test_a_pictures_views_are_answered_together_then_tempered(model):
    views = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    each = inference.predict(model, views, calibrated=False, sure_enough=None)
    np.testing.assert_allclose(inference.predict_views(model, views[:1], (32, 32)),
                               inference.predict(model, views[:1])[0], atol=1e-6)     # as a test picture
    try:
        model.calibration_temperature = 0.5
        answer = inference.predict_views(model, views, (32, 32))
        photo = inference.predict_views(model, views, (40, 33))
    finally:
        del model.calibration_temperature
    np.testing.assert_allclose(answer, evaluation.with_temperature(each.mean(axis=0, keepdims=True), 0.5)[0],
                               atol=1e-6)
    assert answer.shape == (10,) and abs(answer.sum() - 1) < 1e-5
    # A photo's answer: the same average, evened out by PHOTO_BIAS, then a higher temperature.
    logits = (np.log(each.mean(axis=0)) + inference.PHOTO_BIAS) / (0.5 * inference.PHOTO_TEMPERATURE)
    np.testing.assert_allclose(photo, np.exp(logits) / np.exp(logits).sum(), atol=1e-6)


def test_a_photo_is_evened_out_against_the_classes_models_see_too_often_in_photos(model):
    # Equal answers for every class stay level only before the bias: on a photo, the classes CIFAR-10
    # models over-answer (airplane, automobile, cat) fall behind the ones they under-answer.
    bias = np.array(inference.PHOTO_BIAS)
    level = inference.evened(np.full(10, 0.1))
    assert abs(level.sum() - 1) < 1e-6 and level.argmax() == bias.argmax()
    assert level[[0, 1, 3]].max() < 0.1 < level[[4, 6, 9]].min()
    assert [inference.is_photo(*size) for size in [(32, 32), (32, 4000), (33, 33), (4000, 3000)]] == \
        [False, False, True, True]


def test_only_pictures_the_model_is_unsure_of_are_shown_again_mirrored():
    from cifar_core import data, fast_inference
    bundled, pictures = inference.load_model(), data.load_sample().x_test[:300]
    network = fast_inference.networks(bundled)[0]       # one trained network, its temperature the pair's
    plain = inference.predict(network, pictures, mirror=False, calibrated=False)
    mirrored = inference.predict(network, pictures[:, :, ::-1], mirror=False, calibrated=False)
    network.calibration_temperature = bundled.calibration_temperature
    sure = evaluation.with_temperature(plain, network.calibration_temperature).max(axis=1) >= evaluation.SURE_ENOUGH
    assert 0.5 < sure.mean() < 0.95       # the test pictures hold both
    answers = inference.predict(network, pictures, calibrated=False)
    assert np.array_equal(answers[sure], plain[sure])
    np.testing.assert_allclose(answers[~sure], (plain[~sure] + mirrored[~sure]) / 2, atol=1e-6)
    np.testing.assert_allclose(inference.predict(network, pictures, calibrated=False, sure_enough=None),
                               (plain + mirrored) / 2, atol=1e-6)
    # Worked out from answers already there, the same to the last bit.
    assert np.array_equal(inference.predict(network, pictures, plain=plain), inference.predict(network, pictures))


def test_networks_side_by_side_look_first_with_the_first_alone():
    from cifar_core import data, fast_inference
    bundled, pictures = inference.load_model(), data.load_sample().x_test[:300]
    first, second = fast_inference.networks(bundled)
    temperature, own = bundled.calibration_temperature, bundled.first_network_temperature
    assert own == inference.model_card()["first_network_temperature"] != temperature
    alone = [inference.predict(network, pictures, mirror=False, calibrated=False) for network in (first, second)]
    plain = inference.predict(bundled, pictures, mirror=False, calibrated=False)
    mirrored = inference.predict(bundled, pictures[:, :, ::-1], mirror=False, calibrated=False)
    # The networks' answers put together are the pair's own: scores averaged before the softmax.
    np.testing.assert_allclose(inference.together(alone), plain, atol=1e-5)
    first_sure = evaluation.with_temperature(alone[0], own).max(axis=1) >= evaluation.SURE_ENOUGH
    pair_sure = evaluation.with_temperature(plain, temperature).max(axis=1) >= evaluation.SURE_ENOUGH
    assert 0.5 < first_sure.mean() < 0.95 and (~first_sure & pair_sure).any()   # the test pictures hold all three
    answers = inference.predict(bundled, pictures)
    # Where the first network is sure its answer stands, under its own temperature; then the pair's.
    np.testing.assert_allclose(answers[first_sure], evaluation.with_temperature(alone[0], own)[first_sure], atol=1e-5)
    both = ~first_sure & pair_sure
    np.testing.assert_allclose(answers[both], evaluation.with_temperature(plain, temperature)[both], atol=1e-5)
    unsure = ~first_sure & ~pair_sure
    np.testing.assert_allclose(answers[unsure], evaluation.with_temperature((plain + mirrored) / 2, temperature)[unsure],
                               atol=1e-5)
    # Before the temperature, answers the model's temperature alone turns into these (shipped answers are).
    np.testing.assert_allclose(evaluation.with_temperature(inference.predict(bundled, pictures, calibrated=False),
                                                           temperature), answers, atol=1e-5)
    # Every picture mirrored (how temperatures are fitted), every network's answers given, or no temperature
    # of the first network's own: every network on every picture, as one model.
    every = inference.predict(bundled, pictures, calibrated=False, plain=plain)
    np.testing.assert_allclose(every[~pair_sure], ((plain + mirrored) / 2)[~pair_sure], atol=1e-6)
    np.testing.assert_allclose(inference.predict(bundled, pictures, calibrated=False, sure_enough=None),
                               (plain + mirrored) / 2, atol=1e-6)
    bundled.first_network_temperature = None
    assert np.array_equal(inference.predict(bundled, pictures, calibrated=False), every)


def test_predict_from_many_threads_at_once_matches_one_at_a_time(model):
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 256, (16, 32, 32, 3)).astype(np.uint8) for _ in range(8)]
    expected = [inference.predict(model, b) for b in batches]
    results = [None] * len(batches)

    def work(i):
        for _ in range(5):
            results[i] = inference.predict(model, batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_load_model_errors_are_sentences(tmp_path):
    with pytest.raises(inference.ModelError, match="There is no model file"):
        inference.load_model(tmp_path / "none.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(inference.ModelError, match="is not a CIFAR-10 Studio model"):
        inference.load_model(bad)


@pytest.mark.parametrize("picture, classes", [((32, 32, 3), 5), ((64, 64, 3), 10), ((32, 32), 10)])
def test_a_model_that_is_not_for_cifar10_is_refused(tmp_path, picture, classes):
    """Keras loads any model: one of five classes was answered as if its classes were CIFAR-10's first
    five, one for bigger pictures failed deep inside its first forward pass."""
    import keras
    inputs = keras.Input(picture)
    path = tmp_path / "other.keras"
    keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(inputs))).save(path)
    with pytest.raises(inference.ModelError) as error:
        inference.load_model(path)
    assert str(error.value) == (f"{path} is not a CIFAR-10 model: it must take 32 x 32 colour pictures and give "
                                "ten answers, one for each class.")


def test_the_bundled_model_of_two_networks_loads_as_a_cifar10_model():
    from cifar_core import models
    model = inference.load_model()
    assert models.members_of(model) == 2 and model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)


def test_models_no_longer_used_are_freed_with_their_compiled_forward_pass():
    """A server changing models many times must not keep each one (and its graph) alive."""
    import gc
    import weakref

    from cifar_core import models
    while gc.collect():   # models earlier tests left in reference cycles go now, then the copies they
        pass              # served, not in the middle of this count
    gone, compiled_before = [], len(inference._compiled)   # models other tests keep (the bundled one)
    for _ in range(2):
        model = models.build("tutorial")
        first = inference.predict(model, np.zeros((2, 32, 32, 3), np.uint8))
        assert first.shape == (2, 10)
        gone.append(weakref.ref(model))
        del model
    while gc.collect():
        pass
    assert [ref() for ref in gone] == [None, None]
    assert len(inference._compiled) == compiled_before
