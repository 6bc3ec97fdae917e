"""``logosim export`` for the packaged default model without PyTorch, and the dispatcher.

The packaged graph (``logosim.embed.packaged``: Lite0 + GeM + the local head, float NCHW input)
is composed with ONNX nodes into the export format: uint8 NHWC pixels → scaling with the
model's mean/std → the packaged graph → signed power → L2 → the store's PCA (+ whitening)
→ L2 as ``embeddings``, and the local descriptors as a second output ``local``. The result is
checked on real logos against what the embed stage itself computes (the packaged graph on
ONNX Runtime + ``PCAModel.transform``), under the same bar as a PyTorch export. Other weights,
and fp16/int8, go through ``logosim.embed.export`` (PyTorch, the ``train`` extra).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from loguru import logger

from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.export_params import (
    ExportError,
    ExportParams,
    agreement,
    publish_export,
    resolve_weights,
    run_session,
)
from logosim.embed.graph_runtime import ort_session
from logosim.embed.packaged import PackagedGraph, packaged_for
from logosim.embed.params import LOGO_WEIGHTS
from logosim.embed.pca import PCA_FILE, PCAModel
from logosim.embed.weight_files import require_torch, torch_available


def packaged_export_graph(store: ArtifactStore, params: ExportParams) -> PackagedGraph | None:
    """The packaged graph when it can serve this export (the default weights, fp32)."""
    if params.precision != "fp32" or resolve_weights(store, params.weights) != LOGO_WEIGHTS:
        return None
    return packaged_for(params.embed_params(LOGO_WEIGHTS, runtime="onnx", device="cpu"))


def export_model(store: ArtifactStore, params: ExportParams | None = None) -> Manifest:
    """Export with PyTorch where it is installed (as before); without it, compose the
    packaged graph for the default weights; anything else says to install the extra."""
    params = params or ExportParams()
    if not torch_available():
        graph = packaged_export_graph(store, params)
        if graph is not None:
            return export_packaged(store, params, graph)
    require_torch(f"exporting weights {params.weights!r} at {params.precision}")
    from logosim.embed.export import export_model as export_with_torch

    return export_with_torch(store, params)


def _pca(store: ArtifactStore, params: ExportParams) -> PCAModel | None:
    manifest = store.load_verified(PCA_FILE) if params.use_pca else None
    if manifest is None or manifest.rows == 0:
        return None
    return PCAModel.from_arrays(store.read_arrays(manifest))


def compose(
    graph: PackagedGraph, pca: PCAModel | None, local: bool, metadata: dict[str, str]
) -> bytes:
    """The export-format graph around the packaged one (see the module's docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(graph.path))
    g = proto.graph
    inner_in, inner_out = g.input[0].name, g.output[0].name
    for node in g.node:  # free the outer names "images" / "embeddings" for the new ends
        node.input[:] = ["scaled" if n == inner_in else n for n in node.input]
        node.output[:] = ["raw" if n == inner_out else n for n in node.output]
    consts: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        consts.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    f32 = np.float32
    std = np.asarray(graph.std, f32).reshape(1, 3, 1, 1)
    mean = np.asarray(graph.mean, f32).reshape(1, 3, 1, 1)
    nodes = [  # the same scaling as normalize.to_chw: x·(1/255/std) − mean/std
        helper.make_node("Cast", ["images"], ["px"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["px"], ["px_chw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["px_chw", const("k_scale", f32(1 / 255) / std)], ["px_s"]),
        helper.make_node("Sub", ["px_s", const("k_shift", mean / std)], ["scaled"]),
    ]
    dim = graph.dim
    i64 = np.int64
    after = [
        helper.make_node(
            "Slice",
            ["raw", const("k_0", i64([0])), const("k_dim", i64([dim])), const("k_ax", i64([1]))],
            ["pooled"],
        )
    ]
    if local:
        big = const("k_end", i64([np.iinfo(np.int64).max]))
        after.append(helper.make_node("Slice", ["raw", "k_dim", big, "k_ax"], ["local"]))
    eps = const("k_eps", f32(1e-12))

    def l2(src: str, dst: str) -> None:
        after.extend(
            [
                helper.make_node("ReduceL2", [src], [f"{dst}_n"], axes=[1], keepdims=1),
                helper.make_node("Max", [f"{dst}_n", eps], [f"{dst}_m"]),
                helper.make_node("Div", [src, f"{dst}_m"], [dst]),
            ]
        )

    x = "pooled"
    if pca is not None and pca.power != 1.0:  # PCAModel.transform's signed power
        after += [
            helper.make_node("Abs", [x], ["p_abs"]),
            helper.make_node("Pow", ["p_abs", const("k_pow", f32(pca.power))], ["p_pow"]),
            helper.make_node("Sign", [x], ["p_sign"]),
            helper.make_node("Mul", ["p_sign", "p_pow"], ["powered"]),
        ]
        x = "powered"
    if pca is None:
        l2(x, "embeddings")
        out_dim = dim
    else:
        l2(x, "unit")
        after += [
            helper.make_node("Sub", ["unit", const("k_mean", pca.mean.astype(f32))], ["centred"]),
            helper.make_node(
                "MatMul", ["centred", const("k_comp", pca.components.T.astype(f32))], ["proj"]
            ),
            helper.make_node("Div", ["proj", const("k_whiten", pca.scale.astype(f32))], ["wh"]),
        ]
        l2("wh", "embeddings")
        out_dim = pca.dims
    size = graph.image_size
    new_in = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", size, size, 3])
    outputs = [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", out_dim])]
    if local:
        outputs.append(helper.make_tensor_value_info("local", TensorProto.FLOAT, ["batch", None]))
    composed = helper.make_graph(
        nodes + list(g.node) + after,
        "logosim_export",
        [new_in],
        outputs,
        initializer=list(g.initializer) + consts,
    )
    model = helper.make_model(composed, opset_imports=proto.opset_import)
    model.ir_version = proto.ir_version
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _validation_pixels(params: ExportParams) -> tuple[list[str], np.ndarray]:
    """Real logos as uint8 model inputs, prepared as the embed stage prepares them."""
    from logosim.data.decode import decode_image
    from logosim.data.sources import open_source
    from logosim.embed.normalize import to_array, to_model_input

    ids, pixels = [], []
    for record in open_source(params.validate_source).records():
        if len(ids) >= params.validate_images:
            break
        try:
            image = decode_image(record.data)
        except Exception:  # an undecodable logo is not a validation image
            continue
        ids.append(record.id)
        pixels.append(
            to_array(to_model_input(image, params.image_size, params.normalize, params.blur))
        )
    if len(ids) < 2:
        raise ExportError(
            f"need real logos to validate against; {params.validate_source.path} has {len(ids)}"
        )
    return ids, np.stack(pixels)


def export_packaged(store: ArtifactStore, params: ExportParams, graph: PackagedGraph) -> Manifest:
    """Compose, validate against the embed stage's own path, publish (as ``export_model``)."""
    from logosim.embed.embedder import Embedder
    from logosim.embed.normalize import to_chw

    pca = _pca(store, params)
    metadata = {
        "logosim.image_size": str(params.image_size),
        "logosim.normalize": params.normalize,
        "logosim.blur": str(params.blur),
        "logosim.dim": str(pca.dims if pca else graph.dim),
        "logosim.precision": "fp32",
        "logosim.weights": LOGO_WEIGHTS,
        "logosim.pca": str(pca is not None),
        "logosim.built_from": f"packaged graph {graph.path.name} ({graph.weights_digest})",
    }
    if params.local:
        metadata["logosim.local_grid"] = f"{graph.grid[0]}x{graph.grid[1]}"
        metadata["logosim.local_projection"] = graph.projection_origin
    data = compose(graph, pca, params.local, metadata)
    ids, pixels = _validation_pixels(params)
    embedder = Embedder(
        params.embed_params(LOGO_WEIGHTS, runtime="onnx", device="cpu").model_copy(
            update={"local": False}
        )
    )
    raw = embedder.embed_inputs([to_chw(p, graph.mean, graph.std) for p in pixels])
    reference = pca.transform(raw) if pca is not None else raw
    session = ort_session(data)
    started = time.perf_counter()
    candidate = run_session(session, pixels)
    speed = len(pixels) / (time.perf_counter() - started)
    cosines = agreement(reference, candidate)
    worst = int(np.argmin(cosines))
    report: dict[str, Any] = {
        "precision": "fp32",
        "size_mb": round(len(data) / 2**20, 3),
        "threshold": params.min_cosine,
        "validated_on": "cpu",
        "reference": "the embed stage's packaged graph + PCA (no PyTorch installed)",
        "min_cosine": round(float(cosines.min()), 6),
        "mean_cosine": round(float(cosines.mean()), 6),
        "worst_image": ids[worst],
        "throughput_img_s": round(speed, 1),
        "fp32_throughput_img_s": round(speed, 1),
        "weights": LOGO_WEIGHTS,
        "pca": pca is not None,
        "dim": pca.dims if pca else graph.dim,
        "image_size": params.image_size,
        "opset": params.opset,
        "validated_images": len(ids),
        "local_output": metadata.get("logosim.local_grid"),
    }
    if not np.isfinite(cosines).all() or cosines.min() < params.min_cosine:
        raise ExportError(
            f"composed export disagrees with the embed stage: cosine {cosines.min():.6f} on "
            f"{ids[worst]} < {params.min_cosine}; nothing was published"
        )
    manifest = publish_export(store, "fp32", data, report)
    logger.info(
        f"exported {manifest.path} from the packaged graph: {report['size_mb']:.1f} MB, min cosine "
        f"{report['min_cosine']}, mean {report['mean_cosine']}"
    )
    return manifest
