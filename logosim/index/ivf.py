"""IVF with an HNSW coarse quantiser: the index kind for register-scale collections.

An HNSW graph over 1M 512-d vectors took 34 min to build on 2 cores (M 32, efConstruction
200); an inverted file trains k-means on a sample, then files each vector under its nearest
centroid (found through a small HNSW over the centroids) and stores it uncompressed, so
scores are exact inner products and only the number of lists searched (``nprobe``) trades
recall for time. Figures: notes/issue-17-speed.md, bench/bench_index_scale.py.

The id map's inner IVF keeps a direct map (position → list entry) so ``reconstruct`` works
like the other kinds (α-DBA, rebuilds and the API's vector reads need it).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

COARSE_M = 32  # HNSW neighbours per centroid in the coarse quantiser


def nlist_for(rows: int) -> int:
    """About 4·√rows inverted lists, a power of two, at least 16 (1M → 4096)."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(rows, 1)))))


def train_points(nlist: int, per_list: int) -> int:
    """Vectors k-means trains on: ``per_list`` per list (FAISS warns below 39)."""
    return nlist * per_list


def new_ivf(dim: int, nlist: int) -> faiss.Index:
    """An untrained IVF (flat storage, inner product) with an HNSW coarse quantiser."""
    quantizer = faiss.IndexHNSWFlat(dim, COARSE_M, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)


def inner_ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF inside an id map (or the index itself), None for other kinds."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF
        return None


def train(index: faiss.Index, sample: np.ndarray, seed: int = 0) -> None:
    """k-means on ``sample`` (capped to what was asked: FAISS would subsample silently),
    then the direct map that ``reconstruct`` needs."""
    ivf = inner_ivf(index)
    assert ivf is not None, "train() is for IVF indexes"
    nlist = ivf.nlist
    if len(sample) < nlist:  # fewer vectors than lists: shrink to what k-means can do
        raise ValueError(f"IVF with {nlist} lists needs ≥ {nlist} training vectors")
    ivf.cp.max_points_per_centroid = max(1, math.ceil(len(sample) / nlist))
    ivf.cp.seed = seed
    ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
    ivf.make_direct_map()


def empty_like(index: faiss.Index) -> faiss.Index:
    """A new empty id-mapped IVF sharing the trained centroids of ``index`` (a copy of its
    coarse quantiser: a few MB), so a second pass need not train again."""
    ivf = inner_ivf(index)
    assert ivf is not None
    quantizer = faiss.clone_index(ivf.quantizer)
    fresh = faiss.IndexIVFFlat(quantizer, ivf.d, ivf.nlist, faiss.METRIC_INNER_PRODUCT)
    fresh.make_direct_map()
    return faiss.IndexIDMap2(fresh)


def assign(index: faiss.Index, vectors: np.ndarray) -> np.ndarray:
    """The list each vector is filed under (its nearest centroid, as ``add`` finds it)."""
    ivf = inner_ivf(index)
    assert ivf is not None
    return ivf.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)[1].ravel()


def reserve(index: faiss.Index, sizes: np.ndarray) -> None:
    """Allocate each list of an empty IVF for exactly ``sizes[list]`` vectors, so adding them
    does not grow the storage by doubling (resize allocates exactly; back to 0 keeps it)."""
    ivf = inner_ivf(index)
    assert ivf is not None and ivf.ntotal == 0, "reserve() is for an empty IVF"
    for list_no, size in enumerate(sizes.tolist()):
        if size:
            ivf.invlists.resize(list_no, size)
            ivf.invlists.resize(list_no, 0)
