"""Where a gallery mark's word element comes from for the text term of stage 2 (issue 12).

The source's metadata text (its ``text`` column, an L3D JSON's ``text``) when the source has
any; otherwise the words OCR read on each image during preprocessing (``ocr/*.npz``, written
only where the preprocess stage ran, e.g. ``logosim build --text-mask``). Never a file name:
a benchmark's ``id``/``name``/``collection`` columns are not a mark's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from loguru import logger

from logosim.core.store import ArtifactStore
from logosim.preprocess.ocr_words import read_words

TextSource = Literal["metadata", "ocr"]


def gallery_texts(
    store: ArtifactStore, metadata: Mapping[str, str | None]
) -> tuple[dict[str, str], TextSource | None]:
    """id → word element for the marks in ``metadata`` (id → its metadata text or None),
    and which source they came from (None: no mark has any text)."""
    given = {mark: text for mark, text in metadata.items() if text and text.strip()}
    if given:
        return given, "metadata"
    words = read_words(store)
    found = {mark: words[mark] for mark in metadata if mark in words}
    if found:
        logger.info(f"mark texts: the source has no text; OCR words for {len(found)} marks")
        return found, "ocr"
    return {}, None
