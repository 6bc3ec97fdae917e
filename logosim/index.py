"""The FAISS index of logo descriptors, with string ids, incremental adds and tombstones.

Vectors are unit length, so inner product is cosine similarity. Below ``exact_below``
vectors the index is an exact ``IndexFlatIP`` (fast enough, and exact); above it an HNSW
graph. Both sit inside ``IndexIDMap2`` so ids travel with the vectors and ``reconstruct``
works. FAISS ids are positions in a sidecar id table (``index/ids.json``); a string id that
is deleted or replaced keeps its slot but its FAISS id joins a tombstone set that searches
skip (HNSW cannot delete). Past ``rebuild_fraction`` tombstones the index is rebuilt from
its own live vectors.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import faiss
import numpy as np
from loguru import logger
from pydantic import BaseModel, Field

from logosim.pca import PCA_FILE, Descriptors, iter_embeddings
from logosim.store import ArtifactStore, Manifest, StoreError

INDEX_FILE = "index/index.faiss"
IDS_FILE = "index/ids.json"
INDEX_VERSION = "1"


class IndexParams(BaseModel):
    """How the index is built and searched (a form in the Prefect UI)."""

    exact_below: int = Field(50_000, ge=0, description="Use exact search below this many vectors.")
    m: int = Field(32, ge=4, description="HNSW: neighbours per node.")
    ef_construction: int = Field(200, ge=8, description="HNSW: build-time search depth.")
    ef_search: int = Field(256, ge=8, description="HNSW: query-time search depth.")
    recall_sample: int = Field(500, ge=0, description="Queries used to report HNSW recall.")
    rebuild_fraction: float = Field(
        0.2, gt=0.0, le=1.0, description="Rebuild once this share of slots is tombstoned."
    )


class IndexError_(StoreError):
    """The index is missing or inconsistent with its id table."""


def _hnsw(dim: int, params: IndexParams) -> faiss.Index:
    graph = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = params.ef_construction
    graph.hnsw.efSearch = params.ef_search
    return graph


def new_index(dim: int, expected_rows: int, params: IndexParams) -> tuple[faiss.Index, str]:
    """An empty id-mapped index: exact below the threshold, HNSW above it."""
    if expected_rows < params.exact_below:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "exact"
    return faiss.IndexIDMap2(_hnsw(dim, params)), "hnsw"


def index_kind(index: faiss.Index) -> str:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "exact"


@dataclass
class IdTable:
    """FAISS id (position) ↔ string id, plus the tombstoned positions."""

    ids: list[str] = field(default_factory=list)
    tombstones: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.position = {value: pos for pos, value in enumerate(self.ids)}  # latest slot wins

    @property
    def live(self) -> int:
        return len(self.ids) - len(self.tombstones)

    def append(self, new_ids: Iterable[str]) -> np.ndarray:
        """Give each id a slot; an id already present tombstones its old slot (a change)."""
        start = len(self.ids)
        for offset, value in enumerate(new_ids):
            old = self.position.get(value)
            if old is not None:
                self.tombstones.add(old)
            self.ids.append(value)
            self.position[value] = start + offset
        return np.arange(start, len(self.ids), dtype=np.int64)

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for value in ids:
            pos = self.position.pop(value, None)
            if pos is not None:
                self.tombstones.add(pos)
                removed += 1
        return removed

    def to_json(self, index_sha256: str) -> dict:
        return {"ids": self.ids, "tombstones": sorted(self.tombstones), "index": index_sha256}


def _stream_vectors(
    store: ArtifactStore, manifests: Iterable[Manifest], describe: Descriptors
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for ids, features in iter_embeddings(store, manifests):
        if len(ids):
            yield ids, describe(features)


def exact_topk(
    queries: np.ndarray, blocks: Iterable[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products against vectors streamed in blocks (bounded memory).

    Returns (scores, positions) where positions count rows across all blocks.
    """
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    offset = 0
    for block in blocks:
        scores = queries @ block.T
        ids = np.broadcast_to(np.arange(offset, offset + len(block)), scores.shape)
        best_s = np.concatenate([best_s, scores], axis=1)
        best_i = np.concatenate([best_i, ids], axis=1)
        if best_s.shape[1] > k:
            top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, top, 1)
            best_i = np.take_along_axis(best_i, top, 1)
        offset += len(block)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def recall_vs_exact(
    approx: np.ndarray, exact: np.ndarray, ks: Iterable[int] = (10, 100)
) -> dict[str, float]:
    """Share of the exact top-k found in the approximate top-k, averaged over queries."""
    out = {}
    for k in ks:
        k_eff = min(k, exact.shape[1], approx.shape[1])
        hits = [
            len(np.intersect1d(a[:k_eff], e[:k_eff])) for a, e in zip(approx, exact, strict=True)
        ]
        out[f"recall@{k}"] = float(np.mean(hits) / k_eff) if len(hits) and k_eff else 1.0
    return out


