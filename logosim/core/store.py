"""The artifact store: every heavy output is written atomically and described by a manifest.

Writes go to a temporary name in the destination folder, are fsynced, then renamed, so a
killed process or a full disk never leaves a half-written artifact under its final name.
Each artifact has a sidecar ``<name>.manifest.json``; reads check size and sha256 first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from pydantic import BaseModel, Field

MANIFEST_SUFFIX = ".manifest.json"


class StoreError(RuntimeError):
    """Base class of store failures."""


class CorruptArtifactError(StoreError):
    """An artifact is missing, truncated or fails its checksum."""


class DiskSpaceError(StoreError):
    """Not enough free disk space for a planned write."""


class Manifest(BaseModel):
    """What a task returns instead of the data itself: small, JSON-serialisable, checkable."""

    path: str = Field(description="Path of the artifact, relative to the store root.")
    sha256: str
    size: int
    rows: int = 0
    kind: str = ""
    versions: dict[str, str] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
TMP_SUFFIX = ".tmp"


def is_temp_file(path: Path) -> bool:
    """A temporary file of an atomic write (``.NAME.PID.XXXX.tmp``, or ``.NAME.XXXX.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def temp_writer(path: Path) -> int | None:
    """The pid of the process that was writing this temporary file (``.NAME.PID.XXXX.tmp``);
    None for a file that is no such temporary file (or predates the pid in the name)."""
    name = path.name
    if not is_temp_file(path):
        return None
    parts = name[: -len(TMP_SUFFIX)].rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _free_mib(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        return "free space unknown"


def sweep_dead_temps(root: Path, old_seconds: float = 3600.0) -> list[Path]:
    """Remove temporary files whose writer is gone (killed mid-write): its pid is not
    running, or, for a name without a pid, the file is older than ``old_seconds``. A live
    writer's temporary file is never touched."""
    removed = []
    for path in root.rglob(f".*{TMP_SUFFIX}"):
        writer = temp_writer(path)
        try:
            dead = (
                not psutil.pid_exists(writer)
                if writer is not None
                else time.time() - path.stat().st_mtime > old_seconds
            )
            if dead and path.is_file():
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success fsync it and rename it into place.

    A failed write leaves ``final`` as it was (the temporary file goes). A full disk becomes a
    ``DiskSpaceError`` naming the file and the free space (not worth a retry); another I/O
    error stays an ``OSError`` (retried by the tasks) but names the file too.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        # the writer's pid in the name: a leftover of a killed writer can be told apart
        prefix = f".{final.name}.{os.getpid()}."
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=TMP_SUFFIX, dir=final.parent)
    except OSError as exc:
        raise _named(exc, final) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        raise _named(exc, final) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _named(exc: OSError, final: Path) -> Exception:
    if exc.errno in FULL_DISK:
        return DiskSpaceError(
            f"disk full while writing {final} ({_free_mib(final.parent)}): {exc.strerror}. "
            "Free space or point LOGOSIM_STORE at a larger disk; a rerun then resumes."
        )
    return OSError(exc.errno, f"{exc.strerror or exc} while writing {final}")


def atomic_write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def ensure_free_space(folder: Path, needed_bytes: int, reserve_bytes: int = 0) -> None:
    """Fail early, with a message a person can act on, instead of dying mid-write."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed_bytes + reserve_bytes:
        raise DiskSpaceError(
            f"not enough disk space in {folder}: need {needed_bytes / 2**20:.1f} MiB "
            f"(+{reserve_bytes / 2**20:.0f} MiB reserve), {free / 2**20:.1f} MiB free. "
            "Free space or point LOGOSIM_STORE at a larger disk."
        )


class ArtifactStore:
    """A folder of artifacts with manifests. Safe to share between processes."""

    def __init__(self, root: Path | str, reserve_bytes: int = 0) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.reserve_bytes = reserve_bytes

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------
    def path(self, rel: str | Path) -> Path:
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root):
            raise StoreError(f"{rel!s} escapes the store root {self.root}")
        return target

    def manifest_path(self, rel: str | Path) -> Path:
        target = self.path(rel)
        return target.with_name(target.name + MANIFEST_SUFFIX)

    def check_space(self, needed_bytes: int) -> None:
        ensure_free_space(self.root, needed_bytes, self.reserve_bytes)

    # -- writing ---------------------------------------------------------------------------
    def write_with(
        self,
        rel: str | Path,
        writer: Callable[[Path], None],
        *,
        kind: str,
        rows: int = 0,
        versions: dict[str, str] | None = None,
        meta: dict[str, Any] | None = None,
        expected_bytes: int = 0,
    ) -> Manifest:
        """Let ``writer`` fill a temporary file, then publish it and its manifest atomically."""
        if expected_bytes:
            self.check_space(expected_bytes)
        final = self.path(rel)
        with atomic_path(final) as tmp:
            writer(tmp)
            size = tmp.stat().st_size
            digest = sha256_file(tmp)
        manifest = Manifest(
            path=final.relative_to(self.root).as_posix(),
            sha256=digest,
            size=size,
            rows=rows,
            kind=kind,
            versions=versions or {},
            meta=meta or {},
        )
        atomic_write_bytes(self.manifest_path(rel), manifest.model_dump_json(indent=1).encode())
        return manifest

    def write_bytes(self, rel: str | Path, data: bytes, **kw: Any) -> Manifest:
        kw.setdefault("expected_bytes", len(data))
        return self.write_with(rel, lambda tmp: tmp.write_bytes(data), **kw)

    def write_json(self, rel: str | Path, obj: Any, **kw: Any) -> Manifest:
        data = json.dumps(obj, indent=1, sort_keys=True, default=str).encode()
        kw.setdefault("kind", "json")
        return self.write_bytes(rel, data, **kw)

    def write_arrays(self, rel: str | Path, arrays: dict[str, np.ndarray], **kw: Any) -> Manifest:
        """Save named arrays as an uncompressed ``.npz`` (fast to write and to read back)."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        kw.setdefault("kind", "arrays")
        return self.write_bytes(rel, buffer.getvalue(), **kw)

    # -- reading ---------------------------------------------------------------------------
    def read_manifest(self, rel: str | Path) -> Manifest | None:
        sidecar = self.manifest_path(rel)
        try:
            return Manifest.model_validate_json(sidecar.read_bytes())
        except (OSError, ValueError):
            return None

    def verify(self, manifest: Manifest, *, checksum: bool = True) -> bool:
        """True when the artifact exists with the recorded size (and sha256)."""
        target = self.path(manifest.path)
        try:
            if target.stat().st_size != manifest.size:
                return False
        except OSError:
            return False
        return not checksum or sha256_file(target) == manifest.sha256

    def require(self, manifest: Manifest, *, checksum: bool = True) -> Path:
        if not self.verify(manifest, checksum=checksum):
            raise CorruptArtifactError(
                f"artifact {manifest.path} is missing or fails its checksum; rerun the stage "
                "that produced it (its cached result will be recomputed)"
            )
        return self.path(manifest.path)

    def read_bytes(self, manifest: Manifest) -> bytes:
        data = self.require(manifest, checksum=False).read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.sha256:
            raise CorruptArtifactError(f"artifact {manifest.path} fails its checksum")
        return data

    def read_json(self, manifest: Manifest) -> Any:
        return json.loads(self.read_bytes(manifest))

    def read_arrays(self, manifest: Manifest) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.read_bytes(manifest)), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def load_verified(self, rel: str | Path) -> Manifest | None:
        """The manifest at ``rel`` if its artifact is intact, else None (so it gets recomputed)."""
        manifest = self.read_manifest(rel)
        if manifest is not None and self.verify(manifest):
            return manifest
        return None
