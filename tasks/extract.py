"""Extract tasks: one cached task per chunk of domains, one that joins the chunks."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from logosim.core.store import Manifest
from logosim.web.stage import (
    ExtractJob,
    ExtractSummary,
    extract_chunk,
    has_transient,
    publish_logos,
)
from tasks._prefect import chunk_task, transient_io


def extract_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """The chunk's content + settings digest; none (so the task runs) while the chunk's
    stored file still holds transient failures worth another try."""
    job: ExtractJob = parameters["job"]
    return None if has_transient(job) else job.cache_key


# Cached: a rerun skips finished chunks and re-extracts only timeouts and connection errors.
@chunk_task(cache_key_fn=extract_cache_key)
def extract_chunk_task(job: ExtractJob) -> Manifest:
    return extract_chunk(job)


# Cheap (joining a few Parquet files), so always rerun: it reflects the plan.
@task(retries=2, retry_condition_fn=transient_io)
def publish_logos_task(store: str, chunks: list[Manifest], out: str | None) -> ExtractSummary:
    return publish_logos(store, chunks, out)