def measure_recall(
    index: faiss.Index, sample: np.ndarray, blocks: Iterable[np.ndarray], params: IndexParams
) -> dict[str, float]:
    """HNSW recall@10/@100 against exact search, on ``sample`` queries (a streamed pass)."""
    k = min(100, index.ntotal)
    _, exact = exact_topk(sample, blocks, k)
    _, approx = index.search(
        sample, k, params=faiss.SearchParametersHNSW(efSearch=params.ef_search)
    )
    return recall_vs_exact(approx, exact)


def _save(
    store: ArtifactStore,
    index: faiss.Index,
    table: IdTable,
    meta: dict,
) -> Manifest:
    dim = index.d
    expected = index.ntotal * (dim * 4 + 16) + (1 << 20)
    manifest = store.write_with(
        INDEX_FILE,
        lambda tmp: faiss.write_index(index, str(tmp)),
        kind="index",
        rows=table.live,
        versions={"index": INDEX_VERSION},
        meta={
            **meta,
            "type": index_kind(index),
            "dim": dim,
            "slots": len(table.ids),
            "tombstones": len(table.tombstones),
        },
        expected_bytes=expected,
    )
    store.write_json(IDS_FILE, table.to_json(manifest.sha256), kind="index-ids")
    return manifest


def build_index(
    store: ArtifactStore,
    manifests: list[Manifest],
    pca: Manifest | None,
    params: IndexParams,
    meta: dict | None = None,
    seed: int = 0,
) -> Manifest:
    """Stream the embedding chunks through the descriptor transform into a new index.

    Only one chunk of raw features is in memory at a time (plus the index itself).
    """
    describe = Descriptors.load(store, pca)
    total = sum(m.rows for m in manifests)
    rng = np.random.default_rng(seed)
    sample_pos = (
        set(rng.choice(total, size=min(params.recall_sample, total), replace=False).tolist())
        if total
        else set()
    )
    table, index, kind = IdTable(), None, "exact"
    sample: list[np.ndarray] = []
    started = time.perf_counter()
    for ids, vectors in _stream_vectors(store, manifests, describe):
        if index is None:
            index, kind = new_index(vectors.shape[1], total, params)
        first = len(table.ids)
        index.add_with_ids(vectors, table.append(ids.tolist()))
        picked = [p - first for p in range(first, first + len(ids)) if p in sample_pos]
        if picked:
            sample.append(vectors[picked])
    if index is None:
        raise IndexError_("no embeddings to index: every image failed or the source is empty")
    build_s = time.perf_counter() - started
    # exact search has recall 1 by construction; HNSW without a sample is "not measured"
    recall: dict[str, float] = {"recall@10": 1.0, "recall@100": 1.0} if kind == "exact" else {}
    if kind == "hnsw" and sample:
        blocks = (v for _, v in _stream_vectors(store, manifests, describe))
        recall = measure_recall(index, np.concatenate(sample), blocks, params)
    logger.info(
        f"index: {kind}, {index.ntotal} vectors × {index.d} dims in {build_s:.1f}s; "
        f"recall vs exact {recall}"
    )
    info = {
        **(meta or {}),
        "params": params.model_dump(),
        "pca": pca.sha256 if pca else None,
        "pca_inputs": pca.meta.get("inputs") if pca else None,
        "embeddings": [m.sha256 for m in manifests],
        "build_seconds": round(build_s, 2),
        "recall_vs_exact": recall,
    }
    return _save(store, index, table, info)


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
        self._refresh_selector()

    def _refresh_selector(self) -> None:
        # FAISS keeps raw pointers: hold the batch selector for as long as the Not selector.
        self._batch = self._not = None
        if self.table.tombstones:
            dead = np.fromiter(self.table.tombstones, dtype=np.int64)
            self._batch = faiss.IDSelectorBatch(dead)
            self._not = faiss.IDSelectorNot(self._batch)

    @classmethod
    def load(cls, store: ArtifactStore) -> LogoIndex:
        manifest = store.read_manifest(INDEX_FILE)
        if manifest is None:
            raise IndexError_(f"no index in {store.root}: run `logosim build` first")
        path = store.require(manifest)
        ids = store.load_verified(IDS_FILE)
        if ids is None:
            raise IndexError_(f"{IDS_FILE} is missing or corrupt: rebuild the index")
        data = store.read_json(ids)
        if data.get("index") != manifest.sha256:
            raise IndexError_("index and id table do not match (interrupted update?): rebuild")
        table = IdTable(data["ids"], set(data["tombstones"]))
        return cls(store, manifest, faiss.read_index(str(path)), table)

    @property
    def kind(self) -> str:
        return index_kind(self.index)

    def __len__(self) -> int:
        return self.table.live

    def search(self, vectors: np.ndarray, k: int, ef_search: int | None = None) -> SearchResult:
        k = max(1, min(k, len(self)))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.kind == "hnsw":
            ef = max(ef_search or self.params.ef_search, k)
            params = faiss.SearchParametersHNSW(efSearch=ef, sel=self._not)
        else:
            params = faiss.SearchParameters(sel=self._not) if self._not is not None else None
        scores, slots = self.index.search(vectors, k, params=params)
        found = slots >= 0  # -1 where filtering left fewer than k
        ids = [[self.table.ids[s] for s in row[ok]] for row, ok in zip(slots, found, strict=True)]
        kept = [row[ok] for row, ok in zip(scores, found, strict=True)]
        return SearchResult(scores=kept, ids=ids)

    def vectors(self, ids: list[str]) -> np.ndarray:
        """Stored descriptors of indexed ids (``reconstruct`` through the id map)."""
        return np.stack([self.index.reconstruct(int(self.table.position[i])) for i in ids])

    def live_vectors(self) -> Iterator[tuple[list[str], np.ndarray]]:
        live = [p for p in range(len(self.table.ids)) if p not in self.table.tombstones]
        for start in range(0, len(live), 16384):
            part = live[start : start + 16384]
            yield (
                [self.table.ids[p] for p in part],
                np.stack([self.index.reconstruct(p) for p in part]),
            )


