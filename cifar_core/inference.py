"""From any uploaded picture to class probabilities.

    load_image(bytes | path | file)  -> RGB PIL image, or ImageError with a sentence for a person
    prepare(image)                   -> (32, 32, 3) uint8: centre square, antialiased downsampling
    predict(model, images)           -> (N, 10) probabilities; safe to call from many threads
"""
from __future__ import annotations

import io
import json
import os
import threading
import weakref
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cifar_core import evaluation

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.keras"
DEFAULT_CARD = ASSETS / "default.json"
MAX_PIXELS = 50_000_000      # larger images are refused: decoding them could exhaust memory
WORKING_SIZE = 256           # big JPEGs are decoded at reduced size, no smaller than this: plenty for 32x32


class ImageError(ValueError):
    """The input is not an image we can use; the message is a sentence for a person."""


class ModelError(ValueError):
    """The file is not a model we can use; the message is a sentence for a person."""


def _open(source) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        try:
            source = Path(source).read_bytes()
        except OSError as e:
            raise ImageError(f"Could not read {source}: {e.strerror or e}.") from None
    if hasattr(source, "read"):
        source = source.read()
    if not source:
        raise ImageError("The file is empty.")
    try:
        return Image.open(io.BytesIO(source))
    except Image.DecompressionBombError:
        raise ImageError("The picture is far too large to open safely (it could be a decompression bomb).") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not a picture in a format we can read "
                         "(try JPEG, PNG, WebP, GIF, BMP or TIFF; SVG and HEIC are not supported).") from None
    except Exception as e:
        raise ImageError(f"This picture could not be opened ({e}).") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: stretch their own range to 0-255.
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
        image = Image.fromarray(scaled.round().astype(np.uint8), "L")
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white, as most viewers show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source) -> Image.Image:
    """Any picture Pillow reads (bytes, a path or a file object) as an RGB image, upright.

    Animated files give their first frame; photos are turned as their EXIF
    orientation says; very large JPEGs are decoded at reduced size.
    """
    image = _open(source)
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("The picture has no pixels (its width or height is zero).")
    if width * height > MAX_PIXELS:
        raise ImageError(f"The picture is too large ({width} x {height} pixels); "
                         f"please use one under {MAX_PIXELS // 1_000_000} megapixels.")
    try:
        image.seek(0)
        if image.format == "JPEG":
            image.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except Image.DecompressionBombError:
        raise ImageError("The picture is far too large to open safely (it could be a decompression bomb).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"The picture is damaged or cut short and cannot be read ({e}).") from None


def prepare(image: Image.Image) -> np.ndarray:
    """The (32, 32, 3) uint8 picture the model sees: the centre square, downsampled with antialiasing."""
    width, height = image.size
    side = min(width, height)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    small = image.convert("RGB").resize((32, 32), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8)


_trace_lock = threading.Lock()      # tracing a model's forward pass happens once, by one thread
_heatmap_lock = threading.Lock()    # Grad-CAM builds a probe model and a tape: one at a time
_compiled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
CHUNK = 128                         # pictures per forward call: a long pass yields the CPU this often


def _forward(model):
    """The model's forward pass, compiled once per model on TensorFlow (an eager call of a
    30-layer model costs ~20 ms in Python overhead alone); a plain call on other backends.

    Once traced, a compiled function is safe to call from many threads at once,
    so only the first call (the trace) is serialised.
    """
    import keras
    if keras.backend.backend() != "tensorflow":
        return lambda x: model(x, training=False)
    forward = _compiled.get(model)
    if forward is None:
        import tensorflow as tf
        with _trace_lock:
            forward = _compiled.get(model)
            if forward is None:
                forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                                      input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
                forward(np.zeros((1, *model.input_shape[1:]), np.float32))    # trace now, under the lock
                _compiled[model] = forward
    return forward


def predict(model, images: np.ndarray, batch_size: int = CHUNK, mirror: bool = True,
            calibrated: bool = True) -> np.ndarray:
    """Probabilities (N, num_classes) for uint8 images (N, 32, 32, 3) or one image (32, 32, 3).

    With `calibrated`, the model's confidence temperature (fitted on held-out
    training pictures when it was saved, see `load_model`) is applied, so an
    answer shown as 80% sure is right about 80% of the time.

    With `mirror`, each picture is also shown left-right flipped and the two
    answers are averaged (test-time augmentation: a few tenths of a point of
    accuracy for twice the work).

    Keras' Model.predict is not thread-safe (tensorflow/tensorflow#61298) and
    Streamlit serves each browser session from its own thread, so predictions
    go through one compiled forward pass per model, which many threads may
    call at once. No lock is held across a call: one visitor's 10,000-picture
    evaluation, made of small chunks, never makes another's photo wait for it.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"Expected images of shape (N, 32, 32, 3), got {images.shape}.")
    forward = _forward(model)
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size].astype(np.float32)
        if mirror:
            both = np.asarray(forward(np.concatenate([chunk, chunk[:, :, ::-1]])), np.float32)
            outputs.append((both[:len(chunk)] + both[len(chunk):]) / 2)
        else:
            outputs.append(np.asarray(forward(chunk), dtype=np.float32))
    probabilities = np.concatenate(outputs) if outputs else np.zeros((0, 10), np.float32)
    temperature = getattr(model, "calibration_temperature", 1.0) if calibrated else 1.0
    return evaluation.with_temperature(probabilities, temperature)


def load_model(path: str | os.PathLike | None = None):
    """A saved .keras model (the bundled default when path is None), or ModelError."""
    import keras
    path = Path(path) if path else DEFAULT_MODEL
    if not path.exists():
        raise ModelError(f"There is no model file at {path}.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ModelError(f"{path} is not a CIFAR-10 Studio model we can load ({type(e).__name__}).") from None
    model.calibration_temperature = temperature_for(path)
    return model


def temperature_for(path: str | os.PathLike) -> float:
    """The confidence temperature fitted when the model was saved: in its card (`x.json` beside
    `x.keras`) or, for a run's checkpoint, in the run's status.json; 1 (as trained) when there is none."""
    path = Path(path)
    sources = [path.with_suffix(".json")] + ([path.parent / "status.json"] if path.name == "model.keras" else [])
    for source in sources:
        try:
            value = json.loads(source.read_text()).get("temperature")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.05 <= value <= 20:
            return float(value)
    return 1.0


def model_card(path: str | os.PathLike | None = None) -> dict:
    """The JSON card beside a model (architecture, data, accuracy...), or {} if it has none."""
    card = Path(path).with_suffix(".json") if path else DEFAULT_CARD
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def heatmap(model, image: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM: where in a (32, 32, 3) picture the model looked for `class_index`, as (32, 32) in 0..1.

    A late convolution's feature maps, weighted by how much the class's
    score (its logit) rises with each of them, summed and kept where positive.
    """
    import keras
    import tensorflow as tf
    conv = _last_conv(model)
    score = model.get_layer("logits").output if "logits" in {l.name for l in model.layers} else model.output
    probe = keras.Model(model.input, [conv.output, score])
    with _heatmap_lock, tf.GradientTape() as tape:
        maps, scores = probe(np.asarray(image, np.float32)[None], training=False)
        target = scores[:, class_index] if score is not model.output else tf.math.log(scores[:, class_index] + 1e-9)
    grads = tape.gradient(target, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))[0].numpy().astype(np.float32)
    cam = cam / cam.max() if cam.max() > 0 else cam
    return np.asarray(Image.fromarray(cam).resize((32, 32), Image.Resampling.BILINEAR))


