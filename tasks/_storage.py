"""Where Prefect keeps task results (manifests) and thus the cache: the store, or a shared URL.

``LOGOSIM_RESULT_STORAGE`` takes a folder or any fsspec URL (``s3://bucket/results``): workers
on several machines that share it (and a mounted artifact store) share one cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem

from logosim.core.store import atomic_write_bytes

RESULT_STORAGE_ENV = "LOGOSIM_RESULT_STORAGE"


class AtomicLocalFileSystem(LocalFileSystem):
    """Prefect's local result storage, with the store's atomic writes.

    Prefect's own ``LocalFileSystem`` writes a task's result record in place: a kill or a
    full disk mid-write leaves a cut record that a rerun's cache lookup then trips on. Here
    the record goes to a temporary file, fsynced and renamed; a full disk raises
    ``DiskSpaceError`` naming the file and the free space, and the record already there (if
    any) is untouched.
    """

    _block_type_name = "Logosim Atomic Local File System"

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> str:
        final = self._resolve_path(path)
        if final.exists() and not final.is_file():
            raise ValueError(f"Path {final} already exists and is not a file.")
        atomic_write_bytes(final, content)
        return str(final)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self.write_path(path, content)  # a record is small: no thread hop needed


def result_storage(store_root: str | Path, target: str | None = None) -> WritableFileSystem:
    """``target`` (default: the env setting) or ``<store>/_prefect/results``.

    Prefect reads a plain string as a block slug, so folders are returned as an (unsaved)
    ``AtomicLocalFileSystem`` block and URLs as an (unsaved) ``RemoteFileSystem`` block.
    """
    target = target if target is not None else os.environ.get(RESULT_STORAGE_ENV)
    if not target:
        folder = Path(store_root).resolve() / "_prefect" / "results"
    elif target.startswith("file://"):
        folder = Path(target.removeprefix("file://")).resolve()
    elif "://" in target:
        return RemoteFileSystem(basepath=target.rstrip("/"))
    else:
        folder = Path(target).expanduser().resolve()
    return AtomicLocalFileSystem(basepath=str(folder))
