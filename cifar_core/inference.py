"""From a picture to class probabilities.

    prepare(image)                   -> (32, 32, 3) uint8: the picture squeezed into a square, antialiased
    views(image)                     -> (K, 32, 32, 3): what the model is shown of one picture (view_boxes)
    predict(model, images)           -> (N, 10) probabilities; safe to call from many threads
    view_answers(model, views)       -> (10,) one picture's views' answers averaged, as the model gives them
    predict_views(model, views, size) -> (10,) the same as the app shows them: under the model's temperature
                                        and, for a photo (is_photo), evened out (as_photo, PHOTO_BIAS)
    load_model(path)                 -> a saved model, or ModelError with a sentence for a person

The picture itself comes from `decoding.load_image`, which decodes any upload at a bounded cost.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from cifar_core import evaluation, fast_inference, int8, rundir

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.keras"
DEFAULT_CARD = ASSETS / "default.json"

class ModelError(ValueError):
    """The file is not a model we can use; the message is a sentence for a person."""



# A photo is shown to the model twice and the answers averaged: the whole picture squeezed into a square
# (its aspect ratio let go), and a closer centre square, CLOSER times its shorter side (CIFAR-10's
# subjects fill most of their frame; in a photo they are often smaller and the edges hold background).
# Squeezed whole, a wide subject (a truck, a ship, a plane) keeps its ends, which the largest centre
# square cut off: with the same evening out, held out, this pair was right on 81.1% of 477 real photos
# against 78.8% for the largest centre square and the closer one, and ahead for each of seven models
# (docs/measured.md). A panorama is squeezed no more than MAX_SQUEEZE to one, its middle part (the
# photos measured went to 2.7 to one). Pictures too small for the closer square to be larger than 32
# pixels across get the one view.
CLOSER = 0.8
MAX_SQUEEZE = 3.0
# Shrinking a photo to 32 x 32 leaves it sharper than CIFAR-10's pictures, which went through JPEG at
# that size (an edge measure, mean absolute difference of neighbouring grey pixels: 30 on the test set,
# 34 for photos shrunk with Lanczos, 26 after this blur). Softened this much, shrunk photos are classified
# as the training pictures look. Measured on 215 real photos (benchmarks/photos.py).
SOFTEN_RADIUS = 0.5
# Models trained on CIFAR-10 see photos askew, and alike: they answer airplane, automobile and (most of
# them) cat too often (a bird against the sky, a truck on a road, a dog) and deer, frog and (most) truck
# too rarely, and they are surer on photos than they are right. A photo's answer is evened out by
# PHOTO_BIAS, added to its log-probabilities (the bias that gives each class as large a share of the
# bundled model's answers on 477 real photos of the ten classes as any other, each class weighed alike),
# and tempered PHOTO_TEMPERATURE times as much as a test picture. Both are fitted by
# `benchmarks/photos.py --fit`, which also answers each of its three photo sets with the correction
# fitted on the other two: 81.1% right against 79.0% over the 477, and its "% sure" closer to the truth.
# Test pictures and 32 x 32 uploads are answered as before.
PHOTO_BIAS = (-0.40, -0.45, 0.07, -0.34, 0.17, 0.15, 0.40, 0.04, 0.09, 0.27)
PHOTO_TEMPERATURE = 1.01


def crop_box(width: int, height: int, scale: float = 1.0) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a width x height picture's largest centre square, or of `scale`
    times that around the same centre."""
    side = min(width, height) * scale
    return (width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2


def whole_box(width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the part of a width x height picture `prepare` squeezes into a
    square: all of it, or the middle of a long, thin one, its long side MAX_SQUEEZE times its short."""
    long_side = min(max(width, height), min(width, height) * MAX_SQUEEZE)
    across, down = (long_side, height) if width >= height else (width, long_side)
    return (width - across) / 2, (height - down) / 2, (width + across) / 2, (height + down) / 2


def cut_off(width: int, height: int) -> float:
    """The share of a width x height picture outside its `whole_box`: 0 unless it is long and thin."""
    left, top, right, bottom = whole_box(width, height)
    return 1 - (right - left) * (bottom - top) / (width * height)


def prepare(image: Image.Image, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The (32, 32, 3) uint8 picture the model sees: `box` of the picture (by default `whole_box`)
    squeezed into 32 x 32 with antialiasing and, when it was shrunk both ways, softened (SOFTEN_RADIUS),
    as a photo is (`is_photo`)."""
    box = whole_box(*image.size) if box is None else box
    image = image if image.mode == "RGB" else image.convert("RGB")
    small = image.resize((32, 32), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if is_photo(box[2] - box[0], box[3] - box[1]):
        small = small.filter(ImageFilter.GaussianBlur(SOFTEN_RADIUS))
    return np.asarray(small, dtype=np.uint8)


def view_boxes(width: int, height: int) -> tuple[tuple[float, float, float, float], ...]:
    """The parts of a width x height picture the model is shown, each squeezed into 32 x 32: the whole
    picture (`whole_box`) always, the closer centre square (CLOSER) only where it is still larger than 32
    pixels across, and so shrunk and softened as the whole picture is."""
    closer = (crop_box(width, height, CLOSER),) if min(width, height) * CLOSER > 32 else ()
    return (whole_box(width, height), *closer)


def views(image: Image.Image) -> np.ndarray:
    """(K, 32, 32, 3) uint8: the squares one picture is shown to the model as (`view_boxes`), the whole
    picture first."""
    return np.stack([prepare(image, box) for box in view_boxes(*image.size)])


def is_photo(width: int, height: int) -> bool:
    """Whether a width x height picture is shrunk both ways to be shown to the model, and so softened and
    answered as a photo (SOFTEN_RADIUS, PHOTO_BIAS): anything larger than CIFAR-10's 32 x 32 both ways."""
    return min(width, height) > 32


def view_answers(model, pictures: np.ndarray) -> np.ndarray:
    """(num_classes,) the model's own probabilities for one picture from its `views`: each view's answer
    averaged with its mirror image's however sure the model is, before any temperature. The views and
    their mirror images go through the network in one call: for a handful of pictures the cost of a
    call, not the pictures in it, is most of the time (2 views: 8 ms in one call, 13 ms in two), so
    leaving the mirror images out where the model is sure would save little."""
    pictures = np.asarray(pictures)
    both = np.concatenate([pictures, pictures[:, :, ::-1]])
    return predict(model, both, mirror=False, calibrated=False).mean(axis=0)


def evened(probabilities: np.ndarray, bias=None) -> np.ndarray:
    """Probabilities (..., num_classes) with `bias` (PHOTO_BIAS if None) added to their logarithms,
    renormalised."""
    out = np.asarray(probabilities, np.float64) * np.exp(PHOTO_BIAS if bias is None else bias)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def as_photo(probabilities: np.ndarray, temperature: float, bias=None, factor: float | None = None) -> np.ndarray:
    """A photo's probabilities from its averaged view answers (..., num_classes): `evened` by `bias`, then
    under `factor` (PHOTO_TEMPERATURE if None) times the model's `temperature`."""
    return evaluation.with_temperature(evened(probabilities, bias),
                                       temperature * (PHOTO_TEMPERATURE if factor is None else factor))


def predict_views(model, pictures: np.ndarray, size: tuple[int, int], calibrated: bool = True) -> np.ndarray:
    """(num_classes,) probabilities for one picture from its `views` (`view_answers`), under the model's
    temperature. `size`, the picture's own (width, height): a photo's answer is evened out and tempered
    as photos need (`is_photo`, `as_photo`). Without `calibrated`, no temperature at all; a photo is
    still evened out, as that changes which class is the answer. A model saved with no temperature
    answers as trained (1), so its photos get PHOTO_TEMPERATURE itself. A picture that is no photo (one
    view, 32 pixels or fewer across one way) is answered as a test picture is (`predict`): a test picture
    saved and uploaded gets the answer and "% sure" the test-picture picker gave it, where it was up to 14
    points apart."""
    if not is_photo(*size) and len(pictures) == 1:
        return predict(model, pictures, calibrated=calibrated)[0]
    averaged = view_answers(model, pictures)
    if not is_photo(*size):
        return _tempered(averaged[None], model, calibrated)[0]
    if not calibrated:
        return evened(averaged)
    return as_photo(averaged, getattr(model, "calibration_temperature", 1.0))


def together(answers: list[np.ndarray]) -> np.ndarray:
    """Networks' probabilities (each (N, num_classes)) as the answer of the networks side by side: their
    scores averaged before the softmax, which is their probabilities' geometric mean, renormalised."""
    logs = np.mean([np.log(np.maximum(np.asarray(a, np.float64), 1e-30)) for a in answers], axis=0)
    out = np.exp(logs - logs.max(axis=-1, keepdims=True))
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def _tempered(probabilities: np.ndarray, model, calibrated: bool) -> np.ndarray:
    """`probabilities` under the model's confidence temperature (see `load_model`), if `calibrated`."""
    return evaluation.with_temperature(probabilities,
                                       getattr(model, "calibration_temperature", 1.0) if calibrated else 1.0)


_trace_lock = threading.Lock()      # tracing a model's forward pass happens once, by one thread
_compiled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()    # network -> its compiled forward pass
CHUNK = 128                         # pictures per forward call: a long pass yields the CPU this often


def _forward(model):
    """The forward pass `predict` runs for `model` (`fast_inference.network`: a loaded model's faster
    equivalent), compiled once per model on TensorFlow (an eager call of a 30-layer model costs ~20 ms
    in Python overhead alone); a plain call on other backends.

    Once traced, a compiled function is safe to call from many threads at once,
    so only the first call (the trace) is serialised.

    The function reaches its network through a weak reference: the cache is keyed
    weakly by network, and a value holding its own key strongly would keep every
    model ever used (and its compiled graph) alive for the life of the server. A
    served model's copy lives exactly as long as the model, or until it is made
    anew (`fast_inference.refresh`), and its compiled pass with it.
    """
    import keras

    network = fast_inference.network(model)
    if not hasattr(network, "layers"):         # int8 networks (`int8`): numpy in, numpy out, thread-safe
        return network
    if keras.backend.backend() != "tensorflow":
        return lambda x: network(x, training=False)
    forward = _compiled.get(network)
    if forward is None:
        import tensorflow as tf
        with _trace_lock:
            forward = _compiled.get(network)
            if forward is None:
                held = weakref.ref(network)
                forward = tf.function(lambda x: held()(x, training=False), reduce_retracing=True,
                                      input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
                forward(np.zeros((1, *model.input_shape[1:]), np.float32))    # trace now, under the lock
                _compiled[network] = forward
    return forward


def predict(model, images: np.ndarray, batch_size: int = CHUNK, mirror: bool = True,
            calibrated: bool = True, plain: np.ndarray | None = None,
            sure_enough: float | None = evaluation.SURE_ENOUGH) -> np.ndarray:
    """Probabilities (N, num_classes) for uint8 images (N, 32, 32, 3) or one image (32, 32, 3).

    With `calibrated`, the model's confidence temperature (fitted on held-out
    training pictures when it was saved, see `load_model`) is applied, so an
    answer shown as 80% sure is right about 80% of the time.

    With `mirror`, each picture the model is less than `sure_enough` sure of
    (`evaluation.SURE_ENOUGH`, after its temperature; None: every picture)
    is also shown left-right flipped and the two answers are averaged
    (test-time augmentation: a few tenths of a point of accuracy). `plain`,
    the unmirrored answers already worked out (`predict(..., mirror=False,
    calibrated=False)` on the same images), saves that pass: the result is
    the same to the last bit, as the pictures and their mirror images go
    through separate forward calls either way.

    A model of networks side by side (`fast_inference.networks`) whose card
    gives its first network a temperature of its own (`load_model`) looks in
    the same way with `mirror` and `sure_enough`: its first network alone
    first, and where that one is at least `sure_enough` sure (under its own
    temperature) that answer stands, as "% sure" then shows it; only the rest
    are shown to the other networks (and then, where all of them together are
    unsure, mirrored). Given `plain` (every network's), it looks as one model.
    Without `calibrated`, the first network's answers already carry the ratio
    of its temperature to the model's, so the model's alone calibrates them all
    (as the app does with the answers shipped beside a model). On the 10,000
    test pictures the bundled pair's first network is that sure of 67% of them
    and right on 99.0% of those; the pair's accuracy moved by 2 pictures, and
    it answers 1.29-1.36 times the pictures a second (benchmarks/inference.py).
    A photo's views go to every network (`view_answers`: mirror=False).

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
    if plain is not None and len(plain) != len(images):
        raise ValueError(f"{len(plain)} plain answers for {len(images)} images.")

    def answers(network, chosen: np.ndarray, mirrored: bool) -> np.ndarray:
        """`network`'s forward pass's answers for images[chosen], CHUNK pictures a call."""
        forward, out = _forward(network), []
        for start in range(0, len(chosen), batch_size):
            chunk = images[chosen[start:start + batch_size]].astype(np.float32)
            out.append(np.asarray(forward(chunk[:, :, ::-1] if mirrored else chunk), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    def unsure(chosen: np.ndarray) -> np.ndarray:
        """Those of `chosen` whose answer so far, as "% sure" shows it, is under `sure_enough` (all if None)."""
        return chosen if sure_enough is None else \
            chosen[_tempered(probabilities[chosen], model, True).max(axis=1) < sure_enough]

    alone = fast_inference.networks(model) if mirror and sure_enough is not None else []
    first_temperature = getattr(model, "first_network_temperature", None)
    looking = np.arange(len(images))
    if alone and first_temperature and plain is None:
        first = answers(alone[0], looking, False)
        # The first network's answers under its own temperature once the model's is applied (`_tempered`).
        probabilities = evaluation.with_temperature(
            first, first_temperature / getattr(model, "calibration_temperature", 1.0))
        looking = unsure(looking)
        others = [answers(network, looking, False) for network in alone[1:]]
        probabilities[looking] = together([first[looking], *others])
    else:
        probabilities = answers(model, looking, False) if plain is None else np.array(plain, dtype=np.float32)
    if mirror and len(looking):
        mirrored = unsure(looking)
        probabilities[mirrored] = (probabilities[mirrored] + answers(model, mirrored, True)) / 2
    return _tempered(probabilities, model, calibrated)


def load_model(path: str | os.PathLike | None = None):
    """A saved .keras model (the bundled default when path is None), or ModelError. `predict` answers
    for it with an equivalent network this machine runs faster (`fast_inference.serve`): its networks
    in int8 where they were saved beside it (`int8`)."""
    import keras

    path = Path(path) if path else DEFAULT_MODEL
    if not path.exists():
        raise ModelError(f"There is no model file at {path}.")
    if path.is_dir():
        raise ModelError(f"{path} is a folder: name the model's .keras file in it.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception:
        raise ModelError(f"{path} is not a CIFAR-10 Studio model we can load: not a .keras file, or a damaged "
                         "one.") from None
    check_cifar10(model, path)      # before anything runs it
    fast_inference.serve(model, int8.load(model, path))
    fitted = temperature_for(path, missing=None)
    model.calibration_temperature = 1.0 if fitted is None else fitted
    model.calibrated = fitted is not None      # its "% sure" checked against how often it is right
    if fast_inference.networks(model):          # networks side by side: the first looks alone first (`predict`)
        model.first_network_temperature = temperature_for(path, FIRST_NETWORK_TEMPERATURE, None)
    return model


def check_cifar10(model, path) -> None:
    """ModelError unless `model` takes (N, 32, 32, 3) pictures and gives ten answers. Keras loads any
    model: one of five classes was answered with CIFAR-10's names for them, one of 64x64 pictures
    failed deep inside its first forward pass."""
    try:
        takes, gives = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError, TypeError):     # no single input or output to speak of
        takes = gives = None
    if takes != (None, 32, 32, 3) or gives != (None, 10):
        raise ModelError(f"{path} is not a CIFAR-10 model: it must take 32 x 32 colour pictures and give ten "
                         "answers, one for each class.")


FIRST_NETWORK_TEMPERATURE = "first_network_temperature"     # in the card of networks side by side (`combine`)


def temperature_for(path: str | os.PathLike, key: str = "temperature", missing: float | None = 1.0) -> float | None:
    """The confidence temperature fitted when the model was saved: in its card (`x.json` beside
    `x.keras`) or, for a run's checkpoint, in the run's status.json; `missing` (1: as trained) when there
    is none. `key`, another temperature the card holds (FIRST_NETWORK_TEMPERATURE)."""
    path = Path(path)
    for source in (path.with_suffix(".json"), *_run_status(path)):
        try:
            value = json.loads(source.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.05 <= value <= 20:
            return float(value)
    return missing


def _run_status(path: Path) -> list[Path]:
    """A run's status.json, for a run's checkpoint (`x/model.keras`, see `rundir`); none for other models."""
    return [path.parent / rundir.STATUS] if path.name == rundir.MODEL else []


def model_version(path: str | os.PathLike) -> float:
    """The newest modification time of the model file at `path`, its card and its int8 networks, and for a
    run's checkpoint its status.json: what answers from it may be kept under, since `quantize` gives a
    saved model new networks and a new card (temperatures) without touching the model file, and a run
    writes its temperature into status.json after its last checkpoint (`temperature_for`)."""
    path = Path(path)
    times = [path.stat().st_mtime]          # OSError when the model file is gone
    for beside in (path.with_suffix(".json"), int8.companion(path), *_run_status(path)):
        with contextlib.suppress(OSError):
            times.append(beside.stat().st_mtime)
    return max(times)


def model_card(path: str | os.PathLike | None = None) -> dict:
    """The JSON card beside a model (architecture, data, accuracy...), or {} if it has none."""
    card = Path(path).with_suffix(".json") if path else DEFAULT_CARD
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError):     # unreadable, not UTF-8, not JSON
        return {}


def heatmap(model, image: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM: where in a (32, 32, 3) picture the model looked for `class_index`, as (32, 32) in 0..1
    (see `explain.gradcam`)."""
    from cifar_core import explain
    return explain.gradcam(model, image, class_index)


def doubts(image: np.ndarray, probabilities: np.ndarray, size: tuple[int, int] | None = None) -> list[str]:
    """Plain-language warnings about a prediction (see `explain.doubts`)."""
    from cifar_core import explain
    return explain.doubts(image, probabilities, size)
