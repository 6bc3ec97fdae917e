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
import time
from dataclasses import dataclass
from typing import Literal

import pytesseract
from PIL import Image
from pydantic import BaseModel, Field

from logosim.core.digest import stable_digest
from logosim.preprocess.letter_rows import letter_rows

# Bump when detection changes for the same settings (invalidates every cached mask chunk).
OCR_CODE_VERSION = "ocr-2"
# Letter height (px) a row is enlarged to before it is read on its own.
_LINE_HEIGHT = 32
# Letters a row needs before the fallback reads it: two-blob rows are mostly a symbol's
# shapes (two thirds of the rows in bench marks the page layout read nothing in).
_LINE_MIN_CHARS = 3
MetadataPolicy = Literal["ignore", "hint", "skip_empty"]


# Settings added after builds began recording theirs, at the value those builds ran with.
OCR_SETTINGS_BEFORE: dict[str, object] = {"line_fallback": False}


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
    line_fallback: bool = Field(
        True,
        description="When the page layout finds no word, read each letter row on its own "
        "(finds a word set beside a large icon; one Tesseract call per row).",
    )
    max_lines: int = Field(4, ge=1, le=32, description="Rows the line fallback reads at most.")
    line_confidence: float = Field(
        90.0,
        ge=0,
        le=100,
        description="Keep line-fallback words at or above (a row read alone turns a symbol's "
        "shapes into 'letters' at 60-85; a real word reads at 90+).",
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

    def placed(self, scale: float, left: int = 0, top: int = 0) -> WordBox:
        """This box in the pixels of the image it was read from, when Tesseract read a copy
        scaled by ``scale`` of its crop at (``left``, ``top``)."""
        return WordBox(
            left=left + round(self.left / scale),
            top=top + round(self.top / scale),
            width=max(1, round(self.width / scale)),
            height=max(1, round(self.height / scale)),
            confidence=self.confidence,
            text=self.text,
        )


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
        if confidence < 0 or not _word_like(text):
            continue
        bar = params.min_confidence
        if hints and _matches(text, hints):
            bar = params.hint_confidence
        if confidence < bar:
            continue
        read = WordBox(
            data["left"][i], data["top"][i], data["width"][i], data["height"][i], confidence, text
        )
        words.append(read.placed(scale))
    return words


def _word_like(text: str) -> bool:
    """Two or more letters or digits, not all round ones. Tesseract reads a symbol's parts
    as 'a', 'O O' or '00' at confidence 60-95; kept, they tip a mark into the wordmark rule
    or paint out its dots, and a lone letter is a monogram's, not a word beside the mark."""
    chars = [c for c in text if c.isalnum()]
    return len(chars) >= 2 and not set("".join(chars).lower()) <= set("o0")


def _matches(word: str, hints: frozenset[str]) -> bool:
    key = re.sub(r"[^0-9a-z]", "", word.lower())
    return len(key) > 1 and any(key in h or h in key for h in hints)


def has_text_strokes(image: Image.Image, min_chars: int = 2) -> bool:
    """Cheap text-likelihood test (~1 ms): is there a row of ``min_chars`` letter-like blobs?

    See :mod:`logosim.preprocess.letter_rows`; measured against Tesseract in
    bench/bench_preprocess.py.
    """
    return bool(letter_rows(image, min_chars, limit=1))


def detect_line_words(
    image: Image.Image, params: OcrParams, hint: str | None = None
) -> list[WordBox]:
    """Words read one letter row at a time (Tesseract ``--psm 7`` on each row's crop).

    The fallback for a page layout that found nothing: sparse-text mode misses a clean word
    set beside a large, busy icon (the icon swallows the word into a non-text block), while
    the same word cropped alone reads at ~96. At most ``params.max_lines`` rows of three or
    more letters, widest first; boxes are returned in ``image`` pixels. All rows share one
    ``params.timeout_s`` (raises RuntimeError like :func:`detect_words` when it runs out).
    """
    rows = sorted(letter_rows(image, _LINE_MIN_CHARS), key=lambda b: b[2] - b[0], reverse=True)
    deadline = time.monotonic() + params.timeout_s
    words: list[WordBox] = []
    for left, top, right, bottom in rows[: params.max_lines]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError("Tesseract process timeout (line fallback)")
        line = params.model_copy(
            update={
                "psm": 7,
                "max_side": 0,
                "timeout_s": remaining,
                "min_confidence": max(params.min_confidence, params.line_confidence),
            }
        )
        margin = max(4, (bottom - top) // 2)
        box = (
            max(0, left - margin),
            max(0, top - margin),
            min(image.width, right + margin),
            min(image.height, bottom + margin),
        )
        crop = image.crop(box)
        # Tesseract reads letters best ~30 px tall; small rows are enlarged, not shrunk.
        zoom = max(1.0, _LINE_HEIGHT / max(1, bottom - top))
        if zoom > 1:
            size = (round(crop.width * zoom), round(crop.height * zoom))
            crop = crop.resize(size, Image.Resampling.BICUBIC)
        words.extend(word.placed(zoom, box[0], box[1]) for word in detect_words(crop, line, hint))
    return words
