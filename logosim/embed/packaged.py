"""The default model as a packaged ONNX graph: embedding without PyTorch.

``graphs/logo-local.onnx`` is exactly the graph the embed stage exports from the packaged
logo weights (``weights='logo'``: Lite0 + GeM, with the local-descriptor head of issue 12) —
NCHW float input scaled with the model's mean/std, one output: the raw pooled descriptor
followed by the projected local descriptors. The embed stage runs it on OpenVINO / ONNX
Runtime whenever the default weights are asked for on a graph runtime, with or without
PyTorch installed: the same graph gives the same descriptors, so the cache keys (the
weights file's sha256) stay valid. Its metadata names the weights and local projection it
was made from; when the packaged ``.pt`` or projection changes, the graph no longer
matches and is not used until it is regenerated:

    python scripts/export_packaged_model.py     # needs the train extra (PyTorch)
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loguru import logger

from logosim.embed.params import DEFAULT_MODEL, LOGO_WEIGHTS, EmbedParams, Pooling
from logosim.embed.weight_files import ModelError, file_digest, weights_digest

PACKAGED_GRAPH = Path(__file__).parent / "graphs" / "logo-local.onnx"
REGENERATE = "python scripts/export_packaged_model.py (needs: pip install 'logosim[train]')"
_PREFIX = "logosim.packaged."
STRIDE = 32  # the backbone's total stride: a 224 px input gives a 7×7 map


@dataclass(frozen=True)
class PackagedGraph:
    path: Path
    model: str
    weights_digest: str
    pooling: Pooling
    gem_p: float
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int  # the pooled descriptor's width; the local descriptors follow it
    grid: tuple[int, int]
    projection_digest: str  # sha256 of the local projection file baked into the head
    projection_origin: str
    torch_version: str

    def metadata(self) -> dict[str, str]:
        fields = {
            "model": self.model,
            "weights_digest": self.weights_digest,
            "pooling": self.pooling,
            "gem_p": repr(self.gem_p),
            "image_size": str(self.image_size),
            "mean": json.dumps(self.mean),
            "std": json.dumps(self.std),
            "dim": str(self.dim),
            "grid": json.dumps(self.grid),
            "projection_digest": self.projection_digest,
            "projection_origin": self.projection_origin,
            "torch_version": self.torch_version,
        }
        return {_PREFIX + k: v for k, v in fields.items()}


@lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int) -> PackagedGraph:
    import onnx

    proto = onnx.load(path, load_external_data=False)
    meta = {
        p.key.removeprefix(_PREFIX): p.value
        for p in proto.metadata_props
        if p.key.startswith(_PREFIX)
    }
    try:
        return PackagedGraph(
            path=Path(path),
            model=meta["model"],
            weights_digest=meta["weights_digest"],
            pooling=meta["pooling"],  # type: ignore[arg-type]
            gem_p=float(meta["gem_p"]),
            image_size=int(meta["image_size"]),
            mean=tuple(json.loads(meta["mean"])),  # type: ignore[arg-type]
            std=tuple(json.loads(meta["std"])),  # type: ignore[arg-type]
            dim=int(meta["dim"]),
            grid=tuple(json.loads(meta["grid"])),  # type: ignore[arg-type]
            projection_digest=meta["projection_digest"],
            projection_origin=meta["projection_origin"],
            torch_version=meta["torch_version"],
        )
    except KeyError as exc:
        raise ModelError(
            f"{path}: not a packaged logosim graph (no {exc} in its metadata)"
        ) from exc


def read_packaged(path: Path = PACKAGED_GRAPH) -> PackagedGraph | None:
    """The packaged graph's settings; None when the file is absent (a trimmed install)."""
    if not path.is_file():
        return None
    st = path.stat()
    return _read(str(path), st.st_size, st.st_mtime_ns)


def projection_digest(weights: str, dim: int) -> str:
    """sha256 of the local projection file shipped for these weights ('random' when none)."""
    from logosim.embed.local_features import projection_resource

    resource = projection_resource(weights)
    return file_digest(Path(str(resource))) if resource.is_file() else f"random:{weights}:{dim}"


def packaged_for(params: EmbedParams, path: Path = PACKAGED_GRAPH) -> PackagedGraph | None:
    """The packaged graph when it computes exactly what ``params`` ask for, else None
    (other weights or settings; or a graph made from other weights than the packaged
    ``.pt`` — then it says how to regenerate it)."""
    if params.onnx_model or params.model != DEFAULT_MODEL or params.weights != LOGO_WEIGHTS:
        return None
    graph = read_packaged(path)
    if graph is None:
        return None
    wanted = (params.pooling, params.gem_p if params.pooling == "gem" else None, params.image_size)
    made = (graph.pooling, graph.gem_p if graph.pooling == "gem" else None, graph.image_size)
    if wanted != made:
        return None
    digest = weights_digest(params.model, params.weights)
    stale = None
    if digest != graph.weights_digest:
        stale = f"made from weights {graph.weights_digest[:19]}…, packaged {digest[:19]}…"
    elif projection_digest(digest, graph.dim) != graph.projection_digest:
        stale = "made with another local projection than the packaged one"
    if stale:
        logger.warning(f"packaged graph {path.name} is stale ({stale}); regenerate: {REGENERATE}")
        return None
    return graph


def headless(graph: PackagedGraph) -> bytes:
    """The graph without its local head (output: the pooled descriptor alone), for
    ``local=False``: the head's nodes are cut away, the rest is the same graph."""
    import onnx

    proto = onnx.load(str(graph.path))
    concat = next(n for n in proto.graph.node if proto.graph.output[0].name in n.output)
    pooled = concat.input[0]
    inferred = onnx.shape_inference.infer_shapes(proto)  # the extractor needs value infos
    extracted = onnx.utils.Extractor(inferred).extract_model(
        [i.name for i in proto.graph.input], [pooled]
    )
    return extracted.SerializeToString()


def write_packaged_graph(path: Path = PACKAGED_GRAPH) -> PackagedGraph:
    """Export the packaged logo weights (+ local head) exactly as the embed stage does and
    write the graph with its metadata, atomically. Needs PyTorch."""
    import onnx
    import torch

    from logosim.embed.embedder import torch_backbone
    from logosim.embed.runtime import export_onnx

    params = EmbedParams(model=DEFAULT_MODEL, weights=LOGO_WEIGHTS, local=True)
    loaded, projection = torch_backbone(params)
    assert projection is not None and loaded.module.local_head is not None
    data = export_onnx(loaded.module, params.image_size)
    graph = PackagedGraph(
        path=path,
        model=params.model,
        weights_digest=loaded.weights_digest,
        pooling=params.pooling,
        gem_p=params.gem_p,
        image_size=params.image_size,
        mean=tuple(float(v) for v in loaded.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in loaded.std),  # type: ignore[arg-type]
        dim=loaded.dim,
        grid=loaded.module.local_head.grid,
        projection_digest=projection_digest(loaded.weights_digest, loaded.dim),
        projection_origin=projection.origin,
        torch_version=torch.__version__,
    )
    proto = onnx.load_from_string(data)
    onnx.helper.set_model_props(proto, graph.metadata())
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as fh:
        fh.write(proto.SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(fh.name, 0o644)  # package data: readable by every user of the install
    os.replace(fh.name, path)
    logger.info(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB) from {graph.weights_digest}")
    return graph
