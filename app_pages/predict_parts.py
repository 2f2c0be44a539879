"""The pieces of the Predict page: one picture's answer, the heat map, the fooling sliders, a batch table."""
from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import common
from cifar_core import charts, inference, perturbations
from cifar_core.data import CLASS_NAMES


def picture(raw: bytes, name: str, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray | None:
    """The model's input for an uploaded, photographed or drawn file; None, with the reason on the page,
    if it is not a usable picture. Every picture goes through load_image, which bounds what it may cost."""
    try:
        return inference.prepare(inference.load_image(raw, background))
    except inference.ImageError as e:
        st.error(f"{name}: {e}")
    except Exception:   # load_image raises only ImageError; should that ever break, a sentence, not a traceback
        logging.getLogger(__name__).exception("Reading %s failed", name)
        st.error(f"{name}: this picture could not be read.")
    return None


def drawn(drawing, background: str) -> np.ndarray | None:
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
    image = picture(raw, "The drawing", colour) if raw else None
    return image if image is not None and (image != image[0, 0]).any() else None   # all background: nothing drawn


def overlay(image: np.ndarray, heat: np.ndarray, factor: int = 8) -> np.ndarray:
    """The picture with the heat map laid over it: red-yellow where the model looked."""
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255
    alpha = 0.6 * heat[..., None]
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colour
    return charts.upscale(mixed.round().astype(np.uint8), factor)


def answer(image: np.ndarray, key: str) -> np.ndarray:
    """Show what the model sees and what it answers for a (32, 32, 3) picture; return the probabilities."""
    model = common.active_model()
    probabilities = inference.predict(model, image)[0]
    best = int(probabilities.argmax())
    seen, said = st.columns([2, 3])
    with seen:
        show_heat = st.toggle("Show where it looked (Grad-CAM)", key=f"{key}_heat")
        if show_heat:
            target = st.selectbox("Heat map for", CLASS_NAMES, index=best, key=f"{key}_heat_class")
            picture = overlay(image, inference.heatmap(model, image, CLASS_NAMES.index(target)))
            caption = f"Red and yellow: the parts that made it think \"{target}\""
        else:
            picture, caption = charts.upscale(image, 8), "What the model sees: 32 x 32 pixels"
        st.image(picture, caption=caption)
    with said:
        st.metric("The model says", f"{CLASS_NAMES[best]}, {probabilities[best]:.0%} sure")
        for note in inference.doubts(image, probabilities):
            st.warning(note)
        st.altair_chart(charts.probabilities(probabilities), width="stretch")
    return probabilities


def fool(image: np.ndarray, key: str) -> None:
    """Sliders that change the picture; the answer follows as they move."""
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
        mirror=right.toggle("Mirror", key=f"{key}_mirror"))
    if changes == perturbations.Changes():
        st.caption("Move a slider to change the picture.")
        return
    answer(perturbations.apply(image, changes), f"{key}_fooled")


def batch(files) -> None:
    """Several uploads at once: a table of thumbnails and answers, and a CSV of it."""
    model = common.active_model()
    rows = []
    for file in files:
        try:
            image = inference.prepare(inference.load_image(file.getvalue()))
        except Exception as e:   # ImageError's sentence; anything else (a bug) must not hide the other rows
            problem = str(e) if isinstance(e, inference.ImageError) else "This picture could not be read."
            rows.append({"picture": None, "file": file.name, "class": None, "confidence": None, "problem": problem})
            continue
        probabilities = inference.predict(model, image)[0]
        best = int(probabilities.argmax())
        rows.append({"picture": charts.data_uri(charts.upscale(image, 2)), "file": file.name,
                     "class": CLASS_NAMES[best], "confidence": float(probabilities[best]), "problem": None,
                     **{f"p({name})": float(p) for name, p in zip(CLASS_NAMES, probabilities)}})
    table = pd.DataFrame(rows)
    st.dataframe(table[["picture", "file", "class", "confidence", "problem"]], hide_index=True,
                 column_config={"picture": st.column_config.ImageColumn(width="small"),
                                "confidence": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)})
    csv = io.StringIO()
    table.drop(columns=["picture"]).to_csv(csv, index=False)
    st.download_button("Download the table (CSV)", csv.getvalue(), "predictions.csv", mime="text/csv",
                       icon=":material/download:")
