"""The words OCR read on each image, kept beside its text mask: a mark's word element where
the source has no metadata text (stage-2 re-ranking's text term, issue 12).

One file per preprocessed chunk, ``ocr/<chunk-cache-key>.npz`` (arrays ``ids`` and ``words``,
the words in reading order joined by spaces; "" where OCR found none or was skipped). It is a
companion of ``masks/<same key>.npz``: the mask file itself is unchanged, so embeddings that
applied those masks stay valid when a chunk is run again only to add its words.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from loguru import logger

from logosim.core.store import ArtifactStore, CorruptArtifactError, Manifest
from logosim.preprocess.ocr import WordBox

OCR_DIR = "ocr"


def words_path(masks_path: str) -> str:
    """``masks/<key>.npz`` → ``ocr/<key>.npz``."""
    return f"{OCR_DIR}/{Path(masks_path).name}"


def reading_order(boxes: Sequence[WordBox]) -> str:
    """The words top to bottom, then left to right within a line (half a word's height)."""
    if not boxes:
        return ""
    tolerance = max(1.0, float(np.median([b.height for b in boxes])) / 2)
    lines: list[list[WordBox]] = []
    for box in sorted(boxes, key=lambda b: b.top + b.height / 2):
        centre = box.top + box.height / 2
        if lines and abs(centre - (lines[-1][0].top + lines[-1][0].height / 2)) <= tolerance:
            lines[-1].append(box)
        else:
            lines.append([box])
    return " ".join(b.text for line in lines for b in sorted(line, key=lambda b: b.left)).strip()


def write_words(
    store: ArtifactStore, masks_path: str, ids: Sequence[str], words: Sequence[str], **kw
) -> Manifest:
    found = sum(bool(w) for w in words)
    return store.write_arrays(
        words_path(masks_path),
        {"ids": np.array(list(ids), dtype=str), "words": np.array(list(words), dtype=str)},
        kind="ocr-words",
        rows=len(ids),
        meta={"with_words": found, **kw.pop("meta", {})},
        **kw,
    )


def read_words(store: ArtifactStore) -> dict[str, str]:
    """Every preprocessed image's OCR words in the store (non-empty only; newest file wins)."""
    folder = store.path(OCR_DIR)
    manifests = []
    for path in sorted(Path(folder).glob("*.npz")) if folder.is_dir() else []:
        manifest = store.read_manifest(f"{OCR_DIR}/{path.name}")
        if manifest is None or not store.verify(manifest, checksum=False):
            logger.warning(f"OCR words {OCR_DIR}/{path.name}: no manifest or truncated; skipped")
            continue
        manifests.append(manifest)
    out: dict[str, str] = {}
    for manifest in sorted(manifests, key=lambda m: m.created):
        try:
            arrays = store.read_arrays(manifest)
        except (OSError, ValueError, KeyError, CorruptArtifactError) as exc:
            logger.warning(f"OCR words {manifest.path}: unreadable ({exc}); skipped")
            continue
        for mark, words in zip(arrays["ids"].tolist(), arrays["words"].tolist(), strict=True):
            if words:
                out[mark] = words
    return out
