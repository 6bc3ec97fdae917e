"""Preprocessing tasks: OCR masks per chunk (cached), and the error collection."""

from __future__ import annotations

from prefect import task

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from logosim.preprocess.stage import collect_preprocess_errors, preprocess_chunk
from tasks._prefect import chunk_task, transient_io


# Cached on chunk content + OCR/mask settings (+ whether Tesseract was there): OCR runs once
# per image ever; the number of workers is not in the key.
@chunk_task
def preprocess_chunk_task(job: ChunkJob) -> Manifest:
    return preprocess_chunk(job)


# Cheap, so always rerun: it mirrors whichever chunks exist now.
@task(retries=2, retry_condition_fn=transient_io)
def collect_preprocess_errors_task(store: str) -> Manifest:
    return collect_preprocess_errors(ArtifactStore(store))