def _last_conv(model, min_size: int = 7):
    """The last convolution whose maps are at least `min_size` pixels across: a finer map than the
    very last one (3 x 3 in the airbench nets), still deep enough to see objects."""
    from keras import layers
    convs = [l for l in model.layers if isinstance(l, layers.Conv2D) and l.name != "whiten"]
    return next((l for l in reversed(convs) if l.output.shape[1] >= min_size), convs[-1])


def doubts(image: np.ndarray, probabilities: np.ndarray) -> list[str]:
    """Plain-language warnings about a prediction: the model is unsure, or the picture is unlike CIFAR-10."""
    from cifar_core.data import CLASS_NAMES
    notes = []
    order = np.argsort(probabilities)[::-1]
    top, second = probabilities[order[0]], probabilities[order[1]]
    if top < 0.5 or top - second < 0.15:
        notes.append(f"The model is unsure: it is torn between {CLASS_NAMES[order[0]]} ({top:.0%}) "
                     f"and {CLASS_NAMES[order[1]]} ({second:.0%}).")
    pixels = np.asarray(image, np.float32)
    saturation = (pixels.max(axis=-1) - pixels.min(axis=-1)).mean()
    extremes = np.mean((pixels.mean(axis=-1) > 235) | (pixels.mean(axis=-1) < 20))
    if saturation < 12 and extremes > 0.5:
        notes.append("This looks more like a drawing, text or a screenshot than a photo. The model only knows "
                     "photos of ten kinds of things, so its answer means little here.")
    return notes
