"""Export the whole embedding model to one ONNX file, and prove it agrees with PyTorch.

The graph takes what a consumer naturally has — square logos as uint8 NHWC pixels — and
returns index vectors: scaling with the model's mean/std → backbone → pooling → signed power
→ L2 → PCA projection (+ whitening) → L2. Precisions: ``fp32``; ``fp16`` (for CUDA; inputs and outputs
stay uint8/float32); ``int8`` (static QDQ quantisation for CPU, calibrated on real logos).

Every export is checked on real logos against the fp32 PyTorch model: each image's cosine
must reach ``min_cosine`` (0.999; ``int8_min_cosine`` for int8), else :class:`ExportError`
is raised and nothing is published. A JSON report with ``min_cosine``, ``mean_cosine``,
``size_mb``, ``precision`` (and speed) is written next to the model. The embed stage runs
the file through ONNX Runtime with ``--onnx-model`` (``EmbedParams.onnx_model``).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.export_params import (
    EXPORT_DIR,  # noqa: F401  (re-exported: callers import it from here, as before)
    ExportError,
    ExportParams,
    agreement,
    publish_export,
    resolve_weights,
    run_session,
)
from logosim.embed.models import LoadedBackbone
from logosim.embed.pca import PCA_FILE, PCAModel
from logosim.embed.runtime import ort_session
from logosim.train.data import load_images


class EmbeddingModel(nn.Module):
    """uint8 NHWC logos → index vectors, exactly as ``PCAModel.transform`` makes them from
    the backbone's pooled features (signed power → L2 → PCA + whitening → L2); with a local
    head on the backbone, a second output: the projected local descriptors (patches, then
    regions) that stage-2 re-ranking stores, as the embed stage's own graph makes them."""

    def __init__(self, loaded: LoadedBackbone, pca: PCAModel | None) -> None:
        super().__init__()
        self.backbone = loaded.module.eval()
        self.pooled_dim = loaded.dim
        self.local_grid = (
            loaded.module.local_head.grid if loaded.module.local_head is not None else None
        )
        self.register_buffer("mean", torch.tensor(loaded.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(loaded.std).view(1, 3, 1, 1) * 255.0)
        self.has_pca = pca is not None
        self.power = pca.power if pca is not None else 1.0  # PCAModel.transform's signed power
        if pca is not None:
            self.register_buffer("pca_mean", torch.from_numpy(pca.mean))
            self.register_buffer("pca_components", torch.from_numpy(pca.components.T.copy()))
            self.register_buffer("pca_scale", torch.from_numpy(pca.scale))
        self.dim = pca.dims if pca is not None else loaded.dim

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        out = self.backbone(x).float()
        x = out[:, : self.pooled_dim]
        if self.power != 1.0:
            x = torch.sign(x) * x.abs().pow(self.power)
        x = F.normalize(x, dim=1, eps=1e-12)
        if self.has_pca:
            x = (x - self.pca_mean) @ self.pca_components / self.pca_scale
            x = F.normalize(x, dim=1, eps=1e-12)
        if self.local_grid is not None:
            return x, out[:, self.pooled_dim :]
        return x


def build_embedding_model(store: ArtifactStore, params: ExportParams) -> EmbeddingModel:
    from logosim.embed.embedder import torch_backbone

    weights = resolve_weights(store, params.weights)
    loaded, _ = torch_backbone(
        params.embed_params(weights)
    )  # with the local head, as the embed stage runs it
    pca = None
    manifest = store.load_verified(PCA_FILE) if params.use_pca else None
    if manifest is not None and manifest.rows > 0:
        pca = PCAModel.from_arrays(store.read_arrays(manifest))
    logger.info(f"export: weights {weights}, PCA {f'{pca.dims} dims' if pca else 'none'}")
    return EmbeddingModel(loaded, pca).eval()


def to_onnx(model: EmbeddingModel, size: int, opset: int, metadata: dict[str, str]) -> bytes:
    """The model as ONNX bytes with a dynamic batch axis and our settings as metadata."""
    import onnx

    buffer = io.BytesIO()
    example = torch.full((2, size, size, 3), 255, dtype=torch.uint8)
    outputs = ["embeddings", "local"] if model.local_grid is not None else ["embeddings"]
    torch.onnx.export(
        model,
        (example,),
        buffer,
        input_names=["images"],
        output_names=outputs,
        dynamic_axes={"images": {0: "batch"}} | {name: {0: "batch"} for name in outputs},
        opset_version=opset,
        dynamo=False,  # the TorchScript exporter handles timm models without onnxscript
    )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def to_fp16(data: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load_from_string(data), keep_io_types=True)
    return proto.SerializeToString()


def to_int8(data: bytes, calibration: np.ndarray) -> bytes:
    """Static QDQ quantisation (per-channel int8 weights), calibrated on real logos."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{"images": calibration[i : i + 8]} for i in range(0, len(calibration), 8)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        raw, prepared, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        raw.write_bytes(data)
        quant_pre_process(str(raw), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            # Only the convolutions: GeM's cube/cube-root and the L2/PCA head lose too much
            # in 8 bits (min cosine 0.62 on the demo logos when everything was quantised).
            op_types_to_quantize=["Conv"],
        )
        return out.read_bytes()


def validation_pixels(params: ExportParams) -> tuple[list[str], np.ndarray]:
    from logosim.data.sources import open_source

    images = load_images(
        open_source(params.validate_source),
        params.image_size,
        limit=params.validate_images,
        desc="validation logos",
    )
    if len(images) < 2:
        raise ExportError(
            f"need real logos to validate against; {params.validate_source.path} has {len(images)}"
        )
    return images.ids, images.pixels


def _throughput(session: Any, pixels: np.ndarray, batch: int = 32) -> float:
    run_session(session, pixels[:batch], batch)  # warm-up
    started = time.perf_counter()
    run_session(session, pixels, batch)
    return len(pixels) / (time.perf_counter() - started)


def export_model(store: ArtifactStore, params: ExportParams | None = None) -> Manifest:
    """Build, export, validate and publish ``export/logosim-<precision>.onnx`` + its report."""
    params = params or ExportParams()
    model = build_embedding_model(store, params)
    ids, pixels = validation_pixels(params)
    with torch.inference_mode():
        out = model(torch.from_numpy(pixels))
    reference = (out[0] if isinstance(out, tuple) else out).numpy()
    metadata = {
        "logosim.image_size": str(params.image_size),
        "logosim.normalize": params.normalize,
        "logosim.blur": str(params.blur),
        "logosim.dim": str(model.dim),
        "logosim.precision": params.precision,
        "logosim.weights": resolve_weights(store, params.weights),
        "logosim.pca": str(model.has_pca),
    }
    if model.local_grid is not None:  # the second output (read by logosim.embed.exported)
        h, w = model.local_grid
        head = model.backbone.local_head
        metadata["logosim.local_grid"] = f"{h}x{w}"
        metadata["logosim.local_projection"] = getattr(head, "origin", "")
    data = to_onnx(model, params.image_size, params.opset, metadata)
    fp32_session = ort_session(data)
    fp32_speed = _throughput(fp32_session, pixels)
    if params.precision == "fp16":
        data = to_fp16(data)
    elif params.precision == "int8":
        data = to_int8(data, pixels[: max(2, len(pixels) // 2)])
    report = validate(data, reference, ids, pixels, params)
    report |= {
        "fp32_throughput_img_s": round(fp32_speed, 1),
        "weights": metadata["logosim.weights"],
        "pca": model.has_pca,
        "dim": model.dim,
        "image_size": params.image_size,
        "opset": params.opset,
        "validated_images": len(ids),
        "local_output": metadata.get("logosim.local_grid"),
    }
    manifest = publish_export(store, params.precision, data, report)
    logger.info(
        f"exported {manifest.path}: {report['size_mb']:.1f} MB, min cosine {report['min_cosine']}, "
        f"mean {report['mean_cosine']}, {report.get('throughput_img_s')} img/s on {report['validated_on']}"
    )
    return manifest


def validate(
    data: bytes, reference: np.ndarray, ids: Sequence[str], pixels: np.ndarray, params: ExportParams
) -> dict[str, Any]:
    """Run the exported bytes on real logos; raise ExportError when any image disagrees."""
    bar = params.int8_min_cosine if params.precision == "int8" else params.min_cosine
    report: dict[str, Any] = {
        "precision": params.precision,
        "size_mb": round(len(data) / 2**20, 3),
        "threshold": bar,
    }
    validated_on = "cpu"
    try:
        session = ort_session(data)
        candidate = run_session(session, pixels)
    except Exception as exc:  # fp16 kernels missing from the CPU provider
        if params.precision != "fp16" or not torch.cuda.is_available():
            if params.precision == "fp16":
                report |= {
                    "validated_on": None,
                    "min_cosine": None,
                    "mean_cosine": None,
                    "note": f"ONNX Runtime's CPU provider cannot run the fp16 graph here ({type(exc).__name__}: {str(exc)[:200]}); validate on a CUDA machine",
                }
                logger.warning(report["note"])
                return report
            raise ExportError(
                f"ONNX Runtime cannot run the exported {params.precision} model: {exc}"
            ) from exc
        session, validated_on = ort_session(data, "cuda"), "cuda"
        candidate = run_session(session, pixels)
    cosines = agreement(reference, candidate)
    worst = int(np.argmin(cosines))
    report |= {
        "validated_on": validated_on,
        "min_cosine": round(float(cosines.min()), 6),
        "mean_cosine": round(float(cosines.mean()), 6),
        "worst_image": ids[worst],
        "throughput_img_s": round(_throughput(session, pixels), 1),
    }
    if not np.isfinite(cosines).all() or cosines.min() < bar:
        raise ExportError(
            f"{params.precision} export disagrees with PyTorch: cosine {cosines.min():.6f} on "
            f"{ids[worst]} < {bar} (mean {cosines.mean():.6f}); nothing was published"
        )
    return report
