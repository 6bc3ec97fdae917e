"""From a decoded logo to the network's input: geometry first, then pixel scaling.

Logos come in every aspect ratio (wide wordmarks, tall emblems). Cropping would cut a
wordmark in half, so the default ``pad`` mode keeps the whole mark: it pads to a square on
white (the background every decoded logo already sits on) and resizes. ``crop`` is the
ImageNet recipe (resize the short side to 256/224 of the size, centre crop) for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

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


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_model_input(image: Image.Image, size: int = 224, mode: NormalizeMode = "pad") -> Image.Image:
    """An RGB ``size``×``size`` image: aspect ratio kept, padded on white (or centre-cropped)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if mode == "pad":
        square = pad_to_square(image)
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
    raise ValueError(f"unknown normalise mode {mode!r}: use 'pad' or 'crop'")


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
