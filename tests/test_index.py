"""Index build (exact and HNSW), recall report, incremental add, tombstones and rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from logosim.index import (
    IDS_FILE,
    IndexError_,
    IndexParams,
    LogoIndex,
    add_to_index,
    build_index,
    exact_topk,
    remove_from_index,
)
from logosim.pca import l2_normalize


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 20, 1), dim))
    return (centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


def write_chunks(store, features, size, prefix="id"):
    out = []
    for n, start in enumerate(range(0, len(features), size)):
        part = features[start : start + size]
        ids = np.array([f"{prefix}{i}" for i in range(start, start + len(part))])
        out.append(
            store.write_arrays(
                f"embeddings/{prefix}-{n}.npz",
                {"ids": ids, "embeddings": part, "rows": np.arange(len(part))},
                kind="embeddings",
                rows=len(part),
            )
        )
    return out


def test_exact_index_finds_each_vector_first(store):
    features = clustered(300, 16)
    manifest = build_index(store, write_chunks(store, features, 64), None, IndexParams())
    assert manifest.meta["type"] == "exact" and manifest.rows == 300
    index = LogoIndex.load(store)
    result = index.search(l2_normalize(features[:20]), k=5)
    assert [ids[0] for ids in result.ids] == [f"id{i}" for i in range(20)]
    assert all(np.all(np.diff(s) <= 1e-6) for s in result.scores)


def test_hnsw_above_threshold_reports_recall(store):
    features = clustered(2000, 32)
    params = IndexParams(
        exact_below=1000, m=16, ef_construction=80, ef_search=128, recall_sample=100
    )
    manifest = build_index(store, write_chunks(store, features, 500), None, params)
    assert manifest.meta["type"] == "hnsw"
    recall = manifest.meta["recall_vs_exact"]
    assert 0.9 <= recall["recall@10"] <= 1.0 and 0.8 <= recall["recall@100"] <= 1.0
    hits = LogoIndex.load(store).search(l2_normalize(features[:50]), k=1)
    assert sum(ids[0] == f"id{i}" for i, ids in enumerate(hits.ids)) >= 48


def test_streamed_exact_topk_matches_full_search():
    x = l2_normalize(clustered(500, 8))
    full = np.argsort(-(x[:10] @ x.T), axis=1, kind="stable")[:, :7]
    _, streamed = exact_topk(x[:10], (x[i : i + 64] for i in range(0, 500, 64)), 7)
    assert (np.sort(streamed, 1) == np.sort(full, 1)).all()


@pytest.mark.parametrize("exact_below", [10_000, 0])  # exact (true removal path) and HNSW
def test_add_change_remove_and_rebuild(store, exact_below):
    features = clustered(400, 16)
    params = IndexParams(exact_below=exact_below, m=8, ef_construction=40, rebuild_fraction=0.3)
    build_index(store, write_chunks(store, features, 100), None, params)

    # new images and one changed image (id0 now looks like id399)
    new = clustered(50, 16, seed=1)
    add = write_chunks(store, np.concatenate([new, features[399:400]]), 51, prefix="new")
    manifest = add_to_index(store, add)
    assert manifest.rows == 451
    changed = write_chunks(store, features[399:400], 1, prefix="chg")
    store.write_arrays(
        changed[0].path,
        {"ids": np.array(["id0"]), "embeddings": features[399:400], "rows": np.zeros(1)},
        kind="embeddings",
        rows=1,
    )
    changed[0] = store.read_manifest(changed[0].path)
    add_to_index(store, changed)
    index = LogoIndex.load(store)
    assert len(index) == 451  # replaced, not duplicated
    assert len(index.table.tombstones) == 1
    top = index.search(l2_normalize(features[399:400]), k=3).ids[0]
    assert "id0" in top and top.count("id0") == 1
    assert index.search(l2_normalize(new[:1]), k=1).ids[0] == ["new0"]

    # deletions are filtered at once
    remove_from_index(store, ["id5", "id6", "not-there"])
    index = LogoIndex.load(store)
    assert len(index) == 449
    found = {i for ids in index.search(l2_normalize(features[:10]), k=20).ids for i in ids}
    assert not {"id5", "id6"} & found

    # past the threshold the index is rebuilt from its live vectors: no tombstones left
    remove_from_index(store, [f"id{i}" for i in range(100, 260)])
    index = LogoIndex.load(store)
    assert len(index) == 289 and not index.table.tombstones
    assert index.index.ntotal == 289
    assert index.search(l2_normalize(features[300:301]), k=1).ids[0] == ["id300"]


def test_mismatched_id_table_is_refused(store):
    build_index(store, write_chunks(store, clustered(50, 8), 50), None, IndexParams())
    table = store.read_json(store.read_manifest(IDS_FILE))
    table["index"] = "0" * 64
    store.write_json(IDS_FILE, table)
    with pytest.raises(IndexError_, match="do not match"):
        LogoIndex.load(store)


def test_nothing_to_index_is_a_clear_error(store):
    empty = store.write_arrays(
        "embeddings/empty.npz",
        {"ids": np.array([], dtype=str), "embeddings": np.zeros((0, 8), np.float32)},
        kind="embeddings",
    )
    with pytest.raises(IndexError_, match="no embeddings"):
        build_index(store, [empty], None, IndexParams())
