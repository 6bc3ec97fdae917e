"""A plain install (no ``train`` extra: no PyTorch) builds, evaluates, searches, clusters,
exports and serves with the packaged default graph — run as a subprocess in which torch,
torchvision, timm and open_clip cannot be imported (tests/no_torch.py) — and the packaged
graph gives exactly what the PyTorch path gives from the packaged ``.pt`` weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
NO_TORCH = [sys.executable, str(ROOT / "tests" / "no_torch.py")]

LIBRARY_CHECK = """
import json
import pyarrow.parquet as pq
from logosim.data.decode import decode_image
from logosim.demo import DEMO_PARQUET
from logosim.embed.embedder import Embedder
from logosim.embed.params import EmbedParams
from logosim.embed.weight_files import TorchMissingError
import logosim.service.app  # the API imports without torch

images = [decode_image(b) for b in pq.read_table(DEMO_PARQUET).column("image")[:4].to_pylist()]
embedder = Embedder(EmbedParams())
vectors, blocks = embedder.embed_images_local(images)
refused = {}
for asked in ({"weights": "wheel"}, {"runtime": "eager"}):
    try:
        Embedder(EmbedParams(**asked))
    except TorchMissingError as exc:
        refused[next(iter(asked.values()))] = str(exc)
from deployments.serve import FLOWS, load_flow

served = sorted(name for name in FLOWS if load_flow(name) is not None)
print(json.dumps({"runtime": embedder.runtime.name, "vectors": list(vectors.shape),
                  "blocks": list(blocks.shape), "refused": refused, "served": served}))
"""

API_CHECK = """
import json, sys
from fastapi.testclient import TestClient
from logosim.service.app import create_app
from logosim.service.config import ServiceSettings
from logosim.service.engine import Engine

settings = ServiceSettings(store=sys.argv[1])
engine = Engine(settings)
engine.start()
assert engine.error is None, engine.error
client = TestClient(create_app(settings, engine=engine), client=("127.0.0.1", 50000))
with open(sys.argv[2], "rb") as fh:
    r = client.post("/v1/search", files={"image": ("q.png", fh.read(), "image/png")},
                    data={"k": "3", "rerank": "true"})
engine.stop()
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


def _lean(*args: str, env: dict | None = None, timeout: int = 300) -> str:
    """Run under the torch blocker; return stdout; fail with the tail of the output."""
    done = subprocess.run(
        [*NO_TORCH, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert "NO_TORCH_OK" in done.stderr, tail
    return done.stdout


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_without_torch_the_default_model_embeds_and_torch_paths_name_the_extra():
    report = _last_json(_lean("-c", LIBRARY_CHECK))
    assert report["runtime"].startswith("openvino")  # the packaged graph on a graph runtime
    assert report["vectors"] == [4, 1280] and report["blocks"][0] == 4
    assert set(report["refused"]) == {"wheel", "eager"}
    assert all("pip install 'logosim[train]'" in m for m in report["refused"].values())
    assert "build" in report["served"] and "train" not in report["served"]  # logosim serve


def test_the_packaged_graph_matches_the_packaged_weights():
    """Needs torch (installed in CI): the packaged graph is current for the packaged .pt and
    projection, and gives the PyTorch path's descriptors (regenerate it with
    scripts/export_packaged_model.py when the weights change)."""
    pytest.importorskip("torch")
    from logosim.data.sources import SourceSpec, open_source
    from logosim.demo import DEMO_PARQUET
    from logosim.embed.embedder import Embedder
    from logosim.embed.packaged import packaged_for
    from logosim.embed.params import EmbedParams

    params = EmbedParams(runtime="onnx")
    assert packaged_for(params) is not None, "stale: python scripts/export_packaged_model.py"
    source = open_source(SourceSpec(path=str(DEMO_PARQUET)))
    results = [
        Embedder(params, packaged=packaged).embed_records(source.records(0, 16))
        for packaged in (True, False)
    ]
    assert results[0].ids == results[1].ids and len(results[0].ids) == 16
    assert Embedder(params).backbone is None  # the packaged graph, not a torch backbone
    a, b = (np.concatenate(r.embeddings) for r in results)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    la, lb = (r.local_blocks().astype(np.float32) for r in results)
    assert np.abs(la - lb).max() <= 1e-3


@pytest.mark.slow  # ~2 min on 2 cores: five CLI runs and an API start, 40 logos
def test_a_plain_install_builds_evaluates_searches_clusters_exports_and_serves(
    prefect_server, demo_subset, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    source = str(demo_subset(24, 16))
    store = str(tmp_path / "store")
    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    common = ["--source", source, "--store", store, "--chunk-size", "20", "--pca-dims", "16"]
    _lean("flows.cli", "build", *common, "--group-column", "group", env=env)
    manifests = list(Path(store, "embeddings").glob("*.npz"))
    assert manifests, "no embedding chunks written"
    _lean("flows.cli", "evaluate", *common, "--group-column", "group", env=env)
    metrics = json.loads(Path(store, "eval", "metrics.json").read_text())
    assert "recall@1" in json.dumps(metrics)

    first = pq.read_table(source).slice(0, 1).to_pylist()[0]
    query = tmp_path / "query.png"
    query.write_bytes(first["image"])
    hits = _last_json(
        _lean("flows.cli", "search", "--store", store, "-k", "3", "--json", str(query))
    )
    assert hits["hits"][0]["id"] == first["id"]

    _lean(
        "flows.cli", "cluster", *common, "--group-column", "group", "--method", "kmeans",
        "--umap-dims", "2", "--neighbours", "5", env=env,
    )  # fmt: skip
    assert list(Path(store, "cluster").glob("*/report.html"))

    _lean("flows.cli", "export", "--store", store, "--validate-source", source, env=env)
    report = json.loads(Path(store, "export", "logosim-fp32.json").read_text())
    assert report["pca"] is True and report["local_output"] == "7x7"
    assert report["min_cosine"] > 0.999

    served = _last_json(_lean("-c", API_CHECK, store, str(query)))
    assert served["status"] == 200, served
    assert served["body"]["results"][0]["id"] == first["id"]
    # the exported graph's second output gives the query's local descriptors: stage 2 scores
    # shape agreement too
    assert "spatial" in served["body"]["rerank"]["terms_used"], served["body"]["rerank"]
