"""The preprocess stage: decode → OCR word boxes → text mask + flag, per chunk, into the store.

Only masks are stored (run-length encoded, see ``logosim.preprocess.mask_store``), never image copies; the
embed stage applies them on the fly. Per-image failures go to the chunk's error file and
``preprocessing_errors.jsonl``; they never stop the chunk.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pytesseract
from loguru import logger
from PIL import Image
from pydantic import BaseModel, Field

from logosim.core.digest import stable_digest
from logosim.core.failures import ImageFailure, write_chunk_errors
from logosim.core.progress import ProgressChannel, ProgressFn
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob, ChunkSpec
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.preprocess.mask_store import MASKS_DIR, ImageMask, encode_rle, write_mask_chunk
from logosim.preprocess.ocr import (
    OCR_SETTINGS_BEFORE,
    OcrParams,
    TesseractMissingError,
    WordBox,
    detect_line_words,
    detect_words,
    has_text_strokes,
    should_skip,
    tesseract_available,
)
from logosim.preprocess.ocr_pool import Failure, OcrPool
from logosim.preprocess.ocr_words import reading_order, write_words
from logosim.preprocess.text_mask import MaskFlag, MaskParams, boxes_to_mask, classify

STAGE = "preprocess"
PREPROCESS_CODE_VERSION = "preprocess-1"
ERRORS_FILE = "preprocessing_errors.jsonl"


class PreprocessParams(BaseModel):
    """Text masking settings; shown as a form in the Prefect UI."""

    text_mask: bool = Field(True, description="Detect text and paint it out before embedding.")
    ocr: OcrParams = Field(default_factory=OcrParams)
    mask: MaskParams = Field(default_factory=MaskParams)
    workers: int = Field(0, ge=0, description="OCR processes; 0 = one per core.")
    max_image_pixels: int = Field(64_000_000, ge=1)
    max_image_bytes: int = Field(64 * 2**20, ge=1)

    @classmethod
    def as_recorded(cls, settings: Mapping[str, Any]) -> PreprocessParams:
        """The settings an index recorded at build time. OCR settings added since then take
        the value that build ran with, so its queries and reindexed marks match its gallery."""
        ocr = {**OCR_SETTINGS_BEFORE, **settings.get("ocr", {})}
        return cls.model_validate({**settings, "ocr": ocr})

    def version(self, ocr_available: bool = True) -> str:
        """Content of the masks: OCR + mask settings and whether Tesseract was there at all
        (so masks written without it are recomputed once it is installed). Not workers."""
        return stable_digest(
            PREPROCESS_CODE_VERSION,
            self.ocr.version(),
            self.mask,
            self.max_image_pixels,
            self.max_image_bytes,
            ocr_available,
        )


@dataclass(frozen=True, slots=True)
class OcrItem:
    """What a worker needs for one image (picklable, no metadata beyond the hint)."""

    id: str
    ref: str
    data: bytes
    text: str | None


@dataclass(slots=True)
class Analysis:
    """A worker's answer for one image."""

    id: str
    flag: MaskFlag
    shape: tuple[int, int] = (0, 0)
    runs: np.ndarray | None = None
    boxes: list[WordBox] = field(default_factory=list)
    reason: str = ""
    detail: str = ""


def analyse_image(item: OcrItem, params: PreprocessParams) -> Analysis:
    """Decode, detect words, build the mask and decide its flag; errors become a reason."""
    try:
        image = decode_image(
            item.data, max_pixels=params.max_image_pixels, max_bytes=params.max_image_bytes
        )
    except ImageDecodeError as exc:
        return Analysis(item.id, MaskFlag.FAILED, reason=exc.reason, detail=exc.detail)
    return analyse_decoded(item.id, image, item.text, params)


def analyse_decoded(
    image_id: str, image: Image.Image, text: str | None, params: PreprocessParams
) -> Analysis:
    shape = (image.height, image.width)
    if should_skip(text, params.ocr) or (params.ocr.prefilter and not has_text_strokes(image)):
        return Analysis(image_id, MaskFlag.SKIPPED, shape)
    try:
        boxes = detect_words(image, params.ocr, hint=text)
        if not boxes and params.ocr.line_fallback:
            boxes = detect_line_words(image, params.ocr, hint=text)
    except TesseractMissingError as exc:
        return Analysis(
            image_id, MaskFlag.NO_OCR, shape, reason="tesseract_missing", detail=str(exc)
        )
    except (pytesseract.TesseractError, OSError, ValueError) as exc:  # a crash, bad output
        detail = f"{type(exc).__name__}: {exc}"
        return Analysis(image_id, MaskFlag.FAILED, shape, reason="ocr_failed", detail=detail)
    except RuntimeError as exc:  # pytesseract's "Tesseract process timeout"
        return Analysis(image_id, MaskFlag.FAILED, shape, reason="ocr_timeout", detail=str(exc))
    mask = boxes_to_mask(image.size, boxes, params.mask.dilate_px)
    flag = classify(image, mask, params.mask)
    runs = encode_rle(mask) if flag in (MaskFlag.MASKED, MaskFlag.WORDMARK) else None
    return Analysis(image_id, flag, shape, runs, boxes)


