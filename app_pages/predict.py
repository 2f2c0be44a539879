"""Predict: your own pictures (upload, camera, drawing, or a test picture), the answer, and how to fool it."""
import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app_pages import common, inside_parts, predict_parts, upload_budget
from cifar_core import decoding, evaluation, settings
from cifar_core.data import CLASS_NAMES

common.header("predict")
source = st.segmented_control("Picture from", ["Upload", "Camera", "Draw", "Test picture"], default="Upload",
                              required=True, key="predict_source") or "Upload"
picture, name, note = None, "", ""   # picture: a predict_parts.Picture; note: said under its heading

# A full server lets go of the oldest pictures of browsers holding more than an even share of its room, for
# another visitor's (upload_budget.py): said here until this visitor changes their pictures.
if let_go := upload_budget.pictures_let_go_for_room():
    st.session_state["predict_let_go"] = st.session_state.get("predict_let_go", 0) + let_go
if let_go := st.session_state.get("predict_let_go"):
    st.warning(f"The server was full: to make room for other visitors' pictures it let go of {let_go} of yours, "
               f"the oldest, as you held more than an even share of its room. Upload again any you still want "
               f"answered.", icon=":material/info:")


if source == "Upload":
    offered = predict_parts.upload_formats(st.context.headers.get("User-Agent", ""))     # HEIC, or Safari's JPEG
    # Safari makes its JPEG of a HEIC photo chosen with Browse files; one dragged in is checked as it is.
    safari = " (in Safari, choose a HEIC photo with Browse files: it sends a JPEG of it)" if (
        decoding.HEIC and "heic" not in offered) else ""
    # The box's list of the names it takes is cut short with "..." where it does not fit: on a phone, it wraps.
    st.html("<style>.st-key-predict_files [data-testid=stFileUploaderDropzoneInstructions] * "
            "{ white-space: normal; overflow: visible; }</style>")
    files = st.file_uploader("Photos (one or many)", type=offered, accept_multiple_files=True, key="predict_files",
                             help=f"{decoding.READ_HERE}, up to {predict_parts.UPLOAD_LIMIT_MB} MB each{safari}",
                             on_change=predict_parts.pictures_changed)
    # Streamlit stops a file over its own limit in the browser, before sending it, with only a red mark
    # whose words show on hover; a file between our limit and Streamlit's gets a sentence below. Said
    # here in words, in view, so a red mark never goes unexplained.
    limits = settings.get()    # kept by the server's UploadBudget (app_pages/upload_budget.py)
    budget, most = limits.upload_session_mb, limits.upload_session_files
    files = predict_parts.each_once(files, most)     # as a browser sends them, not as a script may
    # The box's own line says Streamlit's limit, which is a little over the app's: both said, and why.
    taken = st.get_option('server.maxUploadSize')
    st.caption(f"Up to {most} pictures at once, {budget} MB in all, each up to {predict_parts.UPLOAD_LIMIT_MB} MB. "
               f"The box says {taken} MB so that a picture just over {predict_parts.UPLOAD_LIMIT_MB} MB is told why in "
               f"a sentence. A file over {taken} MB or of a kind the box does not list, or one past {most} pictures "
               f"or {budget} MB in all, is stopped before it is sent: it gets a red mark in the list and no answer. "
               "Save it smaller or as a JPEG, or remove other pictures (their ×), and upload it again.")
    if len(files) > 1:
        looked_at = st.session_state.get("predict_pick")       # "Look closer at", below: its problem said there
        predict_parts.batch(files, looked_at if any(f.file_id == looked_at for f in files) else files[0].file_id)
        # By upload, not by name: a phone names every photo it shares "image.jpg".
        labels = predict_parts.file_labels(files)
        picked = st.selectbox("Look closer at", list(labels), format_func=labels.get, key="predict_pick")
        files = [f for f in files if f.file_id == picked][:1]
    if files and (refusal := predict_parts.too_big(files[0])):
        st.error(f"{common.plain(files[0].name)}: {refusal}")
    elif files:
        # The file's name as it is, never as Markdown: "$5 deal.jpg" is no formula.
        picture, name = predict_parts.upload(files[0]), common.plain(files[0].name)

