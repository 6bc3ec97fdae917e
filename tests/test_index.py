"""Index build (exact and HNSW), recall report, α-DBA, incremental add, tombstones, rebuild."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_embedding_chunks

from logosim.embed.pca import l2_normalize
from logosim.index.add import add_to_index, remove_from_index
from logosim.index.build import build_index
from logosim.index.dba import augment_collection
from logosim.index.exact import exact_topk
from logosim.index.logo_index import LogoIndex
from logosim.index.params import IDS_FILE, IndexParams, IndexUnavailableError
from tasks.index import index_cache_key


def write_chunks(store, features, size, prefix="id"):
    return write_embedding_chunks(store, features, size, prefix)


PLAIN = IndexParams(dba_neighbours=0)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 20, 1), dim))
    return (centres[rng.integers(len(centres), size=n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


def test_exact_index_finds_each_vector_first(store):
    features = clustered(300, 16)
    manifest = build_index(store, write_chunks(store, features, 64), None, IndexParams())
    assert manifest.meta["type"] == "exact" and manifest.rows == 300
    assert manifest.meta["dba"]["neighbours"] == 2 and manifest.meta["dba"]["search"] == "exact"
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


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])  # exact: the true removal path
def test_add_change_remove_and_rebuild(store, kind):
    features = clustered(400, 16)
    params = IndexParams(
        kind=kind, m=8, ef_construction=40, rebuild_fraction=0.3, nlist=16, nprobe=16
    )
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
    with pytest.raises(IndexUnavailableError, match="do not match"):
        LogoIndex.load(store)


def test_nothing_to_index_is_a_clear_error(store):
    empty = store.write_arrays(
        "embeddings/empty.npz",
        {"ids": np.array([], dtype=str), "embeddings": np.zeros((0, 8), np.float32)},
        kind="embeddings",
    )
    with pytest.raises(IndexUnavailableError, match="no embeddings"):
        build_index(store, [empty], None, IndexParams())


def dba_reference(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """α-DBA written out with numpy: each row plus its n most similar other rows, weighted
    max(similarity, 0)^alpha, then L2."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    weights = np.maximum(np.take_along_axis(sims, top, 1), 0) ** alpha
    return l2_normalize(x + (weights[:, :, None] * x[top]).sum(axis=1))


def stored(store) -> tuple[list[str], np.ndarray]:
    ids, vectors = zip(*LogoIndex.load(store).live_vectors(block=100), strict=True)
    return [i for part in ids for i in part], np.concatenate(vectors)


@pytest.mark.parametrize("n, alpha", [(2, 3.0), (3, 1.0)])
def test_dba_build_stores_the_neighbour_average(store, n, alpha):
    features = clustered(300, 16)
    chunks = write_chunks(store, features, 64)
    manifest = build_index(store, chunks, None, IndexParams(dba_neighbours=n, dba_alpha=alpha))
    assert manifest.meta["dba"]["neighbours"] == n and manifest.meta["dba"]["seconds"] >= 0
    ids, vectors = stored(store)
    assert ids == [f"id{i}" for i in range(300)]
    expected = dba_reference(l2_normalize(features), n, alpha)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    np.testing.assert_allclose(
        augment_collection(l2_normalize(features), n, alpha), expected, atol=1e-5
    )
    assert not np.allclose(vectors, l2_normalize(features), atol=1e-3)  # it did change them


def test_dba_off_stores_the_plain_descriptors(store):
    features = clustered(200, 16)
    manifest = build_index(store, write_chunks(store, features, 64), None, PLAIN)
    assert manifest.meta["dba"] is None
    np.testing.assert_allclose(stored(store)[1], l2_normalize(features), atol=1e-6)
    index = LogoIndex.load(store)
    np.testing.assert_array_equal(
        index.expand(l2_normalize(features[:3])), l2_normalize(features[:3])
    )


def test_dba_counts_an_exact_duplicate_as_a_neighbour(store):
    """A duplicate ties with the vector itself (either may rank first): the self hit goes by
    label, the duplicate stays, with weight 1."""
    features = clustered(100, 8)
    features[1] = features[0]
    build_index(store, write_chunks(store, features, 50), None, IndexParams(dba_neighbours=1))
    vectors = stored(store)[1]
    np.testing.assert_allclose(vectors[:2], l2_normalize(features[:2]), atol=1e-6)  # v + 1·v
    np.testing.assert_allclose(vectors, dba_reference(l2_normalize(features), 1, 3.0), atol=1e-5)


def test_hnsw_dba_uses_the_graph_and_measures_recall_on_stored_vectors(store):
    features = clustered(1500, 32)
    params = IndexParams(
        exact_below=1000, m=16, ef_construction=80, ef_search=128, recall_sample=100
    )
    manifest = build_index(store, write_chunks(store, features, 500), None, params)
    assert manifest.meta["type"] == "hnsw" and manifest.meta["dba"]["search"] == "hnsw"
    assert manifest.meta["recall_vs_exact"]["recall@10"] >= 0.9
    vectors = stored(store)[1]
    cosine = (vectors * dba_reference(l2_normalize(features), 2, 3.0)).sum(axis=1)
    assert np.median(cosine) > 0.9999 and cosine.min() > 0.95  # ANN may miss a neighbour


def test_incremental_add_augments_the_new_vector_only(store):
    features = clustered(200, 16)
    build_index(store, write_chunks(store, features, 100), None, IndexParams())
    before = stored(store)[1]
    new = features[:1] + 0.05 * clustered(1, 16, seed=3)  # a close relative of id0
    add_to_index(store, write_chunks(store, new, 1, prefix="new"))
    ids, after = stored(store)
    np.testing.assert_array_equal(after[:200], before)  # existing vectors untouched
    q = l2_normalize(new)
    sims = before @ q[0]
    top = np.argsort(-sims)[:2]
    expected = l2_normalize(q + (np.maximum(sims[top], 0) ** 3)[None] @ before[top])
    assert ids[-1] == "new0"
    np.testing.assert_allclose(after[-1], expected[0], atol=1e-5)
    assert not np.allclose(after[-1], q[0], atol=1e-3)


