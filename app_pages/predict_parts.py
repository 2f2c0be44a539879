"""The pieces of the Predict page: one picture's answer and why, the heat map, the fooling sliders, a batch table."""
from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import secrets
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app_pages import chart_specs, common
from cifar_core import charts, decoding, evaluation, explain, inference, models, perturbations
from cifar_core.data import CLASS_NAMES

# The largest picture a visitor may upload. .streamlit/config.toml lets Streamlit take a little more
# (server.maxUploadSize), because a file over Streamlit's own limit gets only a red icon whose
# message shows on hover; a file between the two limits is refused here, in a sentence on the page.
UPLOAD_LIMIT_MB = 20
SHOWN = 256    # pixels across for the 32 x 32 picture and its heat maps: 8 screen pixels per picture pixel
LOADED_KEY = "predict_loaded"   # session state: (the upload's file_id, its Picture or the sentence refusing it)
FRAMED_KEY = "predict_framed"   # session state: (the picture, the boxes framed on it, its framed JPEG)
DRAWN_KEY = "predict_drawn"       # session state: (the drawing's digest, its Picture or the sentence refusing it)
DRAWING_LIMIT = 2 << 20           # bytes: a 320 x 320 canvas as PNG is at most 410 KB, about 550 KB as a data URL
ROWS_KEY = "predict_rows"       # session state: (the model's id, {an upload's file_id: its batch-table row})
VIEWS_KEY = "predict_views"     # session state: {an upload's file_id: its views and size, or why it has none}

# Browsers other than Safari (these names in their user agent) cannot turn a HEIC photo into a JPEG.
_NOT_SAFARI = re.compile(r"Chrome|Chromium|CriOS|Edg|OPR|Firefox|FxiOS")


def upload_formats(user_agent: str) -> list[str]:
    """The file types the uploader offers this browser. Safari on a Mac offered HEIC sends a HEIC photo as it
    is; not offered it, it sends a JPEG it makes of it, which the server decodes at an eighth in 0.03 s where
    a HEIC takes 0.2 s read from its preview (`decoding.PREVIEW_SMALLEST`), 0.9 s decoded whole.
    On an iPhone or an iPad every browser sends a JPEG either way; the others on a computer cannot make
    one, so they are offered HEIC, which they would otherwise grey out."""
    heic = decoding.HEIC and not ("Macintosh" in user_agent and "Safari/" in user_agent
                                  and not _NOT_SAFARI.search(user_agent))
    # Every name such a file goes by: a JPEG named otherwise was stopped in the browser with "image/jpeg
    # files are not allowed". The box's list of them takes two lines on a phone.
    return [*JPEG_NAMES, "png", "webp", "avif", *(HEIF_NAMES if heic else []), "gif", "bmp", "tif", "tiff"]


# .jfif: how Chrome and Edge on Windows saved a JPEG from the web for years; .jpe: an older short name.
JPEG_NAMES = ["jpg", "jpeg", "jfif", "jpe"]
# .heif: HEIC's other name, on some Android phones; .hif: how Canon's and Fujifilm's cameras name theirs.
HEIF_NAMES = ["heic", "heif", "hif"]


SHOWN_LONGEST = 1024   # pixels: the longest side of the copy of a picture a visitor's page keeps to show


@dataclass
class Picture:
    small: np.ndarray              # (32, 32, 3) uint8: what the model gets (the whole picture, squeezed)
    original: Image.Image | None   # the picture as loaded, for the frames on it: at most SHOWN_LONGEST long
    views: np.ndarray | None = None  # (K, 32, 32, 3): every square the model is shown (inference.views)
    size: tuple[int, int] | None = None   # the picture's size as loaded (load_image reduces big ones)