elif source == "Camera":
    shot = st.camera_input("Take a photo", key="predict_camera", on_change=predict_parts.pictures_changed)
    if shot and (refusal := predict_parts.too_big(shot)):   # a script can send any file as a camera shot
        st.error(f"The photo: {refusal}")
    elif shot:
        picture, name = predict_parts.upload(shot, "The photo"), "Your photo"

elif source == "Draw":
    # The tools sit beside the canvas, not above it: the canvas's own toolbar (undo, redo, reset) slides
    # up over whatever is just above the canvas's top right corner when the pointer is on it.
    # The colours and Clear share one row, so on a phone, where the tools fall under the canvas, the
    # answer is not pushed a screen further down.
    board, tools = st.columns([2, 3])
    swatches = tools.container(horizontal=True, wrap=True, vertical_alignment="bottom")
    brush = swatches.color_picker("Brush colour", "#1f4e9c", key="predict_brush")
    background = swatches.color_picker("Background", "#8fc3ea", key="predict_background")
    if swatches.button("Clear", icon=":material/delete:"):
        st.session_state["predict_canvas_round"] = st.session_state.get("predict_canvas_round", 0) + 1
    size = tools.slider("Brush size", 2, 60, 18, key="predict_brush_size")
    # The guess in one line beside the canvas (under it on a phone), filled in as soon as it is known (before
    # the heat map below): the one drawing sees it change with every stroke, without scrolling to the answer.
    guess = tools.empty()

    def guessed(probabilities: np.ndarray) -> None:
        best = int(probabilities.argmax())
        guess.markdown(f"The model's guess: **{CLASS_NAMES[best]}**, {evaluation.sure(probabilities[best])} sure. "
                       "For a drawing that figure means little; its whole answer is below.")
    with board:
        st.caption("Draw here:")   # short: the canvas toolbar slides over the right of this line
        drawing = st_canvas(stroke_color=brush, stroke_width=size, background_color=background,
                            height=predict_parts.CANVAS_SIDE, width=predict_parts.CANVAS_SIDE, return_image_data=True,
                            key=f"predict_canvas_{background}_{st.session_state.get('predict_canvas_round', 0)}")
    if not predict_parts.drawn_by_a_person(drawing):     # a script's: a fresh canvas, and Streamlit lets it go
        st.session_state["predict_canvas_round"] = st.session_state.get("predict_canvas_round", 0) + 1
        st.rerun()
    picture, name = predict_parts.drawn(drawing, background), "Your drawing"
    if picture is None:
        st.caption("Draw something (a cat? a ship?) and the model will guess.")

else:
    test = common.dataset()
    # A new one also where the kept one is not in this test set: the data set this page found may change
    # under it (to the 1,000-picture sample, if the full one cannot be read).
    if (st.button("Another picture", icon=":material/shuffle:")
            or not 0 <= st.session_state.get("predict_test_index", -1) < len(test.y_test)):
        st.session_state["predict_test_index"] = int(np.random.default_rng().integers(len(test.y_test)))
    index = st.session_state["predict_test_index"]
    number = test.test_number(index)     # as CIFAR-10 numbers it: the sample's #900 is the download's too
    picture, name = predict_parts.Picture(test.x_test[index], None), f"Test picture #{number}"
    note = f"One of CIFAR-10's test pictures: the right answer is **{CLASS_NAMES[test.y_test[index]]}**."

if picture is not None:
    st.header(name)
    if note:
        st.caption(note)
    # One reading of the model for the answer and the changed picture's: a choice changed in another tab, or
    # a run deleted meanwhile, must not answer the changed copy with another model under this one's answer.
    model = common.active_model_and_id()
    predict_parts.answer(picture.small, "predict", picture.original, views=picture.views, size=picture.size,
                         drawing=source == "Draw", model=model, answered=guessed if source == "Draw" else None)
    inside_parts.link(picture.small, "predict_inside")
    predict_parts.fool(picture.small, "predict", picture.size, picture.views, drawing=source == "Draw", model=model)
