"""A candidate's bytes → a usable logo: decoded (SVG rendered, ICO at its largest frame),
judged (tiny, blank, fully transparent and single-colour images refused) and re-encoded.

The image adjustment added to a candidate's score: −20 for a banner shape (one side over 8×
the other), −10 for a small image (longest side under 48 px), else up to +10 growing with the
longest side (64 px per point).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from logosim.data.decode import (
    DecompressionBombError,
    FileTooLargeError,
    ImageDecodeError,
    SvgInvalidError,
    decode_image,
)

MIN_SIDE = 16  # either side below this: tiny
MIN_LONG_SIDE = 24
OUTPUT_SIDE = 512  # stored logos are at most this large (longest side)
DARK = (32, 32, 32)  # a white logo on a transparent background is shown on this


class Rejected(Exception):
    """An image that decodes but is not a logo; ``reason`` is the domain-level reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(slots=True)
class Judged:
    png: bytes
    width: int
    height: int
    adjust: float
    hints: list[str]


def decode_reason(exc: ImageDecodeError) -> str:
    """decode_image's reasons in the extractor's vocabulary."""
    if isinstance(exc, SvgInvalidError):
        return "svg_invalid"
    if isinstance(exc, FileTooLargeError | DecompressionBombError):
        return "too_large"
    return "not_an_image"


def judge(data: bytes, *, max_pixels: int = 40_000_000) -> Judged:
    """Decode and judge one image; ``Rejected`` with the domain-level reason when unusable."""
    try:
        image = decode_image(data, max_pixels=max_pixels)
        hints: list[str] = []
        if _flat(image):
            # maybe a white mark on a transparent background: try it on a dark one
            dark = decode_image(data, max_pixels=max_pixels, background=DARK)
            if _flat(dark):
                raise Rejected("no_usable_candidate", "blank, transparent or single-colour")
            image, hints = dark, ["light mark shown on dark"]
    except ImageDecodeError as exc:
        raise Rejected(decode_reason(exc), exc.detail) from exc
    width, height = image.size
    if min(width, height) < MIN_SIDE or max(width, height) < MIN_LONG_SIDE:
        raise Rejected("no_usable_candidate", f"tiny ({width}x{height})")
    adjust = 0.0
    if max(width, height) > 8 * min(width, height):
        adjust -= 20
        hints.append("-banner-shaped")
    if max(width, height) < 48:
        adjust -= 10
        hints.append(f"-small ({width}x{height})")
    else:
        adjust += min(10.0, max(width, height) / 64)
    if max(width, height) > OUTPUT_SIDE:
        image.thumbnail((OUTPUT_SIDE, OUTPUT_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Judged(buffer.getvalue(), width, height, adjust, hints)


def _flat(image: Image.Image) -> bool:
    """True when (nearly) every pixel has the same colour."""
    small = image.copy()
    small.thumbnail((128, 128))
    pixels = np.asarray(small, dtype=np.int16).reshape(-1, 3)
    spread = np.abs(pixels - pixels[0]).max(axis=1)
    return float((spread > 24).mean()) < 0.003
