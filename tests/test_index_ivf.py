"""The IVF index kind (HNSW coarse quantiser): chosen by size, trained on the first chunks,
searched by nprobe, α-DBA on its own centroids, memory-mapped loading, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_embedding_chunks
from test_index import clustered

from logosim.embed.pca import l2_normalize
from logosim.index.build import build_index
from logosim.index.logo_index import LogoIndex
from logosim.index.params import IndexParams, IndexUnavailableError


def test_auto_chooses_the_kind_by_size():
    params = IndexParams(exact_below=100, ivf_from=1000)
    assert [params.choose_kind(n) for n in (50, 500, 5000)] == ["exact", "hnsw", "ivf"]
    assert IndexParams(kind="hnsw").choose_kind(10**7) == "hnsw"  # an explicit kind wins


def test_ivf_build_trains_on_the_first_chunks_and_reports_recall(store):
    features = clustered(3000, 32)
    params = IndexParams(
        exact_below=100, ivf_from=1000, nlist=32, nprobe=8, ivf_train_per_list=20,
        recall_sample=100,
    )  # fmt: skip
    manifest = build_index(store, write_embedding_chunks(store, features, 500, "id"), None, params)
    assert manifest.meta["type"] == "ivf" and manifest.rows == 3000
    assert manifest.meta["dba"]["search"] == "ivf"
    assert manifest.meta["recall_vs_exact"]["recall@10"] >= 0.9
    index = LogoIndex.load(store, mmap=True)  # the API maps the file read-only
    assert index.kind == "ivf"
    hits = index.search(l2_normalize(features[:50]), k=1)
    assert sum(ids[0] == f"id{i}" for i, ids in enumerate(hits.ids)) >= 48
    # stored vectors read back through the id map (α-QE and the API need reconstruct)
    assert index.vectors(["id7"]).shape == (1, 32)
    # more lists searched, never worse recall: nprobe is honoured per search
    exact = np.argsort(
        -(l2_normalize(features[:20]) @ index.vectors([f"id{i}" for i in range(3000)]).T), 1
    )
    wide = LogoIndex.load(store)
    wide.params.nprobe = 32  # all lists: exact
    found = wide.search(l2_normalize(features[:20]), k=10).ids
    assert all(ids == [f"id{j}" for j in row[:10]] for ids, row in zip(found, exact, strict=True))


def test_ivf_with_fewer_vectors_than_lists_is_a_clear_error(store):
    params = IndexParams(kind="ivf", nlist=64)
    chunks = write_embedding_chunks(store, clustered(40, 8), 40, "id")
    with pytest.raises(IndexUnavailableError, match="at least that many"):
        build_index(store, chunks, None, params)