def _to_show(image: Image.Image) -> Image.Image:
    """The copy of a loaded picture kept in a visitor's session to show: load_image keeps a long, thin
    one up to 4,096 pixels long (6 MB), from an upload of a few KB, for as long as the session lasts."""
    factor = -(-max(image.size) // SHOWN_LONGEST)
    return image.reduce(factor) if factor > 1 else image


def pictures_changed() -> None:
    """The uploads or the camera's photo changed: the note that pictures were let go for room is done.
    (A module function: one defined in the page's script would hold that run's variables in the session.)"""
    st.session_state.pop("predict_let_go", None)


def too_big(file) -> str | None:
    """The sentence refusing an upload over UPLOAD_LIMIT_MB, or None if it is small enough."""
    size = getattr(file, "size", 0)
    if size <= UPLOAD_LIMIT_MB * 2**20:
        return None
    megabytes = round(size / 2**20, 1)
    if megabytes <= UPLOAD_LIMIT_MB:     # 20.04 MB was "20.0 MB" beside "up to 20 MB": rounded up instead
        megabytes = math.ceil(size / 2**20 * 10) / 10
    return (f"This file is {megabytes:.1f} MB; pictures of up to {UPLOAD_LIMIT_MB} MB can be read. "
            f"Save it smaller (a phone photo is usually 2 to 6 MB) and upload it again.")


def _read(raw: bytes, name: str, background: tuple[int, int, int]) -> Picture | str:
    """The picture, or the sentence saying why it cannot be used. Every picture goes through
    load_image, which bounds what it may cost."""
    try:
        original = decoding.load_image(raw, background)
        views = inference.views(original)
        return Picture(views[0], _to_show(original), views, original.size)
    except decoding.ImageError as e:
        return f"{common.plain(name)}: {e}"      # a file's name as it is, never as Markdown
    except Exception:   # load_image raises only ImageError; should that ever break, a sentence, not a traceback
        logging.getLogger(__name__).exception("Reading %s failed", name)
        return f"{common.plain(name)}: this picture could not be read."


def _shown(result: Picture | str) -> Picture | None:
    if isinstance(result, str):
        st.error(result)
        return None
    return result


def load(raw: bytes, name: str, background: tuple[int, int, int] = (255, 255, 255)) -> Picture | None:
    """The model's input for an uploaded, photographed or drawn file, with the picture it came from;
    None, with the reason on the page, if it is not a usable picture."""
    return _shown(_read(raw, name, background))


def upload(file, name: str | None = None) -> Picture | None:
    """`load` for an uploaded file (or a camera shot), read once per upload: every widget moved after
    the answer reruns the page, and decoding a 12-megapixel JPEG again each time cost ~30 ms of the
    server's CPU. Only this visitor's latest upload is kept: a picture at most a few hundred pixels
    across (load_image reduces big ones) and its 32 x 32."""
    kept = st.session_state.get(LOADED_KEY)
    if kept is None or kept[0] != file.file_id:
        picture = _read(file.getvalue(), name or file.name, (255, 255, 255))
        kept = st.session_state[LOADED_KEY] = (file.file_id, picture)
    return _shown(kept[1])


CANVAS_SIDE = 320                # pixels: the Predict page's canvas


def canvas_png(raw: bytes) -> bool:
    """Whether `raw` is what a canvas sends: a PNG no larger than the canvas, on a screen of up to 4
    device pixels to one. Anything else came from a script; a run-length BMP the same size is decoded a
    pixel at a time in Python (0.4 s of the server's CPU, again with every new one)."""
    if not raw.startswith(decoding.PNG_SIGNATURE) or raw[12:16] != b"IHDR":
        return False
    width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    return 0 < width <= 4 * CANVAS_SIDE and 0 < height <= 4 * CANVAS_SIDE


MAX_STROKES = 5_000     # a drawing's shapes: a class's longest drawing has a few hundred strokes


def drawn_by_a_person(drawing) -> bool:
    """Whether the canvas's value is one a person's drawing makes: a script may send a million shapes, kept
    in the session while the canvas stays on the page (a drawing's value is a shape for each stroke)."""
    shapes = getattr(drawing, "json_data", None)
    objects = shapes.get("objects") if isinstance(shapes, dict) else None
    return objects is None or (isinstance(objects, list) and len(objects) <= MAX_STROKES)


def drawn(drawing, background: str) -> Picture | None:
    """A canvas drawing on its background colour as the model's input; None while nothing is drawn.

    The browser sends the canvas as a PNG (transparent where untouched), so it is read like an upload:
    a visitor's browser could send any file in its place."""
    from PIL import ImageColor
    if drawing is None:
        return None
    try:
        raw = drawing.image_bytes
        colour = ImageColor.getrgb(background)[:3]
    except (ValueError, TypeError, AttributeError):   # not a data URL, or not a colour
        st.error("The drawing could not be read.")
        return None
    if not raw:
        return None
    if len(raw) > DRAWING_LIMIT or not canvas_png(raw):       # no 320 x 320 canvas makes this: a script sent it
        st.error("The drawing is larger than the canvas can make, so it was not read.")
        return None
    # Read once per drawing, as an upload is: every widget moved below the answer reruns the page.
    digest = hashlib.sha256(raw + bytes(colour)).digest()
    kept = st.session_state.get(DRAWN_KEY)
    if kept is None or kept[0] != digest:
        kept = st.session_state[DRAWN_KEY] = (digest, _read(raw, "The drawing", colour))
    loaded = _shown(kept[1])
    if loaded is None or not (loaded.small != loaded.small[0, 0]).any():   # all background: nothing drawn
        return None
    return loaded


def _framed_jpeg(original: Image.Image, boxes: tuple) -> bytes:
    """The photo with `boxes` (what the model was shown of it) framed, as JPEG bytes, kept for this
    visitor's latest picture: drawing the frame and encoding it took ~18 ms on every rerun of the page.
    Kept with the picture itself (not its id, which a later picture may reuse), so one photo at most per
    visitor."""
    kept = st.session_state.get(FRAMED_KEY)
    if kept is None or kept[0] is not original or kept[1] != boxes:
        buffer = io.BytesIO()
        Image.fromarray(explain.outline_crop(original, boxes)).save(buffer, "JPEG", quality=90)
        kept = st.session_state[FRAMED_KEY] = (original, boxes, buffer.getvalue())
    return kept[2]


def _crop(original: Image.Image, shown: int, size: tuple[int, int]) -> None:
    """The uploaded picture with what the model was shown of it (the first `shown` of
    `inference.view_boxes`) framed on it, and what was cut off (only a long, thin picture's ends are).
    `size`: the picture's size as loaded, which the copy kept to show may be smaller than."""
    # The squares of the picture as the model was given it, in the copy shown's pixels: worked out from the
    # smaller copy itself, a long thin photo answered from two squares was framed with one.
    across, down = original.width / size[0], original.height / size[1]
    boxes = tuple((left * across, top * down, right * across, bottom * down)
                  for left, top, right, bottom in inference.view_boxes(*size)[:shown])
    cut = inference.cut_off(*size)
    squeezed = " squeezed into a square" if size[0] != size[1] else ""
    caption = f"Your picture: the model is shown {'its middle' if cut > 0 else 'all of it'}{squeezed} (red frame)"
    if len(boxes) > 1:
        caption += " and the closer square (thin frame), and averages its two answers"
    st.image(_framed_jpeg(original, boxes), width="stretch", output_format="JPEG", caption=caption,
             alt="your picture, with a red frame around the part the model is shown")
    if cut > 0:
        share = f"{cut:.0%} of it" if cut >= 0.01 else "A sliver of it"
        st.caption(f"{share}, outside the red frame, was cut off: a picture more than {inference.MAX_SQUEEZE:.0f} "
                   f"times as long one way as the other keeps only its middle. If what matters is out there, crop "
                   f"the picture yourself.")


@st.cache_resource(show_spinner=False)
def _heat_key() -> dict:
    """The heat map's colour key as Vega-Lite, once per server: it never changes."""
    return chart_specs.vega_lite(charts.heat_key(explain.HEAT_COLOURS))


def answer(image: np.ndarray, key: str, original: Image.Image | None = None, heat: bool = True,
           views: np.ndarray | None = None, size: tuple[int, int] | None = None,
           drawing: bool = False, model: tuple | None = None, answered=None) -> np.ndarray:
    """Show what the model sees and answers for a (32, 32, 3) picture (and, for an upload, the picture it
    was made from), with the doubts it deserves and where it looked; return the probabilities. `views`,
    every square of an upload the model is shown (`image` is the first): the answer averages them, and
    evens it out if the picture (of `size`, else `original`'s) is a photo (`inference.is_photo`); a photo's
    square given alone (changed to fool the model) is answered as a photo too. A `drawing` is said to be
    one beside its answer. `model`: (its id, the model) as `common.active_model_and_id` read them, where the
    caller answers more than once with one model (the picture and its changed copy), else read here.
    `answered(probabilities)`, if given, is called as soon as they are known, before the rest is drawn."""
    model_id, model = model or common.active_model_and_id()
    size = original.size if size is None and original is not None else size
    photo = size is not None and inference.is_photo(*size)
    views = image[None] if views is None and photo else views
    probabilities = (inference.predict_views(model, views, size) if views is not None
                     else inference.predict(model, image)[0])
    if answered is not None:
        answered(probabilities)
    best = int(probabilities.argmax())
    # A picture smaller than the model's own 32 x 32 has nothing worth framing, unless its ends were cut off.
    framed = original is not None and (min(size) >= 32 or inference.cut_off(*size) > 0)
    original_shown = original if framed else None
    # The pictures in a column of their own, side by side in it even on a phone (which stacks columns): there,
    # the photo and the 32 x 32 view, each a screen wide, put the answer a screen and a half below them.
    pictures, answer = st.columns([5, 4] if original_shown is not None else [2, 4])
    columns = [*(pictures.columns([3, 2], wrap=False) if original_shown is not None else [pictures]), answer]
    if original_shown is not None:
        with columns[0]:
            _crop(original, 1 if views is None else len(views), size)
    squeezed = original is not None and size[0] != size[1]
    seen = ("What the model sees: " + ("your picture squeezed into" if squeezed else "the picture at")
            + " 32 x 32 pixels, the size of every CIFAR-10 picture"
            + ("" if views is None or not photo else ", and softened a little, as they are"
               + (" (the closer square too)" if len(views) > 1 else "")))
    columns[-2].image(charts.png(charts.upscale(image, 8)), width="stretch", output_format="PNG", caption=seen,
                      alt="the picture as the model sees it, 32 by 32 pixels drawn 8 times larger")
    with columns[-1]:
        st.metric("The model says", f"{CLASS_NAMES[best]}, {evaluation.sure(probabilities[best])} sure",
                  help=explain.sure_help(photo, getattr(model, "calibrated", True)))
        # A drawing's, a tiny or a flat picture's answer says beside it how little its "% sure" means.
        unlike = explain.unlike_a_photo(image, size, drawing)
        if not unlike:
            st.caption(explain.what_sure_means(float(probabilities[best]), photo,
                                               getattr(model, "calibrated", True)))
        for note in explain.also_torn(unlike, probabilities):   # `explain.doubts`, the picture's worked out once
            st.warning(note, icon=":material/help:")
        chart_specs.probability_bars(probabilities)
    if st.toggle("Show where it looked (Grad-CAM)", value=heat, key=f"{key}_heat"):
        where(model_id, model, image if views is None else views, probabilities, key)
    return probabilities


def _heat(model_id: tuple, model, image: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM, remembered for this visitor's last few pictures: moving the opacity slider redraws the
    page, and two passes through the network under a gradient tape are the slow part of it."""
    cache = st.session_state.setdefault("predict_heat_cache", {})
    # The model by its file and version (`model_id`, read with `model`), not id(): a dropped model's id may
    # be a new model's; nor read again here, where a choice changed in another tab meanwhile would keep
    # this model's map under that one's name.
    key = (model_id, hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), class_index)
    if key not in cache:
        if len(cache) >= 8:
            cache.pop(next(iter(cache)))
        cache[key] = inference.heatmap(model, image, class_index)
    return cache[key]


# A photo's views (inference.view_boxes), in order, named as the framed photo's caption names them: the first
# is all of it or its middle, squeezed into a square where it is not one, in the red frame.
SQUARES = ("The red frame", "The closer square")


@st.fragment
def where(model_id: tuple, model, pictures: np.ndarray, probabilities: np.ndarray, key: str) -> None:
    """Grad-CAM for a class: the picture, the heat map and the two together, side by side, with a key.
    `pictures`, one (32, 32, 3) picture or every square of a photo the answer averages: each square has
    a heat map of its own, so the one shown is chosen, and said to be one of two.

    A fragment: choosing the class or moving the opacity reruns only this part, not the answer above it."""
    squares = pictures[None] if pictures.ndim == 3 else pictures
    image, named = squares[0], "The picture"
    if len(squares) > 1:
        shown = st.segmented_control("Heat map of", SQUARES[:len(squares)], default=SQUARES[0], required=True,
                                     key=f"{key}_heat_square", help="The answer above averages what the model "
                                     "says of each (the frames on your picture); each has a heat map of its own.")
        named = shown or SQUARES[0]
        image = squares[SQUARES.index(named)]
    choose, fade = st.columns(2)
    # A new picture (or a new answer for it) opens on the map of its own answer: a box with a key keeps its
    # value whatever its `index` says, so every later picture kept the first one's class.
    answered = hashlib.sha1(np.ascontiguousarray(squares).tobytes() + probabilities.tobytes()).hexdigest()
    if st.session_state.get(f"{key}_heat_for") != answered or f"{key}_heat_class" not in st.session_state:
        # (a box not drawn on a run, the map turned off a moment, loses its value: it opens on the answer again)
        st.session_state[f"{key}_heat_for"] = answered
        st.session_state[f"{key}_heat_class"] = CLASS_NAMES[int(probabilities.argmax())]
    target = choose.selectbox("Heat map for", CLASS_NAMES, key=f"{key}_heat_class")
    opacity = fade.slider("How strong the heat map is over the picture", 0.0, 1.0, 0.55, 0.05,
                          key=f"{key}_heat_opacity")
    heat = _heat(model_id, model, image, CLASS_NAMES.index(target))
    plain, big = charts.upscale(image, SHOWN // 32), explain.enlarge(heat, SHOWN)
    # A row that never wraps, of three equal containers: columns stack on a phone (a screen apart there),
    # and columns kept side by side keep a minimum width that ran the third 42 pixels off a phone's screen.
    row = st.container(horizontal=True, wrap=False, gap="small")
    left, middle, right = (row.container() for _ in range(3))
    left.image(charts.png(plain), caption=named, width="stretch", output_format="PNG",
               alt=f"{named.lower()} the heat maps are of, drawn large")
    # Said in words too, where it counted most: the colours alone told a blind student nothing of it.
    place = explain.hottest_place(heat)
    most = f"; it counted most in {place} of the picture" if place else "; no part of it counted more than another"
    middle.image(charts.png(explain.colourise(big)), caption=f"Heat map for \"{target}\"", width="stretch",
                 output_format="PNG", alt=f"Grad-CAM heat map for {target}: pale yellow where the picture counted "
                                          f"most for {target}, dark purple where least{most}")
    right.image(charts.png(explain.blend(plain, big, opacity)), caption="The two together", width="stretch",
                output_format="PNG", alt=f"the picture with its heat map for {target} laid over it{most}")
    st.markdown(f"**Colour key: how much each place counted for \"{target}\"**")
    chart_specs.draw(_heat_key(), width="stretch",
                     alt="Colour key: from black for not at all, through purple and orange, to pale yellow for the "
                         "most.")
    cells = explain.grid(model)
    if heat.max() <= 0:
        st.info(f"No part of this picture counted for \"{target}\": everything in it pointed elsewhere.")
    st.caption(f"Pale yellow and orange: the parts that made it think \"{target}\" most. Dark purple and black: "
               f"parts that did not count for \"{target}\" or counted against it. (Grad-CAM: the network's last "
               f"{cells} x {cells} grid of features, each weighted by how much it raises the score of \"{target}\" "
               f"and spread smoothly over the picture, so it shows regions, not single pixels.) Each map is "
               f"scaled to its own strongest place, so read it with the chance the model gives \"{target}\": "
               f"{evaluation.sure(probabilities[CLASS_NAMES.index(target)])}."
               + (" The answer above is the average of both squares, so one square's map shows only half of why."
                  if len(squares) > 1 else "")
               # The bundled pair answers a test picture its first network is sure of by that one alone.
               + (" This model is two networks side by side: the map is of both together, as they answer a photo "
                  "(a test picture the first is sure of is answered by that network alone)."
                  if models.members_of(model) > 1 else ""))


# Flipping fools it least of all, and here is why: say so, or a student concludes more than is true.
# Not "it learned from mirrored pictures too": the quick, class and tutorial recipes train without them.
MIRROR_HELP = ("Flips the picture left to right. The model already answers a photo or a drawing from the picture "
               "and its mirror image together (and any other picture it is unsure of), so this changes its answer "
               "little or not at all.")


@st.fragment
def fool(image: np.ndarray, key: str, size: tuple[int, int] | None = None, views: np.ndarray | None = None,
         drawing: bool = False, model: tuple | None = None) -> None:
    """Sliders that change the picture; the answer follows as they move, evened out as the picture's was
    if it came from a photo of `size`. Each of its `views` is changed alike and the answers averaged, as
    the answer above was: from one view alone, the smallest move could change the answer. A fragment:
    moving a slider reruns only this part, not the decoding and answer of the picture above it. `model`, as
    `answer` takes it: the one the answer above came from, not read again on a slider's move."""
    st.subheader("Try to fool it")
    left, right = st.columns(2)
    changes = perturbations.Changes(
        rotation=left.slider("Rotate (degrees)", -180, 180, 0, key=f"{key}_rotation"),
        brightness=left.slider("Brightness", 0.0, 2.0, 1.0, 0.05, key=f"{key}_brightness"),
        contrast=left.slider("Contrast", 0.0, 2.0, 1.0, 0.05, key=f"{key}_contrast"),
        blur=left.slider("Blur", 0.0, 3.0, 0.0, 0.1, key=f"{key}_blur"),
        noise=right.slider("Noise", 0, 100, 0, key=f"{key}_noise"),
        patch=(right.slider("Grey square: across", 0.0, 1.0, 0.5, key=f"{key}_patch_x"),
               right.slider("Grey square: down", 0.0, 1.0, 0.5, key=f"{key}_patch_y"),
               right.slider("Grey square: size", 0.0, 1.0, 0.0, key=f"{key}_patch_size")),
        mirror=right.toggle("Mirror", key=f"{key}_mirror", help=MIRROR_HELP))
    if perturbations.changes_nothing(changes):
        st.caption("Move a slider to change the picture.")
        return
    changed_views = None if views is None else np.stack([perturbations.apply(view, changes) for view in views])
    answer(perturbations.apply(image, changes), f"{key}_fooled", heat=False, size=size, views=changed_views,
           drawing=drawing, model=model)


def _decoded(file) -> tuple[np.ndarray, tuple[int, int]] | str:
    """An upload as the model is shown it, (its views, its own size), or the sentence why it cannot be."""
    problem = too_big(file)
    if problem is not None:
        return problem
    try:
        image = decoding.load_image(file.getvalue())
        return inference.views(image), image.size
    except Exception as e:   # ImageError's sentence; anything else (a bug) must not hide the other rows
        return str(e) if isinstance(e, decoding.ImageError) else "This picture could not be read."


def _row(file, decoded, model) -> dict:
    """One upload's row of the batch table; a file that cannot be used gets its reason in "problem", as does
    a picture unlike a photo (tiny, flat, a screenshot) its answer's doubt."""
    row = {"picture": None, "file": file.name, "answer": "", "sure": None, "true class": None, "right?": "",
           "problem": ""}
    if isinstance(decoded, str):
        return {**row, "problem": decoded}
    views, size = decoded
    probabilities = inference.predict_views(model, views, size)
    best = int(probabilities.argmax())
    # As beside a single answer: a tiny, flat or screenshot-like picture's "sure" means little, and an answer
    # the model is torn over is said to be.
    row["problem"] = " ".join(explain.doubts(views[0], probabilities, size))
    return {**row, "picture": charts.data_uri(charts.upscale(views[0], 2)), "answer": CLASS_NAMES[best],
            # Unrounded: the table rounds once, as the answer above the bars does (rounded here first to a
            # tenth, 50.45% showed as 51% beside "50% sure"); the CSV keeps one decimal.
            "sure": 100 * float(probabilities[best]),
            **{f"{name} (%)": 100 * float(p) for name, p in zip(CLASS_NAMES, probabilities)}}


def _rows(files) -> list[dict]:
    """The batch table's rows, each upload read once and answered once per model. Picking a true class in
    the table reruns the page, and reading and answering every upload again cost the server about 60 ms
    of CPU per photo each time; choosing another model in the sidebar answers them again, but reads none.
    Only the current uploads' views (a few 32 x 32 squares each) and rows are kept, and a thumbnail and
    eleven numbers a row: the upload budget already bounds how many there are."""
    kept_views = st.session_state.get(VIEWS_KEY, {})
    views = {file.file_id: kept_views.get(file.file_id) or _decoded(file) for file in files}
    st.session_state[VIEWS_KEY] = views
    model_id, model = common.active_model_and_id()
    kept_id, kept = st.session_state.get(ROWS_KEY, (None, {}))
    if kept_id != model_id:
        kept = {}
    rows = {file.file_id: kept.get(file.file_id) or _row(file, views[file.file_id], model) for file in files}
    st.session_state[ROWS_KEY] = (model_id, rows)
    return [rows[file.file_id] for file in files]


def each_once(files, most: int) -> list:
    """The uploads in `files`, each once, at most `most` of them: a script may name one of its uploads in
    the uploader's state a hundred thousand times, and each would be read and answered (hours of a core)."""
    return list({f.file_id: f for f in files}.values())[:most]


def file_labels(files) -> dict[str, str]:
    """Each upload's file_id -> its name, with its row in the table where another upload has the same name."""
    names = Counter(f.name for f in files)
    return {f.file_id: f.name if names[f.name] == 1 else f"{f.name} (row {row})" for row, f in enumerate(files, 1)}


def picked_classes(edited: dict, rows: int) -> dict[int, str]:
    """The true classes picked in the batch table's `rows` rows, by row number, from its edits as the
    browser sent them: a script may send any row number, and one past the table's end would be added to
    it (thirty thousand of them, minutes of the server's CPU on every rerun), or anything as the class."""
    picked = {}
    for position, change in edited.items():
        row = int(position) if str(position).isdigit() else -1
        if 0 <= row < rows and isinstance(change, dict) and change.get("true class") in CLASS_NAMES:
            picked[row] = change["true class"]
    return picked


def person_could_send(edits, rows: int) -> bool:
    """Whether the batch table's widget state `edits` is one a person can make in it: true classes picked
    (or cleared) in its `rows` rows, nothing else. Streamlit applies whatever a browser sends before the
    page sees the table, rows added to a fixed table included, one at a time: 4,000 empty rows, 16 KB
    sent, were 45 s of the server's CPU on every rerun after, every visitor's page slower with it."""
    if not isinstance(edits, dict) or edits.get("added_rows") or edits.get("deleted_rows"):
        return False
    edited = edits.get("edited_rows") or {}
    return isinstance(edited, dict) and all(
        str(position).isdigit() and int(position) < rows and isinstance(change, dict)
        and set(change) <= {"true class"} and change.get("true class", None) in (None, *CLASS_NAMES)
        for position, change in edited.items())


EDITOR_FRESH_KEY = "predict_batch_fresh"    # session state: bumped to give the table a new, clean widget


def editor_key(files_key: str, rows: int) -> str:
    """The batch table's widget key for the set of files `files_key`: a new one, its edits forgotten, when
    what the browser sent there is nothing a person could send (`person_could_send`)."""
    key = f"{files_key}_{st.session_state.get(EDITOR_FRESH_KEY, 0)}"
    if key in st.session_state and not person_could_send(st.session_state[key], rows):
        # A new key no one can foresee: a counted one let a script send its rows for the next key in the
        # same message as the state that made the page move on to it, and Streamlit applied them.
        st.session_state[EDITOR_FRESH_KEY] = secrets.token_hex(8)
        key = f"{files_key}_{st.session_state[EDITOR_FRESH_KEY]}"
    return key


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The batch table as its columns print it: "sure" in whole percents, the scores to a tenth, none of
    them rounded to certainty or to nothing (`evaluation.kept_off_certainty`)."""
    shown = table.copy()
    shown["sure"] = evaluation.kept_off_certainty(shown["sure"], 0, probabilities=True)
    for column in (c for c in shown if c.endswith(" (%)")):
        shown[column] = evaluation.kept_off_certainty(shown[column], 1, probabilities=True)
    return shown


def as_csv(table: pd.DataFrame) -> str:
    """The batch table as its CSV, without the pictures: percents to a tenth, none rounded to certainty or
    to nothing, as the table shows them (99.96% sure was "100.0" beside "over 99%")."""
    rounded = table.drop(columns=["picture"])
    for column in (c for c in rounded if c == "sure" or c.endswith(" (%)")):
        rounded[column] = evaluation.kept_off_certainty(rounded[column], 1, probabilities=True)
    csv = io.StringIO()
    rounded.rename(columns={"sure": "sure (%)"}).to_csv(csv, index=False, float_format="%.1f")
    return csv.getvalue()


def batch(files, looked_at: str | None = None) -> None:
    """Several uploads at once: a table of thumbnails and answers, where a teacher can pick each picture's
    true class to count the right answers, and a CSV of it. `looked_at`: the upload (its file id) the page
    answers below the table, whose problem is said there rather than twice."""
    table = pd.DataFrame(_rows(files))
    # The key changes with the set of files, so true classes picked for other files do not linger.
    key = editor_key("predict_batch_" + hashlib.sha1("\0".join(f.file_id for f in files).encode()).hexdigest()[:12],
                     len(table))
    for row, name in picked_classes(st.session_state.get(key, {}).get("edited_rows", {}), len(table)).items():
        table.loc[row, "true class"] = name
    labelled = table["true class"].notna() & (table["answer"] != "")
    # Plain words, not emoji: a browser without a colour emoji font shows those as empty boxes.
    table.loc[labelled, "right?"] = np.where(table.loc[labelled, "answer"] == table.loc[labelled, "true class"],
                                             "right", "wrong")
    scores = [f"{name} (%)" for name in CLASS_NAMES if f"{name} (%)" in table]
    st.data_editor(
        # The column to fill in beside the picture and its name: on a phone, the table shows only its first few.
        shown(table[["picture", "file", "true class", "answer", "right?", "sure", "problem", *scores]]),
        key=key, hide_index=True, num_rows="fixed", placeholder="", width="stretch",
        disabled=["picture", "file", "answer", "sure", "right?", "problem", *scores],
        column_config={"picture": st.column_config.ImageColumn(width="small"),
                       # Whole percents, as the answer above the bars prints them ("percent" gave 71% beside 80.3%).
                       "sure": st.column_config.ProgressColumn(
                           "sure", format="%.0f%%", min_value=0, max_value=100,
                           help="How sure the model is of its answer, in whole percents. 99% also stands for "
                                "anything above it short of certain (the answer above the bars says "
                                "\"over 99%\"); the CSV has one decimal."),
                       "true class": st.column_config.SelectboxColumn(
                           "true class", options=list(CLASS_NAMES), width="medium",
                           help="What the picture really shows: pick it to count the model's right answers"),
                       "right?": st.column_config.TextColumn("right?", width="small"),
                       "problem": st.column_config.TextColumn(width="large"),
                       **{name: st.column_config.NumberColumn(
                           format="%.1f%%", help="How sure the model is of this class, to a tenth of a percent: 0.1% "
                                                 "also stands for anything below it, and 99.9% for anything above "
                                                 "it short of certain.") for name in scores}})
    answered = int((table["answer"] != "").sum())
    checked = int(labelled.sum())
    if checked:
        right = int((table.loc[labelled, "answer"] == table.loc[labelled, "true class"]).sum())
        st.markdown(f"**Right on {right} of {evaluation.counted(checked, 'picture')} with a true class** "
                    f"({evaluation.percent(right / checked)}); {answered - checked} answered without one.")
    else:
        st.caption("Pick each picture's true class in the table to count how many the model got right.")
    for i, row in table[table["problem"] != ""].iterrows():     # not read, or answered with a doubt
        if files[i].file_id != looked_at:
            (st.warning if row["answer"] else st.error)(f"{common.plain(row['file'])}: {row['problem']}")
    st.download_button("Download the table (CSV)", as_csv(table), "predictions.csv", mime="text/csv",
                       icon=":material/download:")
