"""The preprocess flow: plan chunks → OCR + text masks per chunk (cached) → errors → the
``prepare`` spec the embed flow applies on the fly (masks only; no image copies on disk).
"""

from __future__ import annotations

from loguru import logger
from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._chunks import run_chunk_tasks
from flows.runner import chunk_task_runner
from logosim.core.settings import get_settings
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import plan_chunks
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.params import PrepareSpec
from logosim.preprocess.mask_store import prepare_spec
from logosim.preprocess.ocr import tesseract_available
from logosim.preprocess.ocr_words import words_path
from logosim.preprocess.stage import STAGE, PreprocessParams, preprocess_job, warn_tesseract_missing
from tasks._prefect import for_store
from tasks.preprocess import collect_preprocess_errors_task, preprocess_chunk_task


# One chunk at a time: each chunk's OCR pool already uses every core.
# One chunk at a time locally (OCR uses every core); chunks fan out on Dask (flows/runner.py).
@flow(name="preprocess", log_prints=True, task_runner=chunk_task_runner(threads=1))
def preprocess_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    params: PreprocessParams | None = None,
    chunk_size: int | None = None,
) -> list[Manifest]:
    """Text masks for every image of ``source`` in ``masks/<cache-key>.npz``."""
    source = source or SourceSpec()
    store = store or str(get_settings().store.expanduser().resolve())
    params = params or PreprocessParams()
    available = tesseract_available()
    if not available:
        warn_tesseract_missing()  # once per run, here; chunks then record NO_OCR flags
    chunks = plan_chunks(open_source(source), chunk_size or get_settings().chunk_size)
    jobs = [preprocess_job(store, source, chunk, params, available) for chunk in chunks]
    manifests = run_chunk_tasks(preprocess_chunk_task, jobs, label=STAGE)
    manifests = _with_words(store, jobs, manifests)
    collect_preprocess_errors_task(store)
    _publish_summary(manifests)
    return manifests


def _with_words(store: str, jobs: list, manifests: list[Manifest]) -> list[Manifest]:
    """Chunks preprocessed before OCR words were kept (issue 12) run once more to add their
    ``ocr/<key>.npz``; their mask files come out the same, so embeddings stay cached."""
    artifacts = ArtifactStore(store)
    out = []
    for job, manifest in zip(jobs, manifests, strict=True):
        ocr_ran = manifest.meta.get("ocr_available", False)
        if ocr_ran and artifacts.load_verified(words_path(manifest.path)) is None:
            logger.info(f"{job.chunk.name}: no OCR words stored yet; running OCR once more")
            bound = for_store(preprocess_chunk_task, artifacts.root)
            manifest = bound.with_options(refresh_cache=True)(job)
        out.append(manifest)
    return out


def embed_prepare(manifests: list[Manifest], params: PreprocessParams) -> PrepareSpec | None:
    """What ``embed_flow(prepare=...)`` needs to inpaint text; None when masking is off."""
    if not params.text_mask or not manifests:
        return None
    return PrepareSpec.model_validate(prepare_spec(manifests, params.mask))


def _publish_summary(manifests: list[Manifest]) -> None:
    rows = [
        {"chunk": m.meta.get("chunk", m.path), "images": m.rows, "errors": m.meta.get("errors", 0)}
        | m.meta.get("flags", {})
        for m in manifests
    ]
    if rows:
        create_table_artifact(rows, key="preprocess-chunks", description="Text masks per chunk")
