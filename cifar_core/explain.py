"""Why the model answered as it did: where it looked (Grad-CAM), what it was shown of a photo, and
when its answer deserves little trust.

    gradcam(model, image, class_index) -> (32, 32) float32 in 0..1: how much each place counted
    colourise(heat)                    -> (H, W, 3) uint8 in HEAT_COLOURS (the colour key uses the same)
    blend(picture, heat, opacity)      -> the picture with the coloured heat map laid over it
    outline_crop(image)                -> a photo with what the model was shown of it framed on it
    doubts(image, probabilities, size, drawing) -> sentences for a person: the picture or the answer is doubtful
"""
from __future__ import annotations

import threading
import weakref

import numpy as np
from PIL import Image, ImageDraw

from cifar_core import evaluation, inference

# The "magma" colour map (dark = counted for nothing, pale yellow = counted most): it gets lighter
# all the way up, so it reads the same in greyscale, on a projector and for colour-blind people.
HEAT_COLOURS = ("#000004", "#3b0f70", "#8c2981", "#de4968", "#fe9f6d", "#fcfdbf")
_ANCHORS = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in HEAT_COLOURS], np.float32)

_probes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_probe_lock = threading.Lock()      # a compiled Grad-CAM per model, built and traced once, by one thread


def feature_layer(model):
    """The layer Grad-CAM reads: the last rectified feature maps, the ones the class scores are read from.

    That is Grad-CAM's own choice (Selvaraju et al., 2017: the last convolutional layer's maps A^k after
    their non-linearity). It was measured against finer, earlier maps on 120 real test pictures with
    the bundled model, greying the 25% of each picture its map marked hottest, then the 25% coldest
    (tests/test_predict_explain.py repeats it on 40): the last maps (3 x 3 in the airbench
    nets) took the answer's probability down by 0.49 against 0.03, the raw 7 x 7 convolution before
    them 0.32 against 0.16, the 7 x 7 activations 0.23 against 0.18,
    no better than greying a random quarter (0.48 against 0.47). Coarse and right beats fine and wrong.
    """
    from keras import layers

    def rectified(layer) -> bool:
        if isinstance(layer, layers.Activation):
            return True
        activation = getattr(layer, "activation", None)
        return isinstance(layer, layers.Conv2D) and getattr(activation, "__name__", "linear") != "linear"

    maps = [l for l in model.layers if len(l.output.shape) == 4 and rectified(l)]
    if not maps:
        raise ValueError("This model has no convolutional feature maps to draw a heat map from.")
    return maps[-1]


def grid(model) -> int:
    """How many cells across the Grad-CAM map has before it is spread over the picture."""
    return int(feature_layer(model).output.shape[1])


def _probe(model):
    """Grad-CAM for `model`, compiled: a function of float32 pictures (N, 32, 32, 3) and a class index
    giving each picture's raw map (N, cells, cells). Built and traced once per model, by one thread; a
    traced tf.function may then be called from many threads at once. Compiled because the eager
    version, a 30-layer network forward and back under a tape, spent ~190 ms of a 2-core server's CPU
    in Python for each heat map shown; the graph does the same arithmetic in a few milliseconds."""
    cams = _probes.get(model)
    if cams is None:
        import keras
        import tensorflow as tf
        with _probe_lock:
            cams = _probes.get(model)
            if cams is None:
                names = {l.name for l in model.layers}
                # Grad-CAM differentiates the class score y^c before the softmax: the softmax would mix
                # in every other class (a place that lowers "dog" would count as a place for "cat").
                logits = "logits" in names
                score = model.get_layer("logits").output if logits else model.output
                probe = keras.Model(model.input, [feature_layer(model).output, score])

                def run(images, class_index):
                    with tf.GradientTape() as tape:
                        maps, scores = probe(images, training=False)
                        score = tf.cast(scores[:, class_index], tf.float32)
                        if not logits:      # a model without a logits layer: log p is its logit up to a constant
                            score = tf.math.log(score + 1e-9)
                    # The gradient of the batch's summed scores: each picture's own, as no picture's score
                    # depends on another's at inference (batch normalisation uses its stored statistics).
                    grads = tf.cast(tape.gradient(score, maps), tf.float32)
                    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)   # alpha_k: mean gradient over the map
                    return tf.nn.relu(tf.reduce_sum(weights * tf.cast(maps, tf.float32), axis=-1))   # only what adds

                cams = tf.function(run, input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32),
                                                         tf.TensorSpec([], tf.int32)])
                cams(np.zeros((1, *model.input_shape[1:]), np.float32), np.int32(0))   # trace now, under the lock
                _probes[model] = cams
    return cams


