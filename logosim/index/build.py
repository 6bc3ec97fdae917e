"""The FAISS index of logo descriptors, with string ids, incremental adds and tombstones.

Vectors are unit length, so inner product is cosine similarity. Below ``exact_below``
vectors the index is an exact ``IndexFlatIP`` (fast enough, and exact); above it an HNSW
graph, and from ``ivf_from`` an IVF with an HNSW coarse quantiser (``ivf.py``: an HNSW graph
of 1M vectors takes half an hour to build on 2 cores). All sit inside ``IndexIDMap2`` so ids
travel with the vectors and ``reconstruct`` works. FAISS ids are positions in a sidecar id table (``index/ids.json``); a string id that
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

import faiss
import numpy as np
from loguru import logger

from logosim.core.progress import ProgressChannel
from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.pca import Descriptors, iter_embeddings
from logosim.index import ivf
from logosim.index.dba import augment
from logosim.index.exact import measure_recall
from logosim.index.filler import Filler
from logosim.index.ids import IdTable, Tombstones
from logosim.index.ivf_dba import augment_in_place
from logosim.index.params import (
    IDS_FILE,
    INDEX_FILE,
    INDEX_VERSION,
    IndexParams,
    IndexUnavailableError,
)

# vectors filed, then (α-DBA on) vectors augmented: the CLI's bar and the task's artifact
PROGRESS = ProgressChannel()
progress_hook = PROGRESS.listen


def progress_total(rows: int, params: IndexParams) -> int:
    """Progress units of a build of ``rows`` vectors: one pass, two with α-DBA."""
    return rows * (2 if params.dba() else 1)


def _hnsw(dim: int, params: IndexParams) -> faiss.Index:
    graph = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = params.ef_construction
    graph.hnsw.efSearch = params.ef_search
    return graph


def new_index(dim: int, expected_rows: int, params: IndexParams) -> tuple[faiss.Index, str]:
    """An empty id-mapped index of the kind ``params`` choose for ``expected_rows`` vectors;
    an IVF comes untrained (``fill`` trains it on the first vectors)."""
    kind = params.choose_kind(expected_rows)
    if kind == "exact":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), kind
    if kind == "ivf":
        return faiss.IndexIDMap2(
            ivf.new_ivf(dim, params.nlist or ivf.nlist_for(expected_rows))
        ), kind
    return faiss.IndexIDMap2(_hnsw(dim, params)), kind


def index_kind(index: faiss.Index) -> str:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "ivf" if isinstance(inner, faiss.IndexIVF) else "exact"


def storage_blocks(index: faiss.Index, block: int = 16384) -> Iterator[np.ndarray]:
    """The stored vectors in insertion order (= labels in a fresh build), a block at a time."""
    inner = faiss.downcast_index(index.index)
    for start in range(0, index.ntotal, block):
        yield inner.reconstruct_n(start, min(block, index.ntotal - start))


def stream_vectors(
    store: ArtifactStore, manifests: Iterable[Manifest], describe: Descriptors
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for ids, features in iter_embeddings(store, manifests):
        if len(ids):
            yield ids, describe(features)


def save_index(
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
    table, filler = IdTable(), None
    for ids, vectors in stream_vectors(store, manifests, describe):
        if filler is None:
            index = new_index(vectors.shape[1], total, params)[0]
            if ivf.inner_ivf(index) is not None:  # it files from a scratch copy
                store.check_space(total * (index.d * 4 + 8))
            filler = Filler(index, params, store.path("index"))
        filler.add(vectors, table.append(ids.tolist()))
        PROGRESS.advance(len(ids))
    if filler is None:
        raise IndexUnavailableError(
            "no embeddings to index: every image failed or the source is empty"
        )
    return filler.finish(), table


def _augmented_index(
    store: ArtifactStore,
    manifests: list[Manifest],
    describe: Descriptors,
    plain: faiss.Index,
    table: IdTable,
    params: IndexParams,
    total: int,
) -> tuple[faiss.Index, dict]:
    """Pass 2 (α-DBA): each vector averaged with its nearest other vectors in the plain index.

    An IVF is augmented in place, list by list (``ivf_dba``: register scale). An exact or
    HNSW index is rebuilt: the chunks stream again, each vector is augmented against the
    plain index (exactly, or through the graph at efSearch = ``ef_search``) and added, same
    slot, to a new index, so both are in memory during the pass.
    """
    kind = index_kind(plain)
    skip = Tombstones(table.tombstones)  # duplicate ids: only the latest slot counts
    if kind == "ivf":
        scratch = store.path("index")
        scratch.mkdir(parents=True, exist_ok=True)
        store.check_space(plain.ntotal * plain.d * 4)
        how = augment_in_place(
            plain,
            params.dba_neighbours,
            params.dba_alpha,
            scratch,
            selector=skip.skip,
            advance=PROGRESS.advance,
        )
        return plain, how
    index = new_index(plain.d, total, params)[0]
    search = skip.params(kind, max(params.ef_search, params.dba_neighbours + 1))
    start = 0
    for ids, vectors in stream_vectors(store, manifests, describe):
        if table.ids[start : start + len(ids)] != ids.tolist():
            raise IndexUnavailableError(
                "embedding chunks changed during the index build: run it again"
            )
        slots = np.arange(start, start + len(ids), dtype=np.int64)
        augmented = augment(
            plain, vectors, params.dba_neighbours, params.dba_alpha, own=slots, params=search
        )
        index.add_with_ids(augmented, slots)
        start += len(ids)
        PROGRESS.advance(len(ids))
    return index, {}


def _recall(index: faiss.Index, params: IndexParams, seed: int) -> dict[str, float]:
    """HNSW/IVF recall vs exact search, measured on the stored (final) vectors. Exact search
    is 1 by construction; an approximate index without a sample is "not measured" ({})."""
    if index_kind(index) == "exact":
        return {"recall@10": 1.0, "recall@100": 1.0}
    size = min(params.recall_sample, index.ntotal)
    if not size:
        return {}
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(index.ntotal, size=size, replace=False)).astype(np.int64)
    return measure_recall(index, index.reconstruct_batch(picked), storage_blocks(index), params)


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

    Only one chunk of raw features is in memory at a time, plus the index (two during the
    α-DBA pass of an exact or HNSW index; an IVF is augmented in place).
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
        index, how = _augmented_index(store, manifests, describe, index, table, params, total)
        dba |= {"search": kind, **how, "seconds": round(time.perf_counter() - started, 2)}
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
    return save_index(store, index, table, info)