def index_pca(store: ArtifactStore, index: Manifest) -> Manifest | None:
    """The PCA model the index was built with (same bytes, or a refit of the same inputs)."""
    if not index.meta.get("pca"):
        return None
    pca = store.load_verified(PCA_FILE)
    inputs = index.meta.get("pca_inputs")
    if pca is None or (
        pca.sha256 != index.meta["pca"] and not (inputs and pca.meta.get("inputs") == inputs)
    ):
        raise IndexError_("the PCA model is missing or changed since the index was built: rebuild")
    return pca


def _rebuild_if_needed(store: ArtifactStore, loaded: LogoIndex) -> tuple[faiss.Index, IdTable]:
    table = loaded.table
    if not table.ids or len(table.tombstones) / len(table.ids) < loaded.params.rebuild_fraction:
        return loaded.index, table
    logger.info(f"index: {len(table.tombstones)} tombstones of {len(table.ids)} slots; rebuilding")
    fresh_table = IdTable()
    index, _ = new_index(loaded.index.d, table.live, loaded.params)
    for ids, vectors in loaded.live_vectors():
        index.add_with_ids(vectors, fresh_table.append(ids))
    return index, fresh_table


def add_to_index(store: ArtifactStore, new_chunks: list[Manifest]) -> Manifest:
    """Add new or changed images (embedding chunks) without a rebuild; ids already indexed
    are replaced (their old slot is tombstoned)."""
    loaded = LogoIndex.load(store)
    pca = index_pca(store, loaded.manifest)
    describe = Descriptors.load(store, pca)
    added = 0
    for ids, vectors in _stream_vectors(store, new_chunks, describe):
        loaded.index.add_with_ids(vectors, loaded.table.append(ids.tolist()))
        added += len(ids)
    index, table = _rebuild_if_needed(store, loaded)
    meta = dict(loaded.manifest.meta)
    meta["embeddings"] = list(meta.get("embeddings", [])) + [m.sha256 for m in new_chunks]
    logger.info(f"index: added {added} vectors; {table.live} live")
    return _save(store, index, table, meta)


def remove_from_index(store: ArtifactStore, ids: Iterable[str]) -> Manifest:
    """Tombstone deleted images; searches skip them at once, a rebuild reclaims them later."""
    loaded = LogoIndex.load(store)
    removed = loaded.table.remove(ids)
    index, table = _rebuild_if_needed(store, loaded)
    logger.info(f"index: removed {removed} ids; {table.live} live")
    return _save(store, index, table, dict(loaded.manifest.meta))
