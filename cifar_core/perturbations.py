"""Ways to change a picture, to see what fools the model: rotation, light, blur, noise, a patch, a mirror."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps


@dataclass(frozen=True)
class Changes:
    rotation: float = 0.0      # degrees, anticlockwise
    brightness: float = 1.0    # 1 = unchanged, 0 = black
    contrast: float = 1.0      # 1 = unchanged, 0 = flat grey
    blur: float = 0.0          # Gaussian blur radius, in pixels of the 32x32 picture
    noise: float = 0.0         # standard deviation of added noise, in pixel values (0-255)
    patch: tuple[float, float, float] = (0.5, 0.5, 0.0)  # grey square: centre x, centre y, side (fractions)
    mirror: bool = False       # flip left to right


def apply(image: np.ndarray, changes: Changes, seed: int = 0) -> np.ndarray:
    """The (32, 32, 3) uint8 picture with `changes` applied, in a fixed order."""
    picture = Image.fromarray(np.asarray(image, np.uint8))
    if changes.mirror:
        picture = ImageOps.mirror(picture)
    if changes.rotation:
        picture = picture.rotate(changes.rotation, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    picture = ImageEnhance.Brightness(picture).enhance(changes.brightness)
    picture = ImageEnhance.Contrast(picture).enhance(changes.contrast)
    if changes.blur:
        picture = picture.filter(ImageFilter.GaussianBlur(changes.blur))
    out = np.asarray(picture, np.float32)
    if changes.noise:
        out = out + np.random.default_rng(seed).normal(0, changes.noise, out.shape)
    x, y, side = changes.patch
    if side > 0:
        width = max(1, int(round(side * 32)))     # at least a pixel: 0.01 of 32 rounded to none, yet "changed"
        # Wholly on the picture, at its edge for "across" or "down" at 1: a small one there fell off it.
        top, left = (min(max(0, int(round(at * 32 - width / 2))), 32 - width) for at in (y, x))
        out[top:top + width, left:left + width] = 128
    return np.clip(out, 0, 255).round().astype(np.uint8)


def changes_nothing(changes: Changes) -> bool:
    """Whether `changes` leave the picture as it is: the defaults, wherever a square of no size is placed."""
    return (changes if changes.patch[2] > 0 else dataclasses.replace(changes, patch=Changes.patch)) == Changes()
