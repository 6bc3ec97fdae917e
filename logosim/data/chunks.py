"""Cutting a source into chunks and naming each by its content.

A chunk is a row range of a source. Its digest covers the ids and content fingerprints of
its rows, so it changes exactly when an image in it is added, removed or replaced; together
with a stage's code and settings version it is the chunk's cache key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Protocol

from loguru import logger
from pydantic import BaseModel

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import Source, SourceSpec


class ChunkSpec(BaseModel):
    index: int
    start: int
    stop: int
    digest: str

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"chunk-{self.index:05d}"


def _chunk_digest(fingerprints: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for record_id, fingerprint in fingerprints:
        digest.update(f"{record_id}\0{fingerprint}\n".encode())
    return digest.hexdigest()


def plan_chunks(source: Source, chunk_size: int) -> list[ChunkSpec]:
    """Row ranges of at most ``chunk_size`` rows with their content digests (one pass)."""
    total = len(source)
    chunks = []
    for index, start in enumerate(range(0, total, chunk_size)):
        stop = min(start + chunk_size, total)
        digest = _chunk_digest(source.fingerprints(start, stop))
        chunks.append(ChunkSpec(index=index, start=start, stop=stop, digest=digest))
    return chunks


class StageParams(Protocol):
    def version(self) -> str: ...

    def model_dump(self) -> dict[str, Any]: ...


class ChunkJob(BaseModel):
    """One unit of chunked work, as passed to a Prefect task.

    ``version`` is the digest of the stage's code version and the settings that change its
    output; batch size and device are deliberately left out of it.
    """

    stage: str
    store: str
    source: SourceSpec
    chunk: ChunkSpec
    version: str
    params: dict[str, Any] = {}

    @classmethod
    def of(
        cls, stage: str, store: str, source: SourceSpec, chunk: ChunkSpec, params: StageParams
    ) -> ChunkJob:
        """A job whose settings are one params model (its ``version()`` is the job's)."""
        return cls(
            stage=stage,
            store=store,
            source=source,
            chunk=chunk,
            version=params.version(),
            params=params.model_dump(),
        )

    @property
    def cache_key(self) -> str:
        return f"{self.stage}-{self.chunk.digest[:24]}-{self.version[:16]}"

    @property
    def source_chunk_name(self) -> str:
        """The chunk's name qualified by its source: a reindex embeds small delta sources
        whose chunks are also called chunk-00000, and their error files must not replace
        the build's."""
        return f"{self.chunk.name}-{stable_digest(self.source.path)[:8]}"


def finished_chunk(
    store: ArtifactStore, job: ChunkJob, rel: str, *companions: str
) -> Manifest | None:
    """The chunk's artifact when an earlier run wrote it (and the ``companions`` written
    with it, e.g. this source's error file) whole but was killed before Prefect recorded the
    task's result: named by the cache key, so it is reused, not recomputed."""
    manifest = store.load_verified(rel)
    if manifest is None or any(store.load_verified(c) is None for c in companions):
        return None
    logger.info(f"{job.stage} {job.chunk.name}: finished by an earlier run; reused")
    return manifest
