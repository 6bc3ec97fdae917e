"""The IVF index kind (HNSW coarse quantiser): chosen by size, trained on the first chunks,
searched by nprobe, α-DBA in place list by list, memory-mapped loading, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_embedding_chunks
from test_index import clustered, dba_reference, stored

from logosim.embed.pca import l2_normalize
from logosim.index import ivf, ivf_dba
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


def near_tie(x: np.ndarray, n: int) -> np.ndarray:
    """Rows whose n-th and (n+1)-th nearest other rows are equally similar to 1e-6."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    ranked = -np.sort(-sims, axis=1)
    return ranked[:, n - 1] - ranked[:, n] < 1e-6


IVF_SMALL = dict(exact_below=100, ivf_from=1000, ivf_train_per_list=20, recall_sample=100)


def test_ivf_dba_in_place_equals_the_exact_average_when_every_list_is_searched(store):
    """With as many lists as α-DBA probes, the neighbours are exact: the stored vectors are
    the numpy reference, at their own ids, and the scratch file is gone."""
    features = clustered(2000, 32)
    features[1] = features[0]  # an exact duplicate counts as a neighbour
    params = IndexParams(nlist=ivf_dba.DBA_NPROBE, **IVF_SMALL)
    manifest = build_index(store, write_embedding_chunks(store, features, 512, "id"), None, params)
    assert manifest.meta["dba"]["search"] == "ivf"
    assert manifest.meta["dba"]["nprobe"] == ivf_dba.DBA_NPROBE
    ids, vectors = stored(store)
    assert ids == [f"id{i}" for i in range(2000)]
    x = l2_normalize(features)
    clear = ~near_tie(x, 2)  # a tie for the 2nd neighbour may go either way in float32
    assert clear.mean() > 0.99
    np.testing.assert_allclose(vectors[clear], dba_reference(x, 2, 3.0)[clear], atol=1e-5)
    assert sorted(p.name for p in store.path("index").iterdir() if p.name.startswith(".dba")) == []
    index = LogoIndex.load(store)
    np.testing.assert_allclose(index.vectors(["id5"]), vectors[5:6], atol=1e-7)  # direct map


def test_ivf_dba_with_more_lists_stays_close_and_skips_replaced_ids(store):
    """More lists than it probes: an approximation (close neighbours share lists); a slot
    replaced by a later chunk's id is never anybody's neighbour."""
    features = clustered(3000, 32)
    params = IndexParams(nlist=32, nprobe=8, **IVF_SMALL)
    chunks = write_embedding_chunks(store, features, 500, "id")
    replaced = store.write_arrays(
        "embeddings/z.npz",
        {"ids": np.array(["id0"]), "embeddings": -features[:1], "rows": np.arange(1)},
        kind="embeddings",
    )
    manifest = build_index(store, [*chunks, replaced], None, params)
    assert manifest.rows == 3000 and manifest.meta["tombstones"] == 1
    ids, vectors = stored(store)
    live = np.concatenate([-features[:1], features[1:]])  # id0 is the replacement now
    assert ids == [f"id{i}" for i in range(1, 3000)] + ["id0"]
    expected = dba_reference(l2_normalize(live), 2, 3.0)
    cosine = (vectors * np.concatenate([expected[1:], expected[:1]])).sum(axis=1)
    assert np.median(cosine) > 0.9999 and cosine.min() > 0.95


def test_ivf_lists_are_sized_from_a_scratch_copy_and_filed_by_nearest_centroid(store):
    """The filler spills, counts each list's vectors, sizes the lists, then files them: every
    vector sits in its nearest centroid's list, and no scratch file stays behind."""
    features = clustered(3000, 32)
    params = IndexParams(nlist=32, dba_neighbours=0, **IVF_SMALL)
    build_index(store, write_embedding_chunks(store, features, 700, "id"), None, params)
    index = LogoIndex.load(store).index
    inner = ivf.inner_ivf(index)
    nearest = ivf.assign(index, l2_normalize(features))
    for list_no in range(inner.nlist):
        ids, _ = ivf_dba.list_contents(inner, list_no)
        assert sorted(ids.tolist()) == np.flatnonzero(nearest == list_no).tolist()
    assert not [p for p in store.path("index").iterdir() if p.name.startswith(".")]


def test_ivf_build_reports_progress_while_filing_and_augmenting(store):
    from logosim.index.build import progress_hook

    counted: list[int] = []
    params = IndexParams(nlist=32, **IVF_SMALL)
    with progress_hook(counted.append):
        build_index(
            store, write_embedding_chunks(store, clustered(3000, 32), 500, "id"), None, params
        )
    assert sum(counted) == 6000  # 3,000 filed + 3,000 augmented in place
