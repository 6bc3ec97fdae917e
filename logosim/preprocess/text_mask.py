"""From word boxes to a text mask, and from a mask to an image with its words painted out.

Edge cases decide the flag stored with each mask: no words → the image is used unchanged;
words covering most of the mark's ink (a pure wordmark) → the image is kept as it is and
flagged ``wordmark``, because inpainting it would leave a smear to compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from logosim.preprocess.ocr import WordBox

InpaintMethod = Literal["telea", "ns"]
_CV_METHOD = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
# A pixel is ink when it differs from the white background by more than this (JPEG-safe).
INK_THRESHOLD = 40


class MaskFlag(IntEnum):
    """What preprocessing decided for one image (stored as uint8 beside its mask)."""

    NO_TEXT = 0  # OCR ran and found no words: image unchanged
    MASKED = 1  # words found and inpainted
    WORDMARK = 2  # words cover most of the mark: image kept, flagged
    SKIPPED = 3  # OCR not run (metadata or pre-filter said no text)
    FAILED = 4  # OCR failed for this image (timeout, crash): image unchanged, error logged
    NO_OCR = 5  # Tesseract unavailable for the whole run


class MaskParams(BaseModel):
    """How boxes become a mask and how the mask is painted out."""

    method: InpaintMethod = Field("telea", description="OpenCV inpainting: Telea or Navier–Stokes.")
    dilate_px: int = Field(3, ge=0, le=32, description="Grow each word box by this margin.")
    radius: int = Field(3, ge=1, le=32, description="Inpainting neighbourhood radius.")
    wordmark_share: float = Field(
        0.6, gt=0, le=1, description="Share of the ink inside word boxes that makes a wordmark."
    )


def boxes_to_mask(size: tuple[int, int], boxes: Iterable[WordBox], dilate_px: int) -> np.ndarray:
    """A boolean H×W mask of the word boxes, each grown by ``dilate_px`` on every side."""
    width, height = size
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        top, left = max(0, box.top - dilate_px), max(0, box.left - dilate_px)
        bottom = min(height, box.top + box.height + dilate_px)
        right = min(width, box.left + box.width + dilate_px)
        mask[top:bottom, left:right] = True
    return mask


def ink(image: Image.Image) -> np.ndarray:
    """Pixels that are not background (the decoded image sits on white)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return (255 - pixels).max(axis=2) > INK_THRESHOLD


def text_share(image: Image.Image, mask: np.ndarray) -> float:
    """Share of the mark's ink that lies under the text mask."""
    marked = ink(image)
    total = int(marked.sum())
    return float((marked & mask).sum()) / total if total else 0.0


def classify(image: Image.Image, mask: np.ndarray, params: MaskParams) -> MaskFlag:
    if not mask.any():
        return MaskFlag.NO_TEXT
    if text_share(image, mask) >= params.wordmark_share:
        return MaskFlag.WORDMARK
    return MaskFlag.MASKED


def inpaint(image: Image.Image, mask: np.ndarray, params: MaskParams) -> Image.Image:
    """``image`` with the masked pixels painted in from their surroundings."""
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask {mask.shape} does not fit image {image.height}x{image.width}")
    if not mask.any():
        return image
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    painted = cv2.inpaint(
        pixels, mask.astype(np.uint8) * 255, params.radius, _CV_METHOD[params.method]
    )
    return Image.fromarray(painted)


def apply_mask(
    image: Image.Image, mask: np.ndarray | None, flag: MaskFlag, params: MaskParams
) -> Image.Image:
    """The image the embedder should see: inpainted only when the flag says ``MASKED``."""
    if mask is None or flag != MaskFlag.MASKED:
        return image
    return inpaint(image, mask, params)
