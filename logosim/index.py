"""The FAISS index of logo descriptors, with string ids, incremental adds and tombstones.

Vectors are unit length, so inner product is cosine similarity. Below ``exact_below``
vectors the index is an exact ``IndexFlatIP`` (fast enough, and exact); above it an HNSW
graph. Both sit inside ``IndexIDMap2`` so ids travel with the vectors and ``reconstruct``
works. FAISS ids are positions in a sidecar id table (``index/ids.json``); a string id that
is deleted or replaced keeps its slot but its FAISS id joins a tombstone set that searches
skip (HNSW cannot delete). Past ``rebuild_fraction`` tombstones the index is rebuilt from
its own live vectors.

Database-side augmentation (α-DBA): each indexed vector is replaced by
``L2(v + Σ_j max(s_j, 0)^α · v_j)`` over its ``dba_neighbours`` nearest other vectors, which
pulls near-duplicates together (dev bench: mAP 0.347 → 0.356). Queries from outside the index
get the same weighting against the stored vectors (α-query expansion, ``LogoIndex.expand``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import faiss
import numpy as np
from loguru import logger
from pydantic import BaseModel, Field

from logosim.pca import PCA_FILE, Descriptors, iter_embeddings, l2_normalize
from logosim.store import ArtifactStore, Manifest, StoreError

INDEX_FILE = "index/index.faiss"
IDS_FILE = "index/ids.json"
INDEX_VERSION = "2"  # 2: α-DBA, recall measured on the stored vectors


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
    dba_neighbours: int = Field(
        2,
        ge=0,
        description="α-DBA: average each vector with this many nearest neighbours, and expand "
        "queries the same way (α-QE); 0 = off.",
    )
    dba_alpha: float = Field(
        3.0, ge=0.0, description="α-DBA/α-QE: a neighbour weighs max(similarity, 0)^alpha."
    )

    def dba(self) -> dict | None:
        """The augmentation settings recorded in the index manifest (None: off)."""
        if self.dba_neighbours == 0:
            return None
        return {"neighbours": self.dba_neighbours, "alpha": self.dba_alpha}


def describe_dba(dba: dict | None) -> str:
    """An index manifest's ``dba`` entry in words (artifact tables)."""
    return f"n={dba['neighbours']}, alpha={dba['alpha']}" if dba else "off"


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


class Tombstones:
    """A FAISS selector that skips tombstoned slots, and the search parameters using it.

    FAISS keeps raw pointers: the batch selector lives as long as the Not selector, and this
    object as long as the parameters it made are in use.
    """

    def __init__(self, dead: set[int]) -> None:
        self._batch = self.skip = None
        if dead:
            self._batch = faiss.IDSelectorBatch(np.fromiter(dead, dtype=np.int64))
            self.skip = faiss.IDSelectorNot(self._batch)

    def params(self, kind: str, ef_search: int) -> faiss.SearchParameters | None:
        if kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=ef_search, sel=self.skip)
        return faiss.SearchParameters(sel=self.skip) if self.skip is not None else None


def neighbour_augment(
    vectors: np.ndarray, scores: np.ndarray, neighbours: np.ndarray, alpha: float
) -> np.ndarray:
    """The α-weighted neighbour average ``L2(v + Σ_j max(s_j, 0)^α · v_j)``.

    ``scores`` (Q, n) and ``neighbours`` (Q, n, D): a missing neighbour is a zero vector.
    """
    weights = np.maximum(scores, 0.0) ** alpha
    return l2_normalize(vectors + np.einsum("qn,qnd->qd", weights, neighbours))


