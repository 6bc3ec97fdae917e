"""Logo augmentations for contrastive pairs: a mark on white, unless a register edit says not.

The same trademark is filed in colour, in black, inverted, rotated, re-scaled, cropped and
partly hidden by other elements; each augmentation imitates one of those. All randomness comes
from the ``random.Random`` passed in, so a view is a pure function of (image, seed): a resumed
run sees exactly the views an uninterrupted one would have.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from pydantic import BaseModel, Field

from logosim.train import register_edits as edits
from logosim.train.register_edits import WHITE, mark_mask


class AugmentParams(BaseModel):
    rotation_degrees: float = Field(20.0, ge=0, le=180, description="Max rotation either way.")
    scale: tuple[float, float] = Field((0.6, 1.0), description="Mark size on its canvas.")
    crop_area: tuple[float, float] = Field((0.6, 1.0), description="Kept area of a crop.")
    jitter: float = Field(0.4, ge=0, le=1, description="Brightness/contrast/saturation.")
    hue: float = Field(0.1, ge=0, le=0.5, description="Max hue shift (fraction of a turn).")
    p_jitter: float = Field(0.8, ge=0, le=1)
    p_grayscale: float = Field(0.2, ge=0, le=1)
    p_monochrome: float = Field(0.15, ge=0, le=1, description="The mark drawn in black.")
    p_invert: float = Field(0.15, ge=0, le=1, description="Mark colours inverted, bg white.")
    p_occlusion: float = Field(0.3, ge=0, le=1)
    occlusion_area: tuple[float, float] = Field((0.05, 0.2))
    # Register edits (register_edits.py); 0 leaves a run's views exactly as before them.
    p_mirror: float = Field(0.0, ge=0, le=1)
    p_quarter_turn: float = Field(0.0, ge=0, le=1, description="Turned 90, 180 or 270 degrees.")
    p_stretch: float = Field(0.0, ge=0, le=1)
    stretch_ratio: float = Field(1.6, ge=1, description="Strongest squeeze of one axis.")
    p_outline: float = Field(0.0, ge=0, le=1, description="Mark redrawn as contour lines.")
    outline_supersample: int = Field(
        1, ge=1, le=4, description="Contour lines 1/k px wide (traced at k× size, shrunk back)."
    )
    p_wordmark: float = Field(0.0, ge=0, le=1, description="Mark shrunk beside a word.")
    p_banner: float = Field(0.0, ge=0, le=1, description="A band with a word across the mark.")
    p_ground: float = Field(0.0, ge=0, le=1, description="Coloured instead of white ground.")
    p_frame: float = Field(0.0, ge=0, le=1)
    p_degrade: float = Field(0.0, ge=0, le=1, description="Blur, JPEG, noise, posterise, low res.")
    p_badge: float = Field(0.0, ge=0, le=1, description="Mark knocked out of a coloured badge.")
    p_weight: float = Field(0.0, ge=0, le=1, description="Strokes drawn bolder or lighter.")


def rotate(image: Image.Image, rng: random.Random, degrees: float) -> Image.Image:
    angle = rng.uniform(-degrees, degrees)
    return image.rotate(angle, Image.Resampling.BILINEAR, expand=False, fillcolor=WHITE)


def rescale(image: Image.Image, rng: random.Random, low: float, high: float) -> Image.Image:
    """Shrink the mark on a white canvas of the same size, at a random position."""
    factor = rng.uniform(low, high)
    width, height = image.size
    return edits.on_white(
        image,
        (round(width * factor), round(height * factor)),
        lambda w, h: (rng.randint(0, width - w), rng.randint(0, height - h)),
    )


def crop(image: Image.Image, rng: random.Random, low: float, high: float) -> Image.Image:
    """A random square-ish crop keeping ``low``..``high`` of the area, resized back."""
    width, height = image.size
    area = rng.uniform(low, high) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w = min(width, max(1, round((area * aspect) ** 0.5)))
    h = min(height, max(1, round((area / aspect) ** 0.5)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    return image.crop((left, top, left + w, top + h)).resize(image.size, Image.Resampling.BILINEAR)


def colour_jitter(
    image: Image.Image, rng: random.Random, strength: float, hue: float
) -> Image.Image:
    """Brightness, contrast, saturation and hue of the mark; the background stays white."""
    background = ~mark_mask(np.asarray(image))
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(1 - strength, 1 + strength))
    if hue > 0:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(rng.uniform(-hue, hue) * 255)) % 256
        image = Image.fromarray(hsv, mode="HSV").convert("RGB")
    pixels = np.asarray(image).copy()
    pixels[background] = 255
    return Image.fromarray(pixels)


def monochrome(image: Image.Image) -> Image.Image:
    """The mark in solid black on white (marks are often filed this way)."""
    pixels = np.asarray(image)
    out = np.full_like(pixels, 255)
    out[mark_mask(pixels)] = 0
    return Image.fromarray(out)


def invert_mark(image: Image.Image) -> Image.Image:
    """Invert the mark's colours but keep the background white."""
    pixels = np.asarray(image)
    out = pixels.copy()
    mask = mark_mask(pixels)
    out[mask] = 255 - pixels[mask]
    return Image.fromarray(out)


