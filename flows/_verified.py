"""Running a single cached task whose artifact must still be intact."""

from __future__ import annotations

from typing import Any

from loguru import logger
from prefect import Task

from logosim.core.store import ArtifactStore, Manifest
from tasks._prefect import for_store


def run_verified(task: Task, store: str, **kwargs: Any) -> Manifest:
    """Run ``task`` (cache hit or not); if its artifact is gone or corrupt, recompute it."""
    artifacts = ArtifactStore(store)
    bound = for_store(task, artifacts.root)
    manifest: Manifest = bound(store=store, **kwargs)
    if not artifacts.verify(manifest):
        logger.warning(f"{manifest.path}: cached artifact missing or corrupt; recomputing")
        manifest = bound.with_options(refresh_cache=True)(store=store, **kwargs)
    return manifest
