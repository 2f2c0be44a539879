import io
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from cifar_core import inference
from cifar_core.inference import ImageError


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
    image = inference.load_image(encode(source, fmt))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_sixteen_bit_images_keep_their_contrast():
    ramp = (np.linspace(0, 65535, 64 * 8).reshape(8, 64)).astype(np.uint16)
    source = Image.frombytes("I;16", (64, 8), ramp.astype("<u2").tobytes())
    image = np.asarray(inference.load_image(encode(source, "PNG")))
    assert image.min() == 0 and image.max() == 255


def test_palette_transparency_becomes_white():
    source = Image.new("P", (10, 10), 1)
    source.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pixels = np.asarray(inference.load_image(encode(source, "PNG", transparency=1)))
    assert (pixels == 255).all()
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert (np.asarray(inference.load_image(encode(rgba, "PNG"))) == 255).all()


def test_exif_orientation_is_applied():
    source = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 degrees clockwise to display
    image = inference.load_image(encode(source, "JPEG", exif=exif.tobytes()))
    assert image.size == (30, 40)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    raw = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    pixel = np.asarray(inference.load_image(raw))[4, 4]
    assert pixel[0] > 200 and pixel[2] < 50


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_upload_formats(fmt, tmp_path):
    raw = encode(gradient(), fmt)
    assert inference.load_image(raw).size == (40, 30)
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(raw)
    assert inference.load_image(path).size == (40, 30)
    assert inference.load_image(io.BytesIO(raw)).size == (40, 30)


def test_extreme_shapes_are_fine():
    assert inference.prepare(inference.load_image(encode(Image.new("RGB", (1, 1), "red"), "PNG"))).shape == (32, 32, 3)
    assert inference.prepare(inference.load_image(encode(Image.new("RGB", (5000, 10), "red"), "PNG"))).shape == (32, 32, 3)


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
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG and HEIC are not supported"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "SVG and HEIC are not supported"),
    (_png_claiming(100_000, 100_000), "too large"),
    (_png_claiming(20_000, 10_000), "too large"),
    (_png_claiming(0, 10), "picture"),
])
def test_bad_inputs_get_a_sentence(raw, message):
    with pytest.raises(ImageError, match=message) as e:
        inference.load_image(raw)
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_truncated_jpeg_gets_a_sentence():
    raw = encode(gradient(400, 300), "JPEG")
    with pytest.raises(ImageError, match="damaged or cut short"):
        inference.load_image(raw[: len(raw) // 2])


def test_missing_file_gets_a_sentence(tmp_path):
    with pytest.raises(ImageError, match="Could not read"):
        inference.load_image(tmp_path / "nope.jpg")


def test_prepare_takes_the_centre_square():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)       # left third red
    wide[:, 100:200] = (0, 255, 0)    # centre green
    wide[:, 200:] = (0, 0, 255)       # right third blue
    small = inference.prepare(Image.fromarray(wide))
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    assert (small[:, 4:28, 1] > 240).all() and small[:, 4:28, [0, 2]].max() < 15


def test_prepare_antialiases():
    stripes = np.zeros((320, 320, 3), np.uint8)
    stripes[:, ::2] = 255   # one-pixel stripes average to mid grey, not to black or white
    small = inference.prepare(Image.fromarray(stripes))
    assert 100 < small.mean() < 155 and small.std() < 10


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
