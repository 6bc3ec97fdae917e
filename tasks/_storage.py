"""Where Prefect keeps task results (manifests) and thus the cache: the store, or a shared URL.

``LOGOSIM_RESULT_STORAGE`` takes a folder or any fsspec URL (``s3://bucket/results``): workers
on several machines that share it (and a mounted artifact store) share one cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect.filesystems import RemoteFileSystem, WritableFileSystem

RESULT_STORAGE_ENV = "LOGOSIM_RESULT_STORAGE"


def result_storage(store_root: str | Path, target: str | None = None) -> Path | WritableFileSystem:
    """``target`` (default: the env setting) or ``<store>/_prefect/results``.

    Prefect reads a plain string as a block slug, so folders are returned as ``Path`` and
    URLs as an (unsaved) ``RemoteFileSystem`` block.
    """
    target = target if target is not None else os.environ.get(RESULT_STORAGE_ENV)
    if not target:
        return Path(store_root).resolve() / "_prefect" / "results"
    if target.startswith("file://"):
        return Path(target.removeprefix("file://")).resolve()
    if "://" in target:
        return RemoteFileSystem(basepath=target.rstrip("/"))
    return Path(target).expanduser().resolve()
