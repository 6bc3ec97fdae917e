"""ONNX export of the whole embedding model, validated on real demo logos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from logosim.export import (
    EXPORT_DIR,
    ExportError,
    ExportParams,
    OnnxEmbedder,
    build_embedding_model,
    export_model,
)
from logosim.models import load_backbone
from logosim.pca import PCA_FILE, PCAParams, fit_pca
from logosim.sources import SourceSpec, open_source
from logosim.store import ArtifactStore
from logosim.train.data import load_images, to_tensor

SIZE = 96


@pytest.fixture(scope="module")
def pca_store(tmp_path_factory) -> ArtifactStore:
    """A store holding a real PCA fitted on pretrained GeM features of 48 demo logos."""
    store = ArtifactStore(tmp_path_factory.mktemp("export-store"))
    images = load_images(open_source(SourceSpec()), SIZE, limit=48)
    loaded = load_backbone()
    with torch.no_grad():
        features = loaded.module(to_tensor(list(images.pixels), loaded.mean, loaded.std)).numpy()
    model = fit_pca([(np.array(images.ids), features)], PCAParams(dims=16), train_rows=48)
    store.write_arrays(PCA_FILE, model.arrays(), kind="pca", rows=48)
    return store


def _params(**kw) -> ExportParams:
    return ExportParams(image_size=SIZE, validate_images=16, **kw)


def test_fp32_export_agrees_with_pytorch_and_reports(pca_store: ArtifactStore):
    manifest = export_model(pca_store, _params())
    assert manifest.path == f"{EXPORT_DIR}/logosim-fp32.onnx" and pca_store.verify(manifest)
    report = json.loads(pca_store.path(f"{EXPORT_DIR}/logosim-fp32.json").read_text())
    assert report["precision"] == "fp32" and report["pca"] is True and report["dim"] == 16
    assert report["min_cosine"] > 0.999 and report["mean_cosine"] >= report["min_cosine"]
    assert report["size_mb"] == pytest.approx(manifest.size / 2**20, rel=1e-3)
    assert report["validated_images"] == 16 and report["throughput_img_s"] > 0


def test_onnx_embedder_gives_the_index_vectors_of_the_pytorch_model(pca_store: ArtifactStore):
    manifest = export_model(pca_store, _params())
    embedder = OnnxEmbedder(pca_store.path(manifest.path))
    images = load_images(open_source(SourceSpec()), SIZE, keep_ids=None, limit=60)
    pil = [images.image(i) for i in range(50, 60)]  # logos the validation did not use
    vectors = embedder.embed_images(pil)
    assert vectors.shape == (10, 16) and embedder.dim == 16
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reference = build_embedding_model(pca_store, _params())
    with torch.no_grad():
        expected = reference(torch.from_numpy(np.stack([np.asarray(p) for p in pil]))).numpy()
    assert (vectors * expected).sum(axis=1).min() > 0.999


def test_fp16_export_is_validated_or_says_why(pca_store: ArtifactStore):
    manifest = export_model(pca_store, _params(precision="fp16"))
    report = manifest.meta
    assert report["precision"] == "fp16"
    if report["validated_on"] is None:  # the CPU provider may lack fp16 kernels
        assert "CUDA" in report["note"]
    else:
        assert report["min_cosine"] > 0.999
    fp32 = pca_store.read_manifest(f"{EXPORT_DIR}/logosim-fp32.onnx")
    assert fp32 is None or manifest.size < 0.6 * fp32.size


def test_an_export_below_the_bar_fails_loudly_and_publishes_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    # fp16 rounding cannot reach a cosine of exactly 1 on every logo: a real disagreement.
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export_model(store, _params(precision="fp16", min_cosine=1.0, use_pca=False))
    assert not store.path(f"{EXPORT_DIR}/logosim-fp16.onnx").exists()


def test_int8_export_reports_its_own_agreement(tmp_path):
    store = ArtifactStore(tmp_path)
    # INT8 has its own bar; with the default one it fails on Lite0+GeM (see the issue note).
    manifest = export_model(store, _params(precision="int8", int8_min_cosine=0.1, use_pca=False))
    report = manifest.meta
    assert report["precision"] == "int8" and report["threshold"] == 0.1
    assert 0.1 <= report["min_cosine"] < 1.0


def test_export_flow_publishes_the_model(prefect_server, pca_store: ArtifactStore):
    from flows.export import export_flow

    manifest = export_flow(str(pca_store.root), _params())
    assert pca_store.verify(manifest) and manifest.meta["min_cosine"] > 0.999
