"""Text masks in the store: run-length encoded per chunk, read back on the fly.

OCR runs once per image ever: a chunk's masks live in ``masks/<cache-key>.npz``, keyed by
the chunk's content digest and the OCR + masking settings. Embedding and training never
read preprocessed copies of images; they decode the original and apply its stored mask
through the ``prepare`` hook built here (:func:`masked_prepare`), with an LRU cache.

Chunk file arrays: ``ids`` (str, N), ``flags`` (uint8 :class:`MaskFlag`, N), ``shapes``
(int32 N×2, height and width), ``offsets`` (int64 N+1) into ``runs`` (uint32): the
alternating background/text run lengths of each row-major mask, starting with background.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from logosim.core.digest import stable_digest
from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore, Manifest
from logosim.preprocess.text_mask import MaskFlag, MaskParams, apply_mask

MASKS_DIR = "masks"
PREPARE_FACTORY = "logosim.masks:masked_prepare"


def encode_rle(mask: np.ndarray) -> np.ndarray:
    """Run lengths of a boolean mask (row-major), background first: uint32."""
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.uint32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size])))
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.uint32)


def decode_rle(runs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The boolean mask of ``shape`` that :func:`encode_rle` encoded."""
    values = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(values, runs.astype(np.int64))
    if flat.size != shape[0] * shape[1]:
        raise ValueError(
            f"runs cover {flat.size} pixels, shape {shape} needs {shape[0] * shape[1]}"
        )
    return flat.reshape(shape)


@dataclass(frozen=True, slots=True)
class ImageMask:
    """One image's preprocessing outcome, as stored."""

    id: str
    flag: MaskFlag
    shape: tuple[int, int] = (0, 0)
    runs: np.ndarray | None = None  # set when flag is MASKED or WORDMARK


def write_mask_chunk(
    store: ArtifactStore,
    rel: str,
    masks: Sequence[ImageMask],
    *,
    versions: dict[str, str],
    meta: dict[str, Any] | None = None,
) -> Manifest:
    """Write one chunk's masks atomically; the manifest counts images per flag."""
    runs = [m.runs if m.runs is not None else np.zeros(0, np.uint32) for m in masks]
    offsets = np.zeros(len(masks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in runs])
    arrays = {
        "ids": np.array([m.id for m in masks], dtype=str),
        "flags": np.array([int(m.flag) for m in masks], dtype=np.uint8),
        "shapes": np.array([m.shape for m in masks], dtype=np.int32).reshape(-1, 2),
        "offsets": offsets,
        "runs": np.concatenate(runs) if runs else np.zeros(0, np.uint32),
    }
    counts = {flag.name.lower(): int((arrays["flags"] == flag).sum()) for flag in MaskFlag}
    return store.write_arrays(
        rel, arrays, kind="masks", rows=len(masks), versions=versions,
        meta={"flags": counts, **(meta or {})},
    )  # fmt: skip


class MaskReader:
    """``mask_for(id)``: an image's stored text mask, or None when nothing is to be masked.

    Chunk files are loaded (and checksum-verified) on first use and kept in a small LRU of
    chunks; decoded masks are kept in an LRU of ``cache_size`` images.
    """

    def __init__(
        self,
        store: ArtifactStore,
        manifests: Sequence[Manifest | dict],
        *,
        cache_size: int = 2048,
        chunk_cache: int = 4,
    ) -> None:
        self.store = store
        self.manifests = [Manifest.model_validate(m) for m in manifests]
        self._where: dict[str, tuple[int, int]] | None = None
        self._chunks: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._chunk_cache = chunk_cache
        self.mask_for = lru_cache(maxsize=cache_size)(self._mask_for)

    @classmethod
    def of_store(cls, store: ArtifactStore) -> MaskReader:
        """A reader over every mask chunk ``store`` holds (whichever runs wrote them)."""
        paths = sorted(store.path(MASKS_DIR).glob("*.manifest.json"))
        return cls(store, [Manifest.model_validate_json(path.read_text()) for path in paths])

    def _index(self) -> dict[str, tuple[int, int]]:
        if self._where is None:
            where: dict[str, tuple[int, int]] = {}
            for number in range(len(self.manifests)):
                for position, image_id in enumerate(self._chunk(number)["ids"].tolist()):
                    where[image_id] = (number, position)
            self._where = where
        return self._where

    def _chunk(self, number: int) -> dict[str, np.ndarray]:
        arrays = self._chunks.get(number)
        if arrays is None:
            arrays = self.store.read_arrays(self.manifests[number])
            self._chunks[number] = arrays
            while len(self._chunks) > self._chunk_cache:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(number)
        return arrays

    def flag_for(self, image_id: str) -> MaskFlag | None:
        """The stored decision for ``image_id``; None when it was never preprocessed."""
        found = self._index().get(image_id)
        if found is None:
            return None
        number, position = found
        return MaskFlag(int(self._chunk(number)["flags"][position]))

    def _mask_for(self, image_id: str) -> np.ndarray | None:
        found = self._index().get(image_id)
        if found is None:
            return None
        number, position = found
        arrays = self._chunk(number)
        if MaskFlag(int(arrays["flags"][position])) not in (MaskFlag.MASKED, MaskFlag.WORDMARK):
            return None
        start, stop = arrays["offsets"][position], arrays["offsets"][position + 1]
        height, width = (int(v) for v in arrays["shapes"][position])
        return decode_rle(arrays["runs"][start:stop], (height, width))


def prepare_spec(manifests: Sequence[Manifest], mask: MaskParams) -> dict[str, Any]:
    """The embed stage's ``PrepareSpec`` (as a dict: no torch import here) for these masks.

    Its digest covers the mask files' checksums and the inpainting settings, so embeddings
    are recomputed exactly when a mask or the way it is applied changes.
    """
    return {
        "factory": PREPARE_FACTORY,
        "options": {
            "manifests": [m.model_dump(mode="json") for m in manifests],
            "mask": mask.model_dump(mode="json"),
        },
        "digest": stable_digest("masked-prepare", sorted(m.sha256 for m in manifests), mask),
    }


def masked_prepare(
    store: ArtifactStore, manifests: Sequence[Manifest | dict], mask: MaskParams | dict
) -> Callable[[LogoRecord, Image.Image], Image.Image]:
    """The ``prepare`` hook: decoded image + stored mask → inpainted image (on the fly)."""
    reader = MaskReader(store, manifests)
    params = MaskParams.model_validate(mask)

    def prepare(record: LogoRecord, image: Image.Image) -> Image.Image:
        flag = reader.flag_for(record.id)
        if flag != MaskFlag.MASKED:
            return image
        stored = reader.mask_for(record.id)
        if stored is not None and stored.shape != (image.height, image.width):
            # Decoded at another size than at OCR time (settings changed): scale the mask.
            resized = Image.fromarray(stored).resize(image.size, Image.Resampling.NEAREST)
            stored = np.asarray(resized, dtype=bool)
        return apply_mask(image, stored, flag, params)

    return prepare
