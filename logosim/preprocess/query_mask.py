"""Text masking for a query image, as the build masked its gallery.

An index built with text masking holds descriptors of marks with their words painted out;
a query must be seen the same way, or a symbol beside its name is compared with symbols
alone. Same OCR, mask and inpainting settings as the build (read from the index manifest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger
from PIL import Image

from logosim.preprocess.mask_store import decode_rle
from logosim.preprocess.stage import PreprocessParams, analyse_decoded, warn_tesseract_missing
from logosim.preprocess.text_mask import MaskFlag, apply_mask

QueryPrepare = Callable[[Image.Image], Image.Image]


def mask_query_text(image: Image.Image, params: PreprocessParams) -> Image.Image:
    """The query with its words inpainted when OCR finds them beside a mark; unchanged when
    it has no words, is a pure wordmark, OCR fails or Tesseract is missing (logged)."""
    found = analyse_decoded("query", image, None, params)
    if found.flag == MaskFlag.NO_OCR:
        warn_tesseract_missing()
    elif found.flag == MaskFlag.FAILED:
        logger.warning(f"query text masking skipped: {found.reason} ({found.detail})")
    if found.flag != MaskFlag.MASKED or found.runs is None:
        return image
    return apply_mask(image, decode_rle(found.runs, found.shape), found.flag, params.mask)


def query_prepare(index_meta: Mapping[str, Any]) -> QueryPrepare | None:
    """The query-side twin of the build's preprocessing; None when the build masked no text."""
    settings = index_meta.get("preprocess")
    if not settings:
        return None
    params = PreprocessParams.as_recorded(settings)
    return lambda image: mask_query_text(image, params)
