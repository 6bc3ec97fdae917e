"""Fine-tuning settings; no torch, so the CLI and the Prefect form can show them cheaply."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from logosim.core.digest import stable_digest
from logosim.embed.params import DEFAULT_MODEL, WHEEL_WEIGHTS, NormalizeMode, Pooling
from logosim.train.augment import AugmentParams

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Loss = Literal["moco", "supcon"]
CHECKPOINT_VERSION = 1
# bf16 autocast on this 2-core AVX-512-bf16 CPU: see bench/bench_train.py and the issue note.
CPU_AUTO_PRECISION: Precision = "fp32"


class TrainParams(BaseModel):
    """Fine-tuning settings (a form in the Prefect UI). Defaults follow the seed."""

    model: str = DEFAULT_MODEL
    weights: str = Field(WHEEL_WEIGHTS, description="Starting weights (see EmbedParams).")
    pooling: Pooling = "gem"
    gem_p: float = Field(3.0, gt=0)
    image_size: int = Field(224, ge=32, le=1024, description="Lower it for CPU runs.")
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    epochs: int = Field(100, ge=1)
    warmup_epochs: float = Field(10, ge=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps in all.")
    patience: int = Field(10, ge=1, description="Epochs without improvement before stopping.")
    queue_size: int = Field(65_536, ge=0, description="0 = queue-free MoCo v3.")
    momentum: float = Field(0.999, ge=0, le=1)
    momentum_cosine: bool = Field(False, description="Raise the momentum to 1 on a cosine.")
    temperature: float = Field(0.2, gt=0)
    proj_dim: int = Field(256, ge=8)
    hidden_dim: int = Field(1024, ge=8)
    freeze_stages: int = Field(0, ge=0, le=7, description="Freeze stem + first N blocks.")
    freeze_bn: bool = Field(True, description="Keep backbone BatchNorm statistics fixed.")
    precision: Precision = Field("auto", description="auto: fp16 AMP on CUDA, measured on CPU.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    group_positives: bool = Field(False, description="Images of one group are positives.")
    vienna_positives: bool = Field(False, description="Same full Vienna code = positives.")
    loss: Loss = Field(
        "moco",
        description="moco: InfoNCE, other images are negatives; supcon: images sharing a "
        "positive key (group/Vienna) are positives in the batch and the queue too.",
    )
    hard_negatives: float = Field(
        0.0,
        ge=0,
        description="supcon: weight negatives by exp(β·similarity), β this value (0 = off); "
        "the most query-like negatives, often marks in its own style, count more.",
    )
    normalize: NormalizeMode = Field("pad", description="Geometry of the training images.")
    blur: float = Field(
        0.0,
        ge=0,
        le=16,
        description="Gaussian blur (σ in pixels at image_size) on every view and val image, "
        "as the embedder blurs its input; 0 = none.",
    )
    use_groups: bool = Field(True, description="Use the group column at all (val metrics).")
    max_images: int | None = Field(None, ge=2, description="Train on at most this many.")
    val_images: int = Field(500, ge=2)
    val_fraction: float = Field(0.05, gt=0, lt=1, description="Hold-out when no splits exist.")
    checkpoint_every_steps: int = Field(0, ge=0, description="0 = at the end of epochs only.")
    keep_checkpoints: int = Field(3, ge=1)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    seed: int = 0
    workers: int = Field(2, ge=1, description="Augmentation threads.")

    def run_digest(self) -> str:
        """What a checkpoint must agree on to be resumed (not the length or cadence of a run)."""
        loose = {
            "epochs",
            "max_steps",
            "patience",
            "checkpoint_every_steps",
            "keep_checkpoints",
            "workers",
        }
        return stable_digest("train", self.model_dump(mode="json", exclude=loose))
