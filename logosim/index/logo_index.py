"""A loaded index: search by descriptor vectors, skip tombstones, expand queries (α-QE)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np

from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.pca import PCA_FILE
from logosim.index.build import index_kind, storage_blocks
from logosim.index.dba import augment
from logosim.index.ids import IdTable, Tombstones
from logosim.index.params import IDS_FILE, INDEX_FILE, IndexParams, IndexUnavailableError


@dataclass
class SearchResult:
    scores: list[np.ndarray]  # per query, descending (may hold fewer than k)
    ids: list[list[str]]


class LogoIndex:
    """A loaded index: search by descriptor vectors, skipping tombstoned slots."""

    def __init__(
        self, store: ArtifactStore, manifest: Manifest, index: faiss.Index, table: IdTable
    ):
        self.store, self.manifest, self.index, self.table = store, manifest, index, table
        self.params = IndexParams.model_validate(manifest.meta.get("params", {}))
        # what the stored vectors were built with: None for an index from before α-DBA
        self.dba: dict | None = manifest.meta.get("dba")
        self.refresh_tombstones()

    def refresh_tombstones(self) -> None:
        """Searches skip the table's tombstoned slots (call after changing the table)."""
        self._skip = Tombstones(self.table.tombstones)

    @classmethod
    def load(cls, store: ArtifactStore, *, mmap: bool = False) -> LogoIndex:
        """The published index. ``mmap``: map the file read-only instead of reading it (a
        50K HNSW opens in ms, and processes share its pages); the file is then checked by
        size, not by a full checksum, and the index must not be changed in place."""
        manifest = store.read_manifest(INDEX_FILE)
        if manifest is None:
            raise IndexUnavailableError(f"no index in {store.root}: run `logosim build` first")
        path = store.require(manifest, checksum=not mmap)
        ids = store.load_verified(IDS_FILE)
        if ids is None:
            raise IndexUnavailableError(f"{IDS_FILE} is missing or corrupt: rebuild the index")
        data = store.read_json(ids)
        if data.get("index") != manifest.sha256:
            raise IndexUnavailableError(
                "index and id table do not match (interrupted update?): rebuild"
            )
        table = IdTable(data["ids"], set(data["tombstones"]))
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        return cls(store, manifest, faiss.read_index(str(path), flags), table)

    @property
    def kind(self) -> str:
        return index_kind(self.index)

    def __len__(self) -> int:
        return self.table.live

    def _search_params(self, k: int, ef_search: int | None) -> faiss.SearchParameters | None:
        ef = max(ef_search or self.params.ef_search, k)
        return self._skip.params(self.kind, ef, self.params.nprobe)

    def search(self, vectors: np.ndarray, k: int, ef_search: int | None = None) -> SearchResult:
        k = max(1, min(k, len(self)))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, slots = self.index.search(vectors, k, params=self._search_params(k, ef_search))
        found = slots >= 0  # -1 where filtering left fewer than k
        ids = [[self.table.ids[s] for s in row[ok]] for row, ok in zip(slots, found, strict=True)]
        kept = [row[ok] for row, ok in zip(scores, found, strict=True)]
        return SearchResult(scores=kept, ids=ids)

    def expand(self, vectors: np.ndarray, ef_search: int | None = None) -> np.ndarray:
        """α-query expansion with the index's DBA settings: a vector from outside the index
        gets the weighting its stored vectors got (``augment`` over the live stored vectors
        of its n nearest hits). Unchanged when the index was built without DBA."""
        if not self.dba:
            return np.ascontiguousarray(vectors, dtype=np.float32)
        n = self.dba["neighbours"]
        params = self._search_params(n, ef_search)
        return augment(self.index, vectors, n, self.dba["alpha"], params=params)

    def vectors(self, ids: list[str]) -> np.ndarray:
        """Stored descriptors of indexed ids (``reconstruct`` through the id map)."""
        return np.stack([self.index.reconstruct(int(self.table.position[i])) for i in ids])

    def live_vectors(self, block: int = 16384) -> Iterator[tuple[list[str], np.ndarray]]:
        """(ids, stored vectors) of the live slots in insertion order, a block at a time."""
        labels = faiss.vector_to_array(self.index.id_map)
        dead = np.fromiter(self.table.tombstones, dtype=np.int64)
        for start, vectors in zip(
            range(0, len(labels), block), storage_blocks(self.index, block), strict=True
        ):
            slots = labels[start : start + len(vectors)]
            live = ~np.isin(slots, dead)
            yield [self.table.ids[s] for s in slots[live]], vectors[live]


def index_pca(store: ArtifactStore, index: Manifest) -> Manifest | None:
    """The PCA model the index was built with (same bytes, or a refit of the same inputs)."""
    if not index.meta.get("pca"):
        return None
    pca = store.load_verified(PCA_FILE)
    inputs = index.meta.get("pca_inputs")
    if pca is None or (
        pca.sha256 != index.meta["pca"] and not (inputs and pca.meta.get("inputs") == inputs)
    ):
        raise IndexUnavailableError(
            "the PCA model is missing or changed since the index was built: rebuild"
        )
    return pca