def nearest_others(
    index: faiss.Index,
    vectors: np.ndarray,
    n: int,
    own: np.ndarray | None = None,
    params: faiss.SearchParameters | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n (scores, labels) in ``index``, leaving out each row's own label ``own``.

    The own hit is dropped by label, not by rank: an exact duplicate may outrank it. Labels
    are -1 (score 0) where fewer than n were found.
    """
    k = n + (own is not None)
    scores, labels = index.search(vectors, k, params=params)
    keep = labels >= 0
    if own is not None:
        keep &= labels != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept hits first, in rank order
    kept = np.take_along_axis(keep, order, 1)
    labels = np.where(kept, np.take_along_axis(labels, order, 1), -1)
    return np.where(kept, np.take_along_axis(scores, order, 1), 0.0), labels


def augment(
    index: faiss.Index,
    vectors: np.ndarray,
    n: int,
    alpha: float,
    own: np.ndarray | None = None,
    params: faiss.SearchParameters | None = None,
) -> np.ndarray:
    """α-DBA (``own``: the rows' labels in ``index``) or α-QE (queries from outside) of
    ``vectors`` with their n nearest vectors stored in ``index``, searched as it searches."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n == 0 or index.ntotal == 0:
        return vectors
    scores, labels = nearest_others(index, vectors, n, own, params)
    found = labels >= 0
    if not found.any():
        return vectors
    fill = np.where(found, labels, labels[found][0])  # any stored label; zeroed below
    neighbours = index.reconstruct_batch(fill.ravel()).reshape(*labels.shape, -1)
    neighbours[~found] = 0.0
    return neighbour_augment(vectors, scores, neighbours, alpha)


def augment_collection(vectors: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """α-DBA of a whole in-memory collection with exact neighbours (benchmarks, tests): the
    code path of an exact index build."""
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    labels = np.arange(len(vectors), dtype=np.int64)
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)
    return augment(index, vectors, n, alpha, own=labels)


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


def _plain_index(
    store: ArtifactStore,
    manifests: list[Manifest],
    describe: Descriptors,
    params: IndexParams,
    total: int,
) -> tuple[faiss.Index, IdTable]:
    """Pass 1: the descriptors as they come, one chunk of raw features in memory at a time."""
    table, index = IdTable(), None
    for ids, vectors in _stream_vectors(store, manifests, describe):
        if index is None:
            index, _ = new_index(vectors.shape[1], total, params)
        index.add_with_ids(vectors, table.append(ids.tolist()))
    if index is None:
        raise IndexError_("no embeddings to index: every image failed or the source is empty")
    return index, table


def _augmented_index(
    store: ArtifactStore,
    manifests: list[Manifest],
    describe: Descriptors,
    plain: faiss.Index,
    table: IdTable,
    params: IndexParams,
    total: int,
) -> faiss.Index:
    """Pass 2 (α-DBA): stream the chunks again; each vector is averaged with its nearest
    other vectors in the plain index and added, same slot, to a new index.

    Neighbours are searched the way the index is: exactly for an exact index, through the
    HNSW graph (efSearch = ``ef_search``) for HNSW, so a large build costs a second graph
    and a search per vector. Both indexes are in memory during the pass; chunks stream.
    """
    index, kind = new_index(plain.d, total, params)
    skip = Tombstones(table.tombstones)  # duplicate ids: only the latest slot counts
    search = skip.params(kind, max(params.ef_search, params.dba_neighbours + 1))
    start = 0
    for ids, vectors in _stream_vectors(store, manifests, describe):
        if table.ids[start : start + len(ids)] != ids.tolist():
            raise IndexError_("embedding chunks changed during the index build: run it again")
        slots = np.arange(start, start + len(ids), dtype=np.int64)
        augmented = augment(
            plain, vectors, params.dba_neighbours, params.dba_alpha, own=slots, params=search
        )
        index.add_with_ids(augmented, slots)
        start += len(ids)
    return index


def _storage_blocks(index: faiss.Index, block: int = 16384) -> Iterator[np.ndarray]:
    """The stored vectors in insertion order (= labels in a fresh build), a block at a time."""
    inner = faiss.downcast_index(index.index)
    for start in range(0, index.ntotal, block):
        yield inner.reconstruct_n(start, min(block, index.ntotal - start))


def _recall(index: faiss.Index, params: IndexParams, seed: int) -> dict[str, float]:
    """HNSW recall vs exact search, measured on the stored (final) vectors. Exact search is 1
    by construction; HNSW without a sample is "not measured" ({})."""
    if index_kind(index) == "exact":
        return {"recall@10": 1.0, "recall@100": 1.0}
    size = min(params.recall_sample, index.ntotal)
    if not size:
        return {}
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(index.ntotal, size=size, replace=False)).astype(np.int64)
    return measure_recall(index, index.reconstruct_batch(picked), _storage_blocks(index), params)


def build_index(
    store: ArtifactStore,
    manifests: list[Manifest],
    pca: Manifest | None,
    params: IndexParams,
    meta: dict | None = None,
    seed: int = 0,
) -> Manifest:
    """Stream the embedding chunks through the descriptor transform into a new index, then
    (α-DBA on) stream them again to store each vector averaged with its neighbours.

    Only one chunk of raw features is in memory at a time (plus the index; two during DBA).
    """
    describe = Descriptors.load(store, pca)
    total = sum(m.rows for m in manifests)
    started = time.perf_counter()
    index, table = _plain_index(store, manifests, describe, params, total)
    build_s = time.perf_counter() - started
    kind = index_kind(index)
    dba = params.dba()
    if dba:
        started = time.perf_counter()
        index = _augmented_index(store, manifests, describe, index, table, params, total)
        dba |= {"search": kind, "seconds": round(time.perf_counter() - started, 2)}
    recall = _recall(index, params, seed)
    logger.info(
        f"index: {kind}, {index.ntotal} vectors × {index.d} dims in {build_s:.1f}s"
        + (f" + α-DBA {dba['seconds']:.1f}s" if dba else "")
        + f"; recall vs exact {recall}"
    )
    info = {
        **(meta or {}),
        "params": params.model_dump(),
        "pca": pca.sha256 if pca else None,
        "pca_inputs": pca.meta.get("inputs") if pca else None,
        "embeddings": [m.sha256 for m in manifests],
        "build_seconds": round(build_s, 2),
        "dba": dba,
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
            raise IndexError_(f"no index in {store.root}: run `logosim build` first")
        path = store.require(manifest, checksum=not mmap)
        ids = store.load_verified(IDS_FILE)
        if ids is None:
            raise IndexError_(f"{IDS_FILE} is missing or corrupt: rebuild the index")
        data = store.read_json(ids)
        if data.get("index") != manifest.sha256:
            raise IndexError_("index and id table do not match (interrupted update?): rebuild")
        table = IdTable(data["ids"], set(data["tombstones"]))
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        return cls(store, manifest, faiss.read_index(str(path), flags), table)

    @property
    def kind(self) -> str:
        return index_kind(self.index)

    def __len__(self) -> int:
        return self.table.live

    def _search_params(self, k: int, ef_search: int | None) -> faiss.SearchParameters | None:
        return self._skip.params(self.kind, max(ef_search or self.params.ef_search, k))

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
            range(0, len(labels), block), _storage_blocks(self.index, block), strict=True
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
        raise IndexError_("the PCA model is missing or changed since the index was built: rebuild")
    return pca


def _rebuild_if_needed(store: ArtifactStore, loaded: LogoIndex) -> tuple[faiss.Index, IdTable]:
    """Drop tombstoned slots past ``rebuild_fraction``: the live stored vectors (augmented
    already, when DBA is on) move as they are into a fresh index."""
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
    are replaced (their old slot is tombstoned).

    With α-DBA, each new vector is averaged with its n nearest live vectors as stored
    (``LogoIndex.expand``: the replaced slot is skipped; images added earlier in the same
    call count). Vectors already in the index are not re-augmented with the newcomers, and
    the stored neighbours are augmented ones, not plain: a full rebuild re-augments
    everything the build way.
    """
    loaded = LogoIndex.load(store)
    pca = index_pca(store, loaded.manifest)
    describe = Descriptors.load(store, pca)
    added = 0
    for ids, vectors in _stream_vectors(store, new_chunks, describe):
        slots = loaded.table.append(ids.tolist())
        loaded.refresh_tombstones()  # a changed image is not its own old neighbour
        loaded.index.add_with_ids(loaded.expand(vectors), slots)
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