_warned_missing = False


def warn_tesseract_missing() -> None:
    """One loud warning per process, not one per image or chunk."""
    global _warned_missing
    if not _warned_missing:
        logger.warning(
            "TESSERACT NOT FOUND ({cmd}): preprocessing continues WITHOUT text masking. "
            "Install it (apt-get install -y tesseract-ocr) and rerun to mask text.",
            cmd=pytesseract.pytesseract.tesseract_cmd,
        )
        _warned_missing = True


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so cleanup runs (pool killed, temp file removed).

    Only possible in the main thread; elsewhere (a Prefect task thread) Prefect's own
    cancellation applies, and the store's atomic writes still leave no half-written file.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# The CLI draws a bar over images; tasks run in threads of the same process.
PROGRESS = ProgressChannel()
progress_hook = PROGRESS.listen


def analyse_records(
    items: list[OcrItem] | Iterator[OcrItem],
    params: PreprocessParams,
    pool: OcrPool,
) -> Iterator[Analysis]:
    for result in pool.map(partial(analyse_image, params=params), items):
        if isinstance(result, Failure):
            item: OcrItem = result.item
            yield Analysis(item.id, MaskFlag.FAILED, reason=result.reason, detail=result.detail)
        else:
            yield result


def preprocess_job(
    store: str, source: SourceSpec, chunk: ChunkSpec, params: PreprocessParams, ocr_available: bool
) -> ChunkJob:
    return ChunkJob(
        stage=STAGE,
        store=store,
        source=source,
        chunk=chunk,
        version=params.version(ocr_available),
        params={"preprocess": params.model_dump(mode="json"), "ocr_available": ocr_available},
    )


def preprocess_chunk(job: ChunkJob, progress: ProgressFn | None = None) -> Manifest:
    """OCR + masks for one chunk → ``masks/<cache-key>.npz`` and the chunk's error file."""
    store = ArtifactStore(job.store)
    report = progress or PROGRESS.advance
    params = PreprocessParams.model_validate(job.params["preprocess"])
    available = bool(job.params.get("ocr_available", True)) and tesseract_available()
    records = open_source(job.source).records(job.chunk.start, job.chunk.stop, with_bytes=available)
    masks: list[ImageMask] = []
    words: list[str] = []  # OCR words per image (a mark's word element without metadata)
    errors: list[ImageFailure] = []
    refs: dict[str, str] = {}
    if not available:
        warn_tesseract_missing()
        masks = [ImageMask(r.id, MaskFlag.NO_OCR) for r in records]
        report(len(masks))
    else:
        items = (_item(record, errors, refs) for record in records)
        with (
            terminate_as_interrupt(),
            OcrPool(params.workers, timeout_s=params.ocr.timeout_s) as pool,
        ):
            for result in analyse_records((i for i in items if i is not None), params, pool):
                masks.append(ImageMask(result.id, result.flag, result.shape, result.runs))
                words.append(reading_order(result.boxes))
                if result.reason:
                    errors.append(
                        ImageFailure(
                            id=result.id, source=refs.get(result.id, ""), stage=STAGE,
                            reason=result.reason, detail=result.detail,
                        )
                    )  # fmt: skip
                report(1)
            restarts = pool.restarts
        if restarts:
            logger.warning(f"{job.chunk.name}: OCR pool restarted {restarts} time(s)")
    write_chunk_errors(store, STAGE, job.chunk.name, errors)
    manifest = write_mask_chunk(
        store,
        f"{MASKS_DIR}/{job.cache_key}.npz",
        masks,
        versions={"preprocess": job.version},
        meta={"chunk": job.chunk.name, "errors": len(errors), "ocr_available": available},
    )
    if available:
        write_words(
            store,
            manifest.path,
            [m.id for m in masks],
            words,
            versions={"preprocess": job.version},
            meta={"chunk": job.chunk.name},
        )
    logger.info(f"{job.chunk.name}: masks for {len(masks)} images, {len(errors)} errors")
    return manifest


def _item(record, errors: list[ImageFailure], refs: dict[str, str]) -> OcrItem | None:
    if record.read_error:
        errors.append(ImageFailure.of(record, STAGE, "unreadable", record.read_error))
        return None
    refs[record.id] = record.ref
    return OcrItem(record.id, record.ref, record.data, record.text)


def collect_preprocess_errors(store: ArtifactStore) -> Manifest:
    """Join the chunks' error files into ``preprocessing_errors.jsonl``."""
    folder = store.path(f"errors/{STAGE}")
    parts = [f.read_text(encoding="utf-8") for f in sorted(folder.glob("*.jsonl"))]
    return store.write_bytes(ERRORS_FILE, "".join(parts).encode(), kind="errors")
