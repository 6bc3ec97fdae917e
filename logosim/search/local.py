"""The stored local descriptors of a store's marks, memory-mapped, gathered by id.

Each embedding chunk ``embeddings/<key>.npz`` may have a sidecar ``local/<key>.npy`` of
``(rows, slots, 64)`` fp16 blocks in the same row order (``logosim.embed.local_features``).
At search time the re-ranker asks for 1,000 candidates' blocks: they are gathered from the
memory-mapped files with sorted row indices (the page cache does the rest), ~8 MB a query.

A candidate without a block (a chunk embedded before issue 12 whose local task has not run,
a corrupt or truncated file) gets ``ok = False`` and is scored on the remaining terms; the
store says how to add them (``logosim build`` again: only the missing chunk files are made).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from loguru import logger

from logosim.core.store import ArtifactStore
from logosim.embed.local_features import LOCAL_DIM, LOCAL_VERSION, Layout

LOCAL_DIR = "local"
HOW_TO_ADD = (
    "run `logosim build` again (with local descriptors on, the default): each embedded "
    "chunk gets its local/<key>.npy once, the embeddings and index are reused"
)


class LocalTable:
    """id → (file, row) over every current ``local/*.npy`` of a store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self.files: list[np.ndarray] = []
        self.where: dict[str, tuple[int, int]] = {}
        self.layout: Layout | None = None
        self.problems: list[str] = []
        folder = store.path(LOCAL_DIR)
        for path in sorted(Path(folder).glob("*.npy")) if folder.is_dir() else []:
            self._add(path)
        if not self.where:
            logger.info(f"no local descriptors in {store.root}: {HOW_TO_ADD}")

    def _add(self, path: Path) -> None:
        rel = f"{LOCAL_DIR}/{path.name}"
        manifest = self.store.read_manifest(rel)
        if manifest is None or manifest.versions.get("local") != LOCAL_VERSION:
            self.problems.append(f"{rel}: no manifest or an older version")
            return
        if not self.store.verify(manifest, checksum=False):
            self.problems.append(f"{rel}: size differs from its manifest (truncated?)")
            logger.warning(f"local descriptors {rel}: corrupt; its marks are scored without them")
            return
        try:
            blocks = np.load(path, mmap_mode="r")
            key = path.name.removesuffix(".npy")
            embeddings = self.store.read_manifest(f"embeddings/{key}.npz")
            if embeddings is None:
                raise FileNotFoundError(f"embeddings/{key}.npz")
            with np.load(self.store.path(embeddings.path)) as data:
                ids = data["ids"].tolist()
        except (OSError, ValueError, KeyError) as exc:
            self.problems.append(f"{rel}: {type(exc).__name__}: {exc}")
            logger.warning(f"local descriptors {rel}: unreadable ({exc})")
            return
        if blocks.ndim != 3 or blocks.shape[0] != len(ids) or blocks.shape[2] != LOCAL_DIM:
            self.problems.append(f"{rel}: shape {blocks.shape} does not fit {len(ids)} ids")
            return
        grid = manifest.meta.get("layout", {}).get("grid", [7, 7])
        self.layout = self.layout or Layout(tuple(grid))  # type: ignore[arg-type]
        if blocks.shape[1] != self.layout.slots:
            self.problems.append(f"{rel}: {blocks.shape[1]} slots, expected {self.layout.slots}")
            return
        number = len(self.files)
        self.files.append(blocks)
        for row, mark in enumerate(ids):
            self.where[mark] = (number, row)

    def __len__(self) -> int:
        return len(self.where)

    def gather(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Blocks (K, slots, 64) fp16 of ``ids`` and ``ok`` (K,); zeros where missing."""
        layout = self.layout or Layout()
        out = np.zeros((len(ids), layout.slots, LOCAL_DIM), dtype=np.float16)
        ok = np.zeros(len(ids), dtype=bool)
        by_file: dict[int, list[tuple[int, int]]] = {}
        for position, mark in enumerate(ids):
            found = self.where.get(mark)
            if found is not None:
                by_file.setdefault(found[0], []).append((found[1], position))
        for number, pairs in by_file.items():
            pairs.sort()
            rows = np.fromiter((r for r, _ in pairs), dtype=np.int64, count=len(pairs))
            where = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
            try:
                out[where] = self.files[number][rows]
                ok[where] = True
            except (OSError, ValueError) as exc:  # a file that went bad since it was opened
                logger.warning(f"local descriptors: file {number} unreadable ({exc})")
        bad = ok & ~np.isfinite(out.astype(np.float32)).all(axis=(1, 2))
        if bad.any():
            logger.warning(f"local descriptors: {int(bad.sum())} corrupt blocks ignored")
            ok &= ~bad
        missing = len(ids) - int(ok.sum())
        if missing:
            logger.info(f"local descriptors: {missing} of {len(ids)} candidates have none")
        return out, ok