def occlude(image: Image.Image, rng: random.Random, low: float, high: float) -> Image.Image:
    """Hide a random rectangle under white (a part of the mark missing or covered)."""
    width, height = image.size
    area = rng.uniform(low, high) * width * height
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))
    w = min(width, max(1, round((area * aspect) ** 0.5)))
    h = min(height, max(1, round((area / aspect) ** 0.5)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    out = image.copy()
    out.paste(WHITE, (left, top, left + w, top + h))
    return out


class LogoAugment:
    """One random view of a square RGB logo: geometry first, then colour, then occlusion."""

    def __init__(self, params: AugmentParams | None = None) -> None:
        self.params = params or AugmentParams()

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        p = self.params

        def chance(probability: float) -> bool:
            # No draw at all for an edit switched off: older recipes keep their exact views.
            return probability > 0 and rng.random() < probability

        image = crop(image, rng, *p.crop_area)
        if chance(p.p_stretch):
            image = edits.stretch(image, rng, p.stretch_ratio)
        image = rescale(image, rng, *p.scale)
        if p.rotation_degrees:
            image = rotate(image, rng, p.rotation_degrees)
        if chance(p.p_quarter_turn):
            image = edits.quarter_turn(image, rng)
        if chance(p.p_mirror):
            image = ImageOps.mirror(image)
        if rng.random() < p.p_jitter:
            image = colour_jitter(image, rng, p.jitter, p.hue)
        colour = rng.random()
        if colour < p.p_monochrome:
            image = monochrome(image)
        elif colour < p.p_monochrome + p.p_invert:
            image = invert_mark(image)
        elif colour < p.p_monochrome + p.p_invert + p.p_grayscale:
            image = ImageOps.grayscale(image).convert("RGB")
        if chance(p.p_weight):
            image = edits.stroke_weight(image, rng)
        if chance(p.p_outline):
            image = edits.outline(image, rng, p.outline_supersample)
        if chance(p.p_wordmark):
            image = edits.add_wordmark(image, rng)
        if chance(p.p_frame):
            image = edits.frame(image, rng)
        if rng.random() < p.p_occlusion:
            image = occlude(image, rng, *p.occlusion_area)
        if chance(p.p_banner):
            image = edits.banner(image, rng)
        if chance(p.p_badge):
            image = edits.badge(image, rng)  # a badge is its own ground: no coloured one on it
        elif chance(p.p_ground):
            image = edits.coloured_ground(image, rng)  # last: every edit above assumes white
        if chance(p.p_degrade):
            image = edits.degrade(image, rng)
        return image
