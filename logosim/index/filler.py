"""Filling a new index with (vectors, slots) as they stream in.

An exact or HNSW index takes them as they come. An IVF files them at the end, from an
unlinked scratch copy: it trains first (when untrained) on the first ``train_points``
vectors, counts how many vectors each list gets, and sizes every list exactly before adding.
FAISS grows a list by doubling its storage, which left a 1M × 512 IVF at 2.72 GB resident
for 1.95 GB of vectors; sized first, 2.02 GB (notes/issue-17-speed.md §3b).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
from loguru import logger

from logosim.index import ivf
from logosim.index.params import IndexParams, IndexUnavailableError


class Filler:
    def __init__(self, index: faiss.Index, params: IndexParams, scratch: Path) -> None:
        self.index = index
        self._ivf = ivf.inner_ivf(index)
        self._want = 0
        self._sample: list[np.ndarray] = []
        self._sampled = 0
        self._blocks: list[int] = []  # rows per spilled block, in order
        self._spill = None
        if self._ivf is not None:
            scratch.mkdir(parents=True, exist_ok=True)
            # closed by finish(), or by the GC when a build fails before it
            self._spill = tempfile.TemporaryFile(dir=scratch, prefix=".fill-")  # noqa: SIM115
            if not self._ivf.is_trained:
                self._want = ivf.train_points(self._ivf.nlist, params.ivf_train_per_list)

    def add(self, vectors: np.ndarray, slots: np.ndarray) -> None:
        if self._spill is None:
            self.index.add_with_ids(vectors, slots)
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._spill.write(np.ascontiguousarray(slots, dtype=np.int64).tobytes())
        self._spill.write(vectors.tobytes())
        self._blocks.append(len(slots))
        if self._sampled < self._want:
            self._sample.append(vectors[: self._want - self._sampled].copy())
            self._sampled += len(self._sample[-1])

    def _spilled(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The spilled (vectors, slots) blocks in the order they came."""
        self._spill.seek(0)
        dim = self.index.d
        for rows in self._blocks:
            slots = np.frombuffer(self._spill.read(rows * 8), dtype=np.int64)
            vectors = np.frombuffer(self._spill.read(rows * dim * 4), dtype=np.float32)
            yield vectors.reshape(rows, dim), slots

    def finish(self) -> faiss.Index:
        """The filled index (an IVF: trained if it was not, lists sized, then filed)."""
        if self._spill is None:
            return self.index
        try:
            if self._want:
                self._train()
            counts = np.zeros(self._ivf.nlist, dtype=np.int64)
            for vectors, _ in self._spilled():
                counts += np.bincount(ivf.assign(self.index, vectors), minlength=len(counts))
            ivf.reserve(self.index, counts)
            for vectors, slots in self._spilled():
                self.index.add_with_ids(vectors, slots)
        finally:
            self._spill.close()
            self._spill = None
        return self.index

    def _train(self) -> None:
        nlist, rows = self._ivf.nlist, sum(self._blocks)
        if rows < nlist:
            raise IndexUnavailableError(
                f"an IVF index with {nlist} lists needs at least that many vectors; there "
                f"are {rows} (use kind 'hnsw' or a smaller nlist)"
            )
        started = time.perf_counter()
        ivf.train(self.index, np.concatenate(self._sample))
        self._sample.clear()
        logger.info(
            f"index: IVF k-means, {nlist} lists on {self._sampled} vectors in "
            f"{time.perf_counter() - started:.1f}s"
        )
