"""PCA fitted chunk by chunk on the train split only, against sklearn's batch PCA."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_embedding_chunks
from sklearn.decomposition import PCA

from logosim.embed.pca import Descriptors, PCAParams, fit_and_save_pca, l2_normalize


def correlated(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(dim, dim)) * (0.75 ** np.arange(dim))[:, None]
    return (rng.normal(size=(n, dim)) @ basis + 5).astype(np.float32)


@pytest.mark.parametrize(("dims", "whiten"), [(6, False), (16, True)])
def test_incremental_fit_matches_batch_pca_on_train_rows(store, dims, whiten):
    features = correlated(600, 16)
    manifests = write_embedding_chunks(store, features, size=70)  # chunks smaller than a batch
    train = {f"e{i}" for i in range(0, 600, 2)}
    params = PCAParams(dims=dims, whiten=whiten, batch_rows=64, power=1.0)
    manifest = fit_and_save_pca(store, manifests, params, train)
    assert manifest.path == "pca/pca.npz" and manifest.rows == 300

    describe = Descriptors.load(store, manifest)
    out = describe(features[:50])
    assert out.shape == (50, dims)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)

    reference = PCA(n_components=dims, whiten=whiten).fit(l2_normalize(features[::2]))
    expected = l2_normalize(reference.transform(l2_normalize(features[:50])))
    # components are defined up to sign; cosines between descriptors are not
    np.testing.assert_allclose(out @ out.T, expected @ expected.T, atol=0.02)


def test_whitening_power_zero_is_plain_projection(store):
    features = correlated(200, 16)
    manifests = write_embedding_chunks(store, features, size=200)
    manifest = fit_and_save_pca(store, manifests, PCAParams(dims=4, whiten_power=0.0), None)
    scale = store.read_arrays(manifest)["scale"]
    np.testing.assert_allclose(scale, 1.0)


def test_dims_capped_by_train_size_and_disabled_pca(store):
    features = correlated(40, 16)
    manifests = write_embedding_chunks(store, features, size=15)
    manifest = fit_and_save_pca(store, manifests, PCAParams(dims=512), None)
    assert manifest.meta["dims"] == 16  # min(dims, rows, features)
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
