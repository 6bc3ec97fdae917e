"""From a decoded logo to the network's input: geometry first, then pixel scaling.

Logos come in every aspect ratio (wide wordmarks, tall emblems). Cropping would cut a
wordmark in half, so the default ``pad`` mode keeps the whole mark: it pads to a square on
white (the background every decoded logo already sits on) and resizes. ``crop`` is the
ImageNet recipe (resize the short side to 256/224 of the size, centre crop) for comparison.
``trim`` first crops uniform margins to the mark's bounding box (registers hold marks drawn
small on a large canvas, and scans with wide borders), then pads like ``pad``.
``trim_small`` trims only when the mark's box spans less than ``TRIM_SMALL_BELOW`` of the
image's longer side: most logos already fill their canvas, and trimming those only changes
their scale relative to unrelated marks.

``blur`` then softens the square input with a Gaussian (σ in pixels at the model's size): a
mark redrawn at low resolution and upscaled, a JPEG's blocks and a mark traced in thin
outlines differ from the original in their finest detail, which a light blur removes from
both sides before the network compares them (issue 16, tenth round).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from logosim.embed.params import NormalizeMode

WHITE = (255, 255, 255)
CROP_RATIO = 224 / 256  # ImageNet evaluation: resize to 256, centre crop 224


def pad_to_square(image: Image.Image, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new("RGB", (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


# trim: a pixel belongs to the mark when a channel differs from the background by more than
# TRIM_TOLERANCE (JPEG ringing stays below it); a row or column counts only with more than
# TRIM_SPECK of its pixels set, so dust and stray specks do not widen the box.
TRIM_TOLERANCE = 32
TRIM_SPECK = 0.01
TRIM_MARGIN = 0.04  # of the box's longer side, each way
TRIM_CORNER_AGREE = 3  # corners that must match the background colour to trim at all
TRIM_ANALYSIS_SIDE = 512  # the box is found on a copy no larger than this
TRIM_SMALL_BELOW = 0.6  # trim_small: trim only a mark spanning less of the longer side


def _profile_span(counts: np.ndarray, minimum: float) -> tuple[int, int] | None:
    rows = np.flatnonzero(counts > minimum)
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else None


def content_box(
    image: Image.Image,
) -> tuple[tuple[int, int, int, int], tuple[int, int, int]] | None:
    """(box, background colour) of the mark on a uniform background; None when there is no
    uniform background (the corners disagree) or nothing differs from it."""
    small = image
    if max(image.size) > TRIM_ANALYSIS_SIDE:
        small = image.copy()
        small.thumbnail((TRIM_ANALYSIS_SIDE, TRIM_ANALYSIS_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    height, width = pixels.shape[:2]
    patch = max(1, min(height, width) // 64)
    corners = np.stack(
        [
            np.median(c.reshape(-1, 3), axis=0)
            for c in (
                pixels[:patch, :patch],
                pixels[:patch, -patch:],
                pixels[-patch:, :patch],
                pixels[-patch:, -patch:],
            )
        ]
    )
    background = np.median(corners, axis=0)
    agree = (np.abs(corners - background).max(axis=1) <= TRIM_TOLERANCE).sum()
    if agree < TRIM_CORNER_AGREE:
        return None
    mark = np.abs(pixels - background).max(axis=2) > TRIM_TOLERANCE
    rows = _profile_span(mark.sum(axis=1), TRIM_SPECK * width)
    cols = _profile_span(mark.sum(axis=0), TRIM_SPECK * height)
    if rows is None or cols is None:
        return None
    sx, sy = image.width / width, image.height / height
    box = (
        int(cols[0] * sx),
        int(rows[0] * sy),
        min(image.width, round(cols[1] * sx)),
        min(image.height, round(rows[1] * sy)),
    )
    colour = tuple(round(float(v)) for v in background)
    return box, (colour[0], colour[1], colour[2])


def trim_to_mark(
    image: Image.Image, only_below: float | None = None
) -> tuple[Image.Image, tuple[int, int, int]]:
    """The mark cropped to its bounding box plus a margin, and the background colour to pad
    with (white when the image has no uniform background and is returned whole). With
    ``only_below``, a mark spanning at least that share of the longer side is left whole."""
    found = content_box(image)
    if found is None:
        return image, WHITE
    (left, top, right, bottom), background = found
    if only_below is not None and max(right - left, bottom - top) >= only_below * max(image.size):
        return image, WHITE  # a large mark: exactly as ``pad``
    margin = round(TRIM_MARGIN * max(right - left, bottom - top))
    # crop() fills outside the image with zeros: paste onto the background colour instead.
    width, height = right - left + 2 * margin, bottom - top + 2 * margin
    if width >= image.width and height >= image.height:
        return image, background
    canvas = Image.new("RGB", (width, height), background)
    canvas.paste(image.crop((left, top, right, bottom)), (margin, margin))
    return canvas, background


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_model_input(
    image: Image.Image, size: int = 224, mode: NormalizeMode = "pad", blur: float = 0.0
) -> Image.Image:
    """An RGB ``size``×``size`` image: aspect ratio kept, padded on white (or centre-cropped;
    or trimmed to the mark and padded on its background colour), then blurred by ``blur``."""
    return soften(_framed(image, size, mode), blur)


def soften(image: Image.Image, blur: float) -> Image.Image:
    """``image`` blurred by a Gaussian of σ ``blur`` pixels; unchanged when ``blur`` is 0."""
    return image.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else image


def _framed(image: Image.Image, size: int, mode: NormalizeMode) -> Image.Image:
    if image.mode != "RGB":
        image = image.convert("RGB")
    if mode in ("pad", "trim", "trim_small"):
        fill = WHITE
        if mode == "trim":
            image, fill = trim_to_mark(image)
        elif mode == "trim_small":
            image, fill = trim_to_mark(image, TRIM_SMALL_BELOW)
        square = pad_to_square(image, fill)
        if square.size == (size, size):
            return square
        # reducing_gap: draft-style fast downscale for large images, same result at 224².
        return square.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if mode == "crop":
        short = round(size / CROP_RATIO)
        width, height = image.size
        scale = short / min(width, height)
        resized = image.resize(
            (max(size, round(width * scale)), max(size, round(height * scale))),
            Image.Resampling.BICUBIC,
            reducing_gap=3.0,
        )
        return _centre_crop(resized, size)
    raise ValueError(f"unknown normalise mode {mode!r}: use 'pad', 'trim', 'trim_small' or 'crop'")


def to_array(image: Image.Image) -> np.ndarray:
    """HWC uint8 pixels (cheap; the float conversion happens once per batch)."""
    return np.asarray(image, dtype=np.uint8)


def to_chw(
    image: Image.Image | np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """One image as a contiguous CHW float32 array scaled with the model's mean/std.

    Done per image in the decode threads (numpy releases the GIL), so the inference thread
    only stacks ready arrays.
    """
    pixels = np.asarray(image, dtype=np.float32)
    pixels *= np.float32(1.0 / 255.0) / np.asarray(std, dtype=np.float32)
    pixels -= np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def to_batch(
    pixels: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Stack HWC uint8 images into one NCHW float32 batch scaled with the model's mean/std."""
    batch = np.stack(pixels).astype(np.float32)
    scale = np.float32(1.0 / 255.0) / np.asarray(std, dtype=np.float32)
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    batch *= scale
    batch -= shift
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
