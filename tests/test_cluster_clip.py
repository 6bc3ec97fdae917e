"""The CLIP option (``--model open_clip:<arch> --weights FILE``) with a tiny, randomly
initialised open_clip model: CLIP weights cannot be downloaded here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

TINY = "logosim-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Registers the tiny architecture and saves one random model as a weights file."""
    folder = tmp_path_factory.mktemp("clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    net = open_clip.create_model(TINY)
    weights = folder / "tiny-clip.pt"
    torch.save(net.state_dict(), weights)
    return net.eval(), weights


def test_weights_file_loads_into_the_image_tower(tiny_clip):
    from logosim.embed.models import load_backbone

    net, weights = tiny_clip
    loaded = load_backbone(f"open_clip:{TINY}", str(weights))
    assert loaded.dim == 32 and loaded.weights_digest.startswith("sha256:")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net.visual(x).float(), atol=1e-5)
        assert loaded.module(torch.rand(3, 3, 224, 224)).shape == (3, 32)  # resized inside


def test_visual_only_checkpoint_and_bad_weights(tiny_clip, tmp_path):
    from logosim.embed.models import ModelError, load_backbone

    net, _ = tiny_clip
    visual_only = tmp_path / "visual.pt"
    torch.save({"state_dict": net.visual.state_dict()}, visual_only)
    loaded = load_backbone(f"open_clip:{TINY}", str(visual_only))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net.visual(x).float(), atol=1e-5)
    with pytest.raises(ModelError, match="cannot be downloaded"):
        load_backbone(f"open_clip:{TINY}", "wheel")
    wrong = tmp_path / "wrong.pt"
    torch.save({"other.weight": torch.zeros(2)}, wrong)
    with pytest.raises(ModelError, match="does not fit"):
        load_backbone(f"open_clip:{TINY}", str(wrong))
    with pytest.raises(ModelError, match="unknown open_clip model"):
        load_backbone("open_clip:no-such-arch", "random")


def test_embedder_embeds_logos_with_clip(tiny_clip):
    from logosim.embed.embedder import Embedder
    from logosim.embed.params import EmbedParams

    _, weights = tiny_clip
    params = EmbedParams(model=f"open_clip:{TINY}", weights=str(weights), runtime="eager")
    embedder = Embedder(params)
    images = [Image.new("RGB", (120, 80), c) for c in ("red", "navy", "white")]
    vectors = embedder.embed_images(images)
    assert vectors.shape == (3, 32) and np.isfinite(vectors).all()
    assert params.version() != EmbedParams().version()  # the cache key names the backbone


@pytest.mark.slow
def test_cluster_flow_with_clip(prefect_server, tiny_clip, tmp_path):
    """``cluster`` end to end on 40 demo logos embedded by the tiny CLIP tower."""
    import pyarrow.parquet as pq

    from flows.build import BuildParams
    from flows.cluster import ClusterRunParams, cluster_flow
    from logosim.cluster.params import ClusterParams
    from logosim.data.sources import SourceSpec
    from logosim.demo import DEMO_PARQUET
    from logosim.embed.params import EmbedParams
    from logosim.embed.pca import PCAParams

    source = tmp_path / "logos40.parquet"
    pq.write_table(pq.read_table(DEMO_PARQUET).slice(0, 40), source)
    embed = EmbedParams(model=f"open_clip:{TINY}", weights=str(tiny_clip[1]), runtime="eager")
    params = ClusterRunParams(
        build=BuildParams(
            source=SourceSpec(path=str(source)),
            store=str(tmp_path / "store"),
            embed=embed,
            pca=PCAParams(enabled=False),
        ),
        cluster=ClusterParams(method="kmeans", k=5),
    )
    summary = cluster_flow(params)
    assert summary["images"] == 40 and summary["dims"] == 32
    assert summary["methods"]["kmeans"]["clusters"] == 5
