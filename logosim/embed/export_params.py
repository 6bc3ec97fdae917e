"""What ``logosim export`` is asked for and how an export is checked, without PyTorch
(``export.py`` exports with PyTorch; ``graph_export.py`` composes the packaged graph)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.embed.graph_runtime import ONNX_OPSET
from logosim.embed.params import (
    DEFAULT_BLUR,
    DEFAULT_MODEL,
    DEFAULT_NORMALIZE,
    LOGO_WEIGHTS,
    EmbedParams,
    ExportPrecision,
    NormalizeMode,
    Pooling,
)

BEST_MODEL = "train/best.pt"  # logosim.train.checkpoint.BEST_MODEL (that module needs torch)

EXPORT_DIR = "export"


class ExportError(RuntimeError):
    """The exported model disagrees with PyTorch (or cannot be built): nothing was published."""


class ExportParams(BaseModel):
    precision: ExportPrecision = "fp32"
    model: str = DEFAULT_MODEL
    weights: str = Field(
        "auto", description="'auto' = the fine-tuned train/best.pt when present, else 'logo'."
    )
    pooling: Pooling = "gem"
    gem_p: float = Field(3.0, gt=0)
    image_size: int = Field(224, ge=32, le=1024)
    normalize: NormalizeMode = DEFAULT_NORMALIZE  # as the build's default embeds
    blur: float = Field(DEFAULT_BLUR, ge=0, le=8)  # as the build's default embeds
    use_pca: bool = Field(True, description="Include pca/pca.npz from the store when present.")
    local: bool = Field(
        True,
        description="A second output 'local': the local descriptors for stage-2 re-ranking "
        "(timm CNN backbones).",
    )
    validate_source: SourceSpec = Field(default_factory=SourceSpec, description="Real logos.")
    validate_images: int = Field(64, ge=2)
    min_cosine: float = Field(0.999, gt=0, le=1)
    int8_min_cosine: float = Field(0.95, gt=0, le=1, description="INT8's own bar.")
    opset: int = ONNX_OPSET

    def embed_params(self, weights: str, **run: Any) -> EmbedParams:
        """The embed stage's settings for this export's model with resolved ``weights``
        (``run``: speed-only settings such as runtime and device)."""
        return EmbedParams(
            model=self.model,
            weights=weights,
            pooling=self.pooling,
            gem_p=self.gem_p,
            image_size=self.image_size,
            normalize=self.normalize,
            blur=self.blur,
            local=self.local,
            **run,
        )


def resolve_weights(store: ArtifactStore, weights: str) -> str:
    """'auto' → the fine-tuned ``train/best.pt`` when the store has one, else 'logo'."""
    if weights != "auto":
        return weights
    best = store.load_verified(BEST_MODEL)
    return str(store.path(best.path)) if best is not None else LOGO_WEIGHTS


def run_session(session: Any, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    parts = [
        session.run(None, {name: pixels[i : i + batch]})[0] for i in range(0, len(pixels), batch)
    ]
    return np.concatenate(parts).astype(np.float32)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine per row between two sets of descriptors."""
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def publish_export(
    store: ArtifactStore, precision: str, data: bytes, report: dict[str, Any]
) -> Manifest:
    """Write ``export/logosim-<precision>.onnx`` and its report beside it (both paths of
    ``logosim export``: PyTorch's and the packaged graph's)."""
    manifest = store.write_bytes(
        f"{EXPORT_DIR}/logosim-{precision}.onnx",
        data,
        kind="onnx",
        meta=report,
        versions={"precision": precision},
    )
    store.write_json(
        f"{EXPORT_DIR}/logosim-{precision}.json",
        report | {"path": manifest.path, "sha256": manifest.sha256},
    )
    return manifest