def gradcam(model, image: np.ndarray, class_index: int, mirror: bool = True) -> np.ndarray:
    """Grad-CAM for a (32, 32, 3) uint8 picture and one class: (32, 32) float32, 1 where the picture
    counted most for that class, 0 where it did not count for it at all (or counted against it).

    With `mirror` the map of the mirrored picture, mirrored back, is added: a photo's answer, and the
    answer for any picture the model is unsure of, averages it with its mirror image, so the map
    explains the answer shown (where the model is sure, the mirror image agrees). Both go through the
    network in one call.
    """
    image = np.asarray(image, np.float32)
    pictures = np.stack([image, image[:, ::-1]]) if mirror else image[None]
    maps = np.asarray(_probe(model)(pictures, np.int32(class_index)), np.float32)
    cam = maps[0] + maps[1][:, ::-1] if mirror else maps[0]
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    # Each cell of the map (3 x 3 in the airbench nets) covers many pixels: spread it smoothly over the 32 x 32.
    smooth = np.asarray(Image.fromarray(cam).resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    return np.clip(smooth, 0, 1)


def _interpolate(heat: np.ndarray) -> np.ndarray:
    """Values in 0..1 as colours of HEAT_COLOURS, interpolated evenly between its anchors."""
    position = np.clip(np.asarray(heat, np.float32), 0, 1) * (len(_ANCHORS) - 1)
    low = np.minimum(position.astype(np.int64), len(_ANCHORS) - 2)
    share = (position - low)[..., None]
    return ((1 - share) * _ANCHORS[low] + share * _ANCHORS[low + 1]).round().astype(np.uint8)


# The interpolation worked out once for 4,096 evenly spaced values: looking colours up is 5x faster than
# interpolating each pixel of a 256 x 256 map (1.7 against 8.5 ms, twice per heat map shown), and a
# colour is never more than one step of 255 off.
_LEVELS = 4096
_TABLE = _interpolate(np.linspace(0, 1, _LEVELS))


def colourise(heat: np.ndarray) -> np.ndarray:
    """Values in 0..1 as colours of HEAT_COLOURS, interpolated evenly between its anchors."""
    return _TABLE[(np.clip(np.asarray(heat, np.float32), 0, 1) * (_LEVELS - 1) + 0.5).astype(np.intp)]


def enlarge(heat: np.ndarray, size: int) -> np.ndarray:
    """The 32 x 32 heat map at size x size, smooth (a heat map has no pixels of its own to keep crisp)."""
    return np.asarray(Image.fromarray(np.asarray(heat, np.float32)).resize((size, size), Image.Resampling.BILINEAR))


def hottest_place(heat: np.ndarray) -> str | None:
    """Where a map is strongest, in words a screen reader can say ("the top left", "the middle", "the bottom"),
    or None where no part of it is stronger than another: the ninth of the picture whose average is highest."""
    heat = np.asarray(heat, np.float32)
    if not heat.size or heat.max() <= heat.min():
        return None
    # A map under 3 x 3 leaves some ninths empty: those never count as strongest.
    thirds = [np.array_split(band, 3, axis=1) for band in np.array_split(heat, 3, axis=0)]
    means = [[part.mean() if part.size else -np.inf for part in band] for band in thirds]
    return PLACES[int(np.argmax(means))]


PLACES = ("the top left", "the top", "the top right", "the left", "the middle", "the right",
          "the bottom left", "the bottom", "the bottom right")     # a picture's ninths, row by row


def blend(picture: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """The (S, S, 3) picture with the coloured (S, S) heat map over it, `opacity` 0 (picture only) to 1."""
    opacity = float(np.clip(opacity, 0, 1))
    mixed = (1 - opacity) * np.asarray(picture, np.float32) + opacity * colourise(heat).astype(np.float32)
    return mixed.round().astype(np.uint8)


def outline_crop(image: Image.Image, boxes: tuple[tuple[float, float, float, float], ...] | None = None,
                 display: int = 480) -> np.ndarray:
    """The whole photo, at most `display` pixels across, with what the model was shown of it framed in
    red: the first of `boxes` (by default `inference.view_boxes`), squeezed into the model's square,
    in a thick frame, any parts outside it dimmed (a panorama's ends); each other box in a thin frame."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    boxes = inference.view_boxes(*image.size) if boxes is None else boxes
    scale = min(1.0, display / max(image.size))
    shown = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR) if scale < 1 else image.copy()
    left, top, right, bottom = (v * scale for v in boxes[0])
    pixels = np.asarray(shown, np.float32)
    outside = np.ones(pixels.shape[:2], bool)
    outside[int(round(top)):int(round(bottom)), int(round(left)):int(round(right))] = False
    pixels[outside] = pixels[outside] * 0.4 + 255 * 0.6      # washed out towards white: never seen by the model
    framed = Image.fromarray(pixels.round().astype(np.uint8))
    width = max(2, round(min(shown.size) / 80))
    draw = ImageDraw.Draw(framed)
    for index, box in enumerate(boxes):
        left, top, right, bottom = (v * scale for v in box)
        # At least a pixel each way: a strip a pixel or two across is under one once made smaller to show.
        draw.rectangle((left, top, max(left, right - 1), max(top, bottom - 1)), outline=(255, 43, 43),
                       width=width if index == 0 else max(1, width // 2))
    return np.asarray(framed)


# When to doubt an answer. Measured with the bundled model (calibrated, mirror TTA) on the 10,000 test
# pictures by benchmarks/predict_doubts.py: it is right on 92.1% of them, but on only 48.7% of those where
# its answer is under 55% sure, and on 48.4% of those where the answer leads the runner-up by under 25
# points: a coin toss. Flagging either (1 picture in 20, right on 49%) catches 33% of its mistakes
# while the answers left unflagged are right 94.4% of the time. Its "% sure" is calibrated, so the cut
# is what it says: answers shown 50-60% sure are right 56% of the time.
UNSURE_TOP = 0.55      # the answer's probability below this...
UNSURE_MARGIN = 0.25   # ...or less than this ahead of the runner-up: "unsure"
FLAT_STD = 10.0        # pixel values (0-255) spread less than this: flatter than every one of the 10,000
                       # test pictures (the flattest has 13.9, the 0.1th percentile 17.7)
TINY_SIDE = 16         # a picture narrower than this was blown up from almost nothing before the model saw it

# What "% sure" means, beside the answer. The temperature is fitted on CIFAR-10 pictures, so it holds for
# them; photos are framed, lit and shrunk otherwise, and a model trained on CIFAR-10 leans on them towards
# some classes and is surer than it is right, which the app evens out (inference.PHOTO_BIAS). Figures from
# benchmarks/photos.py --fit, the bundled model as served (int8) on 478 real photos: each set evened as fitted
# on the others, right on 81.6%, calibration error 0.032; with the shipped constants 82.6%, 0.055; on 195 web
# photos gathered after every choice was made, 87.2%, 0.074 (README).
SURE_ON_TEST_PICTURES = ("How sure the model is, from its ten probabilities. On CIFAR-10's own test pictures "
                         "this is honest: answers shown 80% sure are right about 80% of the time.")
SURE_ON_PHOTOS = (SURE_ON_TEST_PICTURES + " A photo is not one of those. On photos, models trained on CIFAR-10 "
                  "say airplane and automobile too often, and often cat too, and frog, truck, deer and dog too "
                  "rarely, and are surer than they are right, so the app evens a photo's answer out (see the "
                  "Glossary). Evened out this way, the bundled model gets about 82% of 478 real photos right, and its "
                  "\"% sure\" is on average 3 to 7 points away from how often it is right, depending on the "
                  "photos. A model trained in a few minutes does worse, and a drawing is further still from what "
                  "any of them knows.")


UNCHECKED_SURE = ("How sure the model is, from its ten probabilities. This model was saved without its \"% sure\" "
                  "checked against how often it is right (no temperature fitted to it), so read it as a rough "
                  "guide: a network trained with label smoothing is less sure than it is right, one without, "
                  "often surer.")


def sure_help(photo: bool, calibrated: bool = True) -> str:
    """The help beside an answer's "% sure": honest on test pictures only where the model's temperature
    was fitted when it was saved; on photos, how far that holds."""
    if not calibrated:
        return UNCHECKED_SURE
    return SURE_ON_PHOTOS if photo else SURE_ON_TEST_PICTURES


def what_sure_means(probability: float, photo: bool, calibrated: bool = True) -> str:
    """One line under an answer's "% sure" saying what it means, for a projector, which has no pointer to
    hover over the answer's help: calibrated on test pictures, a rough guide on photos; never checked for
    a model saved without a temperature."""
    shown = evaluation.sure(probability)
    if not calibrated:
        return (f"\"{shown} sure\" is this model's own figure: it was saved without its \"% sure\" checked "
                "against how often it is right, so read it as a rough guide.")
    if photo:
        return (f"\"{shown} sure\" is a rough guide on a photo: on real photos the bundled model was right "
                "about as often as it was sure, on average; a model trained in minutes less so.")
    share = shown if shown.startswith(("over", "under")) else f"about {shown}"
    return f"Of the answers this model gives {shown} sure on CIFAR-10 test pictures, {share} are right."


# Said beside every answer to a drawing: its "% sure" was measured on test pictures and photos, never on
# drawings, and a scribble can come out 96% sure.
ON_A_DRAWING = ("This is a drawing. The model has only ever seen photos of ten kinds of things, and its "
                "\"% sure\" was measured on photos: for a drawing, the answer and how sure it is mean little.")


def doubts(image: np.ndarray, probabilities: np.ndarray, size: tuple[int, int] | None = None,
           drawing: bool = False) -> list[str]:
    """Plain-language warnings beside an answer: the picture is a `drawing`, is flat, tiny or unlike a
    photo (`unlike_a_photo`), or the model is torn (`torn`). `size` is the picture's own (width, height)
    before it was squeezed into 32 x 32."""
    return also_torn(unlike_a_photo(image, size, drawing), probabilities)


def also_torn(notes: list[str], probabilities: np.ndarray) -> list[str]:
    """The picture's `notes` (`unlike_a_photo`), then the torn note where they leave it unsaid: a picture too
    tiny or too flat to recognise already has its answer called close to a guess, which says all the torn
    note would (three notes said it of a red dot)."""
    guess = any(note.endswith(CLOSE_TO_A_GUESS) for note in notes)
    return notes if guess else notes + torn(probabilities)


CLOSE_TO_A_GUESS = "it may not be one of the ten classes, and the answer is close to a guess."


def torn(probabilities: np.ndarray) -> list[str]:
    """The warning for an answer the model is unsure of, torn between two classes; none for a clear one."""
    from cifar_core.data import CLASS_NAMES
    probabilities = np.asarray(probabilities, np.float64)
    order = np.argsort(probabilities)[::-1]
    top, second = probabilities[order[0]], probabilities[order[1]]
    if top >= UNSURE_TOP and top - second >= UNSURE_MARGIN:
        return []
    # Torn only where the two are close: 53% against 19% is a weak answer, not a choice between two.
    doubt = (f"it is torn between {CLASS_NAMES[order[0]]} ({top:.0%}) and {CLASS_NAMES[order[1]]} ({second:.0%})"
             if top - second < UNSURE_MARGIN else
             f"it is only {top:.0%} sure of {CLASS_NAMES[order[0]]}, though no other class comes close (next, "
             f"{CLASS_NAMES[order[1]]}: {second:.0%})")
    return [f"The model is unsure: {doubt}. This may not be one of the ten classes, or the thing may be small, "
            f"cut off or hard to see at 32 x 32."]


def unlike_a_photo(image: np.ndarray, size: tuple[int, int] | None = None, drawing: bool = False) -> list[str]:
    """Why a picture is not the kind the model's "% sure" was measured on (a `drawing`, tiny, flat, a
    screenshot), each in a sentence; none for a photo. Where there is one, "98% sure" beside "close to a
    guess" would say both: the page says what the figure means only for photos."""
    notes = [ON_A_DRAWING] if drawing else []
    pixels = np.asarray(image, np.float32)
    tiny = size is not None and min(size) < TINY_SIDE
    if tiny:
        notes.append(f"This picture is only {size[0]} x {size[1]} pixels. The model was made for 32 x 32 photos, "
                     f"so this one was blown up and there is almost nothing in it to recognise: {CLOSE_TO_A_GUESS}")
    if pixels.reshape(-1, 3).std(axis=0).max() < FLAT_STD:      # every channel nearly constant
        if not tiny:                # (a tiny one is flat once blown up, and its note says the same)
            notes.append(f"This picture is nearly one flat colour, with no shapes for the model to recognise: "
                         f"{CLOSE_TO_A_GUESS}")
    else:
        saturation = (pixels.max(axis=-1) - pixels.min(axis=-1)).mean()
        extremes = np.mean((pixels.mean(axis=-1) > 235) | (pixels.mean(axis=-1) < 20))
        if saturation < 12 and extremes > 0.5 and not drawing:     # known to be one: said above
            notes.append("This looks more like a drawing, text or a screenshot than a photo. The model only knows "
                         "photos of ten kinds of things, so its answer means little here.")
    return notes
