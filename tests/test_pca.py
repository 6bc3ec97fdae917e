"""PCA fitted chunk by chunk on the train split only, against sklearn's batch PCA and
Ledoit–Wolf shrinkage; held-out vectors keep their spread (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_embedding_chunks
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA

from logosim.embed.pca import (
    Descriptors,
    PCAParams,
    describe_health,
    fit_and_save_pca,
    l2_normalize,
)


def correlated(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(dim, dim)) * (0.75 ** np.arange(dim))[:, None]
    return (rng.normal(size=(n, dim)) @ basis + 5).astype(np.float32)


@pytest.mark.parametrize(("dims", "whiten"), [(6, False), (16, True)])
def test_streamed_fit_matches_batch_pca_on_train_rows(store, dims, whiten):
    features = correlated(600, 16)
    manifests = write_embedding_chunks(store, features, size=70)  # several chunks
    train = {f"e{i}" for i in range(0, 600, 2)}
    params = PCAParams(dims=dims, whiten=whiten, power=1.0, shrinkage=0.0)
    manifest = fit_and_save_pca(store, manifests, params, train)
    assert manifest.path == "pca/pca.npz" and manifest.rows == 300

    describe = Descriptors.load(store, manifest)
    out = describe(features[:50])
    assert out.shape == (50, dims)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)

    train_rows = l2_normalize(features[::2]).astype(np.float64)  # the fit runs in float64
    reference = PCA(n_components=dims, whiten=whiten).fit(train_rows)
    expected = l2_normalize(reference.transform(l2_normalize(features[:50]).astype(np.float64)))
    # components are defined up to sign; cosines between descriptors are not
    np.testing.assert_allclose(out @ out.T, expected @ expected.T, atol=1e-3)


def test_auto_shrinkage_is_ledoit_wolf_of_the_train_rows(store):
    features = correlated(90, 24, seed=3)
    manifests = write_embedding_chunks(store, features, size=25)
    train = {f"e{i}" for i in range(60)}
    manifest = fit_and_save_pca(store, manifests, PCAParams(dims=8, power=1.0), train)
    rows = l2_normalize(features[:60]).astype(np.float64)
    alpha = ledoit_wolf_shrinkage(rows)
    assert manifest.meta["shrinkage"] == pytest.approx(alpha, abs=1e-5)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(rows.T, bias=True)))[::-1]
    mu = eigenvalues.mean()
    expected = np.sqrt((1 - alpha) * eigenvalues[:8] + alpha * mu)
    np.testing.assert_allclose(store.read_arrays(manifest)["scale"], expected, rtol=1e-4)


def test_held_out_vectors_keep_their_spread_on_a_small_train_split(store):
    """Issue 19: with as many whitened components as train rows and no shrinkage, every
    vector outside the fit points (±) the same way; the defaults keep held-out vectors as
    spread out as train vectors, and the manifest says which case it is."""
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(256, 256)) * (0.98 ** np.arange(256))[:, None]
    features = np.abs(rng.normal(size=(300, 256)) @ basis).astype(np.float32)  # GeM-like
    manifests = write_embedding_chunks(store, features, size=100)
    train = {f"e{i}" for i in range(0, 300, 3)}  # 100 train rows, 200 held out
    before = fit_and_save_pca(store, manifests, PCAParams(shrinkage=0.0, max_dims_share=1.0), train)
    assert before.meta["health"]["degenerate"]
    assert before.meta["health"]["heldout"]["median_nn_cosine"] > 0.99
    assert "WARNING degenerate" in describe_health(before.meta["health"])

    fixed = fit_and_save_pca(store, manifests, PCAParams(), train)
    health = fixed.meta["health"]
    assert not health["degenerate"] and fixed.meta["dims"] == 50  # half the train rows
    assert health["heldout"]["mean_abs_cosine"] < 2 * health["train"]["mean_abs_cosine"] + 0.05
    assert "WARNING" not in describe_health(health)


def test_whitening_power_zero_is_plain_projection(store):
    features = correlated(200, 16)
    manifests = write_embedding_chunks(store, features, size=200)
    manifest = fit_and_save_pca(store, manifests, PCAParams(dims=4, whiten_power=0.0), None)
    scale = store.read_arrays(manifest)["scale"]
    np.testing.assert_allclose(scale, 1.0)


def test_dims_capped_by_features_and_train_size_and_disabled_pca(store):
    features = correlated(40, 16)
    manifests = write_embedding_chunks(store, features, size=15)
    manifest = fit_and_save_pca(store, manifests, PCAParams(dims=512), None)
    assert manifest.meta["dims"] == 16  # min(dims, features, rows / 2)
    small = fit_and_save_pca(
        store, write_embedding_chunks(store, features[:20], 15, "s"), PCAParams(), None
    )
    assert small.meta["dims"] == 10  # half the 20 train rows
    off = fit_and_save_pca(store, manifests, PCAParams(enabled=False), None)
    assert off.rows == 0
    out = Descriptors.load(store, off)(features[:3])
    np.testing.assert_allclose(out, l2_normalize(features[:3]))


def test_empty_train_split_is_a_clear_error(store):
    manifests = write_embedding_chunks(store, correlated(20, 8), size=10)
    with pytest.raises(ValueError, match="train"):
        fit_and_save_pca(store, manifests, PCAParams(dims=4), {"nobody"})


def test_signed_power_is_applied_before_the_fit_and_at_transform(store):
    features = correlated(300, 12) - 5  # both signs
    manifests = write_embedding_chunks(store, features, size=100)
    sqrt = fit_and_save_pca(store, manifests, PCAParams(dims=6, power=0.5), None)
    out = Descriptors.load(store, sqrt)(features[:20])
    rooted = np.sign(features) * np.sqrt(np.abs(features))
    plain = fit_and_save_pca(
        store, write_embedding_chunks(store, rooted, 100, "r"), PCAParams(dims=6, power=1.0), None
    )
    expected = Descriptors.load(store, plain)(rooted[:20])
    np.testing.assert_allclose(out @ out.T, expected @ expected.T, atol=1e-4)