def test_alpha_query_expansion_finds_the_indexed_vector_first(store):
    features = clustered(300, 16)
    build_index(store, write_chunks(store, features, 100), None, IndexParams())
    index = LogoIndex.load(store)
    queries = l2_normalize(features[:40])
    expanded = index.expand(queries)
    hits = index.search(expanded, k=3)
    assert [ids[0] for ids in hits.ids] == [f"id{i}" for i in range(40)]
    # q' = L2(q + Σ s^α · stored hit), over the live stored vectors
    vectors = stored(store)[1]
    sims = queries @ vectors.T
    top = np.argsort(-sims, axis=1)[:, :2]
    weights = np.maximum(np.take_along_axis(sims, top, 1), 0) ** 3
    reference = l2_normalize(queries + (weights[:, :, None] * vectors[top]).sum(axis=1))
    np.testing.assert_allclose(expanded, reference, atol=1e-5)


def test_index_cache_key_follows_the_dba_settings(store):
    chunks = write_chunks(store, clustered(20, 8), 20)

    def key(params: IndexParams) -> str:
        return index_cache_key(None, {"embeddings": chunks, "pca": None, "params": params})

    keys = {
        key(IndexParams()),
        key(IndexParams(dba_neighbours=0)),
        key(IndexParams(dba_neighbours=3)),
        key(IndexParams(dba_alpha=1.0)),
    }
    assert len(keys) == 4 and key(IndexParams()) == key(IndexParams(dba_neighbours=2))


def test_index_cache_key_ignores_run_settings_and_group_columns(store):
    """An evaluate after a build, or a rerun at another batch size or runtime, must not
    rebuild the index (a 1M-vector HNSW build takes half an hour)."""
    chunks = write_chunks(store, clustered(20, 8), 20)
    embed = {"model": "tf_efficientnet_lite0", "batch_size": 0, "runtime": "auto"}
    source = {"path": "demo", "group_column": None}

    def key(embed_change: dict | None = None, source_change: dict | None = None) -> str:
        meta = {"embed": embed | (embed_change or {}), "source": source | (source_change or {})}
        parameters = {"embeddings": chunks, "pca": None, "params": IndexParams(), "meta": meta}
        return index_cache_key(None, parameters)

    base = key()
    assert key({"batch_size": 8, "runtime": "onnx", "device": "cpu", "workers": 1}) == base
    assert key(source_change={"group_column": "group"}) == base
    assert key({"model": "tf_efficientnet_lite1"}) != base  # search embeds queries with it
    assert key(source_change={"path": "other.parquet"}) != base


def grouped_source(tmp_path, n: int, groups: list[str]):
    """A Parquet source holding only ids and groups (evaluation reads no image bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logosim.data.sources import SourceSpec

    path = tmp_path / "groups.parquet"
    table = pa.table(
        {
            "id": [f"id{i}" for i in range(n)],
            "image": pa.array([b""] * n, pa.binary()),
            "group": groups,
        }
    )
    pq.write_table(table, path)
    return SourceSpec(path=str(path), group_column="group")


def test_evaluation_measures_the_stored_vectors_and_its_key_follows_dba(store, tmp_path):
    from logosim.search.evaluate import evaluate_build
    from logosim.search.metrics import leave_one_out
    from tasks.evaluate import evaluate_cache_key

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(30, 16))
    labels = rng.integers(30, size=300)
    features = (centres[labels] + 0.9 * rng.normal(size=(300, 16))).astype(np.float32)
    groups = [f"g{g}" if i % 3 else "" for i, g in enumerate(labels)]  # some ungrouped
    source = grouped_source(tmp_path, 300, groups)
    chunks = write_chunks(store, features, 128)

    def evaluate(params: IndexParams) -> tuple[dict, str]:
        index = build_index(store, chunks, None, params)
        key = evaluate_cache_key(None, {"store": str(store.root), "source": source, "index": index})
        return store.read_json(evaluate_build(store, source, index)), key

    plain, plain_key = evaluate(PLAIN)
    dba, dba_key = evaluate(IndexParams())
    assert plain_key != dba_key and evaluate(IndexParams(dba_alpha=1.0))[1] != dba_key
    x = l2_normalize(features)
    expected = {
        "plain": leave_one_out(x, groups),
        "dba": leave_one_out(dba_reference(x, 2, 3.0), groups),
    }
    for key in ("recall@1", "recall@10", "map", "nar"):
        assert plain[key] == pytest.approx(expected["plain"][key], abs=1e-6)
        assert dba[key] == pytest.approx(expected["dba"][key], abs=1e-6)
    assert dba["map"] != pytest.approx(plain["map"])


@pytest.mark.parametrize("dba", [0, 2])
def test_index_build_reports_progress_per_pass(store, dba):
    """The CLI's bar and the task's artifact: every vector once when filed, once more when
    α-DBA augments it (progress_total says how many units to expect)."""
    from logosim.index.build import progress_hook, progress_total

    params = IndexParams(dba_neighbours=dba)
    counted: list[int] = []
    with progress_hook(counted.append):
        build_index(store, write_chunks(store, clustered(300, 16), 64), None, params)
    assert sum(counted) == progress_total(300, params) == 300 * (2 if dba else 1)
    assert len(counted) == 5 * (2 if dba else 1)  # per chunk of 64
