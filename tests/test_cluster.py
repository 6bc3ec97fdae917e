"""Clustering library: kNN graph, methods, quality figures, safe outputs, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from logosim.cluster.graph import knn_graph
from logosim.cluster.methods import (
    hdbscan,
    k_candidates,
    kmeans,
    medoids,
    near_duplicates,
    renumber_by_size,
)
from logosim.cluster.outputs import (
    MARKER,
    image_suffix,
    prepare_out_dir,
    safe_name,
    write_marker,
)
from logosim.cluster.params import ClusterError, ClusterParams
from logosim.cluster.quality import group_scores, noise_as_singletons, purity, size_summary
from logosim.cluster.run import check_input, cluster_vectors
from logosim.cluster.vectors import Vectors
from logosim.embed.pca import l2_normalize


def blobs(clusters: int = 5, per: int = 8, dim: int = 32, spread: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(clusters, dim)))
    x = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(clusters * per, dim))
    groups = [f"g{i}" for i in range(clusters) for _ in range(per)]
    return l2_normalize(x.astype(np.float32)), groups


def test_knn_graph_puts_each_row_first_even_among_duplicates():
    x, _ = blobs()
    x[1] = x[0]  # exact duplicates tie: FAISS may list either first
    x[2] = x[0]
    graph = knn_graph(x, 6)
    assert graph.k == 6
    assert (graph.indices[:, 0] == np.arange(len(x))).all()
    assert np.allclose(graph.sims[:, 0], 1.0)
    assert (np.diff(graph.sims[:, 1:], axis=1) <= 1e-6).all()
    assert knn_graph(x[:3], 10).k == 3  # capped at the number of rows


def test_renumber_by_size_largest_first_noise_kept():
    labels = np.array([5, 5, -1, 2, 2, 2, 9])
    assert renumber_by_size(labels).tolist() == [1, 1, -1, 0, 0, 0, 2]


def test_hdbscan_and_kmeans_find_blobs():
    x, groups = blobs()
    found = hdbscan(x, min_cluster_size=3, min_samples=1)
    assert found.clusters == 5
    assert group_scores(found.labels, groups)["ari"] == pytest.approx(1.0)
    assert 0.0 <= found.probability.min() <= found.probability.max() <= 1.0
    km = kmeans(x, 5)
    assert group_scores(km.labels, groups)["ari"] == pytest.approx(1.0)
    assert (km.probability >= 0.5).all()  # every point nearer its own centre
    with pytest.raises(ClusterError, match="only 40 images"):
        kmeans(x, 41)


def test_k_candidates_are_log_spaced_and_bounded():
    ks = k_candidates(10_890, 2, None, 8)
    assert ks[0] == 2 and ks[-1] == 2000 and len(ks) == 8
    assert k_candidates(5, 2, None, 8) == [2]


def test_noise_counts_as_singletons_not_one_cluster():
    groups = ["a", "a", "b", "b"]
    all_noise = np.array([-1, -1, -1, -1])
    assert noise_as_singletons(all_noise).tolist() == [0, 1, 2, 3]
    scores = group_scores(all_noise, groups)
    assert scores["ari"] == pytest.approx(0.0)  # as one cluster it would pair a with b
    assert scores["purity"] == 1.0
    perfect = group_scores(np.array([0, 0, 1, 1, 2]), [*groups, ""])  # ungrouped left out
    assert perfect["ari"] == pytest.approx(1.0) and perfect["nmi"] == pytest.approx(1.0)
    assert perfect["grouped_images"] == 4


def test_purity_and_sizes():
    truth = np.array(["a", "a", "b", "b", "b"])
    assert purity(truth, np.array([0, 0, 0, 0, 0])) == pytest.approx(3 / 5)
    summary = size_summary(np.array([0, 0, 0, 1, -1]))
    assert summary["clusters"] == 2 and summary["largest"] == 3
    assert summary["noise_share"] == pytest.approx(0.2) and summary["singletons"] == 1


def test_near_duplicates_are_connected_components():
    x, _ = blobs(clusters=3, per=4, spread=0.0001)
    x = np.concatenate([x, blobs(clusters=1, per=1, seed=5)[0]])
    dup = near_duplicates(knn_graph(x, 3), threshold=0.99)
    # groups of 4 found through chains although each row sees only 2 others
    assert sorted(np.bincount(dup[dup >= 0]).tolist()) == [4, 4, 4]
    assert dup[-1] == -1


def test_medoids_pick_the_member_nearest_the_centre():
    x = l2_normalize(np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1]], dtype=np.float32))
    medoid, closeness = medoids(x, np.array([0, 0, 0, -1]))
    assert medoid.tolist() == [0]
    assert closeness[3] == 1.0 and closeness[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("n", "identical", "params", "message"),
    [
        (0, False, {}, "no image was embedded"),
        (1, False, {}, "only one image"),
        (10, False, {"method": "kmeans", "k": 11}, "more clusters than the 10 images"),
        (10, False, {"min_cluster_size": 11}, "larger than the 10 images"),
        (10, True, {}, "all 10 embeddings are identical"),
    ],
)
def test_bad_input_is_refused_clearly(n, identical, params, message):
    x, _ = blobs(clusters=2, per=5)
    x = np.repeat(x[:1], n, axis=0) if identical else x[:n]
    with pytest.raises(ClusterError, match=message):
        check_input(Vectors([f"id{i}" for i in range(n)], x), ClusterParams(**params))


def test_cluster_vectors_on_descriptors_without_umap():
    x, groups = blobs(clusters=4, per=6)
    vectors = Vectors([f"id{i}" for i in range(len(x))], x)
    params = ClusterParams(method="both", k=4, space="descriptors", neighbours=4)
    arrays, summary = cluster_vectors(vectors, params, dict(zip(vectors.ids, groups, strict=True)))
    assert set(summary["methods"]) == {"hdbscan", "kmeans"}
    for figures in summary["methods"].values():
        assert {"ari", "nmi", "purity", "silhouette", "clusters", "noise_share"} <= set(figures)
        assert figures["ari"] == pytest.approx(1.0)
    assert arrays["xy"].shape == (24, 2)
    assert arrays["nn_index"].shape == (24, 5)
    assert (arrays["nn_index"] != np.arange(24)[:, None]).all()  # self is not a neighbour


def test_safe_names_are_unique_and_filesystem_safe():
    assert safe_name("logo.png") == "logo.png"
    risky = ["../etc/passwd", "a/b", "a:b", "a?b", "CON", "", "é" * 200, "a b"]
    names = [safe_name(r) for r in risky]
    assert len(set(names)) == len(names)
    for name in names:
        assert name and len(name) <= 80 and "/" not in name and not name.startswith(".")
        assert all(c.isalnum() or c in "._-" for c in name)
    assert safe_name("a/b") != safe_name("a_b")  # sanitising alike keeps them apart


def test_image_suffix_from_bytes():
    assert image_suffix(b"\x89PNG\r\n\x1a\nxxxx") == ".png"
    assert image_suffix(b"\xff\xd8\xff\xe0") == ".jpg"
    assert image_suffix(b"????", "/data/x.webp") == ".webp"


def test_out_dir_refused_unless_overwrite_and_user_files_survive(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user file")
    with pytest.raises(ClusterError, match="--overwrite"):
        prepare_out_dir(out, "key1", overwrite=False)
    assert prepare_out_dir(out, "key1", overwrite=True) is False
    (out / "clusters" / "0").mkdir(parents=True)
    (out / "clusters" / "0" / "a.png").write_bytes(b"x")
    (out / "clusters" / "0" / "user.png").write_bytes(b"y")
    (out / "clusters" / "1").mkdir()
    (out / "clusters" / "1" / "b.png").write_bytes(b"x")
    (out / "report.html").write_text("r")
    write_marker(out, "key1", ["clusters/0/a.png", "clusters/1/b.png", "report.html"], True)
    assert prepare_out_dir(out, "key1", overwrite=False) is True  # same run, complete
    assert prepare_out_dir(out, "key2", overwrite=True) is False  # another run replaces it
    assert (out / "mine.txt").read_text() == "user file"
    assert (out / "clusters" / "0" / "user.png").exists()
    assert not (out / "clusters" / "0" / "a.png").exists()
    assert not (out / "clusters" / "1").exists() and not (out / "report.html").exists()
    assert not (out / MARKER).exists()
    file_out = tmp_path / "file"
    file_out.write_text("x")
    with pytest.raises(ClusterError):
        prepare_out_dir(file_out, "k", overwrite=False)


def test_umap_start_is_spectral_for_small_sets_and_pca_for_large():
    params = ClusterParams()
    assert params.init_for(10_890) == "spectral" and params.init_for(100_000) == "pca"
    assert ClusterParams(umap_init="spectral").init_for(100_000) == "spectral"


def test_folder_source_logos_are_hard_linked_with_contact_sheets(tmp_path):
    from PIL import Image

    from logosim.cluster.outputs import Placement, write_folder_sheets, write_folders
    from logosim.data.sources import SourceSpec

    src = tmp_path / "logos"
    (src / "sub dir").mkdir(parents=True)
    for name, colour in (("a.png", "red"), ("sub dir/b?.png", "blue"), ("c.png", "green")):
        Image.new("RGB", (40, 30), colour).save(src / name)
    placement = Placement({"a.png": "0", "sub dir/b?.png": "0", "c.png": "noise"})
    out = tmp_path / "out"
    thumbs = write_folders(out, SourceSpec(path=str(src)), placement, {"a.png"})
    assert set(thumbs) == {"a.png"} and max(thumbs["a.png"].size) <= 96
    linked = out / placement.files["sub dir/b?.png"]
    assert linked.parent.name == "0" and "?" not in linked.name and " " not in linked.name
    assert linked.stat().st_ino == (src / "sub dir" / "b?.png").stat().st_ino  # a hard link
    assert placement.linked == 3 and placement.copied == 0
    sheets = write_folder_sheets(out, placement, {"a.png": 0.9})
    assert sorted(sheets) == ["clusters/0/index.html", "clusters/noise/index.html"]
    assert "sub dir/b?.png" in (out / "clusters/0/index.html").read_text()
