"""Text detection on a logo: Tesseract word boxes with confidences, plus a cheap pre-filter.

Tesseract costs ~0.19 s on a 224² logo, so the settings that make it cheaper live here:
a downscale of the longest side, the page segmentation mode, skipping images whose metadata
says they carry no text, and a morphological pre-filter that skips images with no
text-like strokes at all. Metadata text is also a hint: a low-confidence word that matches a
word of the mark's registered text is kept.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import pytesseract
from PIL import Image
from pydantic import BaseModel, Field

from logosim.chunks import stable_digest

# Bump when detection changes for the same settings (invalidates every cached mask chunk).
OCR_CODE_VERSION = "ocr-1"
MetadataPolicy = Literal["ignore", "hint", "skip_empty"]


class TesseractMissingError(RuntimeError):
    """The ``tesseract`` binary is not installed (or not where it was said to be)."""


class OcrParams(BaseModel):
    """Text detection settings; all of them enter the mask cache key."""

    psm: int = Field(11, ge=0, le=13, description="Tesseract page segmentation mode.")
    min_confidence: float = Field(60.0, ge=0, le=100, description="Keep words at or above.")
    hint_confidence: float = Field(
        30.0, ge=0, le=100, description="Lower bar for words found in the metadata text."
    )
    max_side: int = Field(
        0, ge=0, description="Downscale so the longest side is at most this (0 = keep size)."
    )
    languages: str = Field("eng", description="Tesseract languages, e.g. 'eng+deu'.")
    metadata: MetadataPolicy = Field(
        "hint",
        description="'hint': metadata words lower the confidence bar; 'skip_empty': also skip "
        "OCR where the metadata text is empty (sources with a text column only); 'ignore'.",
    )
    prefilter: bool = Field(
        False, description="Skip OCR where a stroke-based test finds no text-like regions."
    )
    timeout_s: float = Field(10.0, gt=0, description="Per-image Tesseract time limit.")

    def version(self) -> str:
        # timeout_s changes how failures are reported, not what is detected: left out.
        return stable_digest(OCR_CODE_VERSION, self.model_dump(exclude={"timeout_s"}))


@dataclass(frozen=True, slots=True)
class WordBox:
    """One detected word in the coordinates of the image given to :func:`detect_words`."""

    left: int
    top: int
    width: int
    height: int
    confidence: float
    text: str


def tesseract_available(cmd: str | None = None) -> bool:
    """True when the Tesseract binary exists and is executable.

    Deliberately does not run it: a hung binary must not hang the check (the per-image
    timeout in the pool deals with that).
    """
    return shutil.which(cmd or pytesseract.pytesseract.tesseract_cmd) is not None


def metadata_words(text: str | None) -> frozenset[str]:
    """Lower-case alphanumeric words of a mark's registered text (its OCR hint)."""
    return frozenset(w for w in re.findall(r"[0-9a-z]+", (text or "").lower()) if len(w) > 1)


def should_skip(text: str | None, params: OcrParams) -> bool:
    """Metadata says there is no text and the settings trust it."""
    return params.metadata == "skip_empty" and not (text or "").strip()


def _scaled(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    longest = max(image.size)
    if not max_side or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR), scale


def detect_words(image: Image.Image, params: OcrParams, hint: str | None = None) -> list[WordBox]:
    """Words Tesseract finds in ``image`` above the confidence bar, boxes in image pixels.

    Raises TesseractMissingError without the binary, RuntimeError on a timeout and
    pytesseract.TesseractError when Tesseract fails (the pool records either per image).
    """
    small, scale = _scaled(image.convert("L"), params.max_side)
    try:
        data = pytesseract.image_to_data(
            small,
            lang=params.languages,
            config=f"--psm {params.psm}",
            output_type=pytesseract.Output.DICT,
            timeout=params.timeout_s,
        )
    except pytesseract.TesseractNotFoundError as exc:
        raise TesseractMissingError(str(exc)) from exc
    hints = metadata_words(hint) if params.metadata != "ignore" else frozenset()
    words = []
    for i, raw in enumerate(data["text"]):
        text = raw.strip()
        confidence = float(data["conf"][i])
        if not text or confidence < 0 or not any(c.isalnum() for c in text):
            continue
        bar = params.min_confidence
        if hints and _matches(text, hints):
            bar = params.hint_confidence
        if confidence < bar:
            continue
        words.append(
            WordBox(
                left=round(data["left"][i] / scale),
                top=round(data["top"][i] / scale),
                width=max(1, round(data["width"][i] / scale)),
                height=max(1, round(data["height"][i] / scale)),
                confidence=confidence,
                text=text,
            )
        )
    return words


def _matches(word: str, hints: frozenset[str]) -> bool:
    key = re.sub(r"[^0-9a-z]", "", word.lower())
    return len(key) > 1 and any(key in h or h in key for h in hints)


def has_text_strokes(image: Image.Image, min_regions: int = 1) -> bool:
    """Cheap text-likelihood test: are there rows of small, similar-height strokes?

    Morphological gradient → Otsu → a horizontal closing that merges the letters of a word
    into one blob; a word blob is wider than tall, not too tall for the image, and dense
    with edges. Measured against Tesseract in bench/bench_preprocess.py.
    """
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    height, width = gray.shape
    scale = 256 / max(height, width)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        height, width = gray.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    gradient = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, kernel)
    _, binary = cv2.threshold(gradient, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if binary.mean() < 1:  # blank image
        return False
    joined = cv2.morphologyEx(
        binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1))
    )
    _, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    found = 0
    for x, y, w, h, area in stats[1:]:
        if h < 6 or h > 0.35 * height or w < 1.8 * h:
            continue
        density = binary[y : y + h, x : x + w].mean() / 255
        if 0.2 < density < 0.9 and area > 0.35 * w * h:
            found += 1
            if found >= min_regions:
                return True
    return False
