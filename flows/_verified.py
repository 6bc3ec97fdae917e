"""Running a single cached task whose artifact must still be intact."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger
from prefect import Task

from logosim.core.store import ArtifactStore, Manifest
from tasks._prefect import for_store


def run_verified(
    task: Task, store: str, *, companions: Sequence[str] = (), **kwargs: Any
) -> Manifest:
    """Run ``task`` (cache hit or not); if its artifact, or one of the ``companions`` it
    writes beside it (store paths, e.g. the index's id table), is gone or corrupt, recompute."""
    artifacts = ArtifactStore(store)
    bound = for_store(task, artifacts.root)
    manifest: Manifest = bound(store=store, **kwargs)
    broken = [manifest.path] if not artifacts.verify(manifest) else []
    broken += [rel for rel in companions if artifacts.load_verified(rel) is None]
    if broken:
        logger.warning(f"{', '.join(broken)}: cached artifact missing or corrupt; recomputing")
        manifest = bound.with_options(refresh_cache=True)(store=store, **kwargs)
    return manifest
