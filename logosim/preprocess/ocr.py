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

from logosim.core.digest import stable_digest

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
        True,
        description="Skip OCR where a ~1 ms letter-row test finds no text-like regions "
        "(~4x faster on logos; misses some text Tesseract would find: see the issue note).",
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


def has_text_strokes(image: Image.Image, min_chars: int = 2) -> bool:
    """Cheap text-likelihood test (~1 ms): is there a row of ``min_chars`` letter-like blobs?

    Otsu-threshold both polarities (dark text on light and light on dark); a letter is a
    connected component of plausible height (2.5–35 % of the image), not much wider than
    tall, not a thin outline; a word is ``min_chars`` such blobs side by side with similar
    height and centre line. Measured against Tesseract in bench/bench_preprocess.py.
    """
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    scale = 256 / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height = gray.shape[0]
    for polarity in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):
        _, binary = cv2.threshold(gray, 0, 255, polarity | cv2.THRESH_OTSU)
        _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        letters = sorted(
            (int(x), int(y), int(w), int(h))
            for x, y, w, h, area in stats[1:]
            if 0.025 * height <= h <= 0.35 * height
            and w <= 1.6 * h
            and area >= max(8, 0.15 * w * h)
        )
        if any(_word_from(letters, i, min_chars) for i in range(len(letters))):
            return True
    return False


def _word_from(letters: list[tuple[int, int, int, int]], first: int, min_chars: int) -> bool:
    """Do ``min_chars`` letters follow ``letters[first]`` on one line, close together?"""
    x, y, w, h = letters[first]
    count, right, centre = 1, x + w, y + h / 2
    for x2, y2, w2, h2 in letters[first + 1 :]:
        if x2 - right > 1.2 * h:
            break
        same_line = abs(y2 + h2 / 2 - centre) < 0.35 * h and 0.6 < h2 / h < 1.6
        if same_line and x2 >= right - 0.2 * h:
            count, right = count + 1, x2 + w2
            if count >= min_chars:
                return True
    return False
