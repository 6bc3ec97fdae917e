"""CLIP image towers through ``open_clip`` as a backbone: ``--model open_clip:<arch>``.

The user's first design embedded logos with CLIP. Its weights cannot be downloaded on these
machines, so ``weights`` is a local file: an open_clip / OpenAI checkpoint of the whole model
(``state_dict`` of image + text towers, as ``open_clip`` saves it) or of the image tower alone
(keys with or without the ``visual.`` prefix). ``random`` builds an untrained tower (tests of
the plumbing only). The descriptor is the tower's projected embedding (``output_dim``); PCA
and the index follow as for any backbone. Inputs are resized to the tower's own size.

On a machine with internet: download e.g. ``open_clip_pytorch_model.bin`` of
``laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` once and pass its path as ``--weights``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

PREFIX = "open_clip:"
RANDOM = "random"
# open_clip's defaults (OpenAI's CLIP normalisation), used when a config names none.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def is_open_clip(model: str) -> bool:
    return model.startswith(PREFIX)


def arch_name(model: str) -> str:
    return model.removeprefix(PREFIX)


class ClipTower(nn.Module):
    """Pixels (N, 3, H, W) → CLIP image embedding (N, D), resized to the tower's input."""

    def __init__(self, visual: nn.Module, dim: int, size: int) -> None:
        super().__init__()
        self.visual, self.dim, self.size = visual, dim, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.visual(x).float()

    forward_features = forward  # what Backbone calls; its pooling is the identity here


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_visual(net: nn.Module, path: Path) -> None:
    state = _read_state(path)
    visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    if not visual:  # an image-tower-only checkpoint
        visual = state
    missing, unexpected = net.visual.load_state_dict(visual, strict=False)
    if missing:
        raise ValueError(
            f"{path} does not fit open_clip {type(net.visual).__name__}: "
            f"{len(missing)} tensors missing (e.g. {missing[:3]})"
        )
    del unexpected  # a full checkpoint's text tower is not needed


def load_open_clip(model: str, weights: str):
    """A LoadedBackbone around the CLIP image tower of ``open_clip:<arch>``."""
    from logosim.embed.models import Backbone, LoadedBackbone, ModelError, weights_digest

    digest = weights_digest(model, weights)  # refuses 'wheel' / 'pretrained' clearly
    try:
        import open_clip
    except ImportError as exc:
        raise ModelError("open_clip is not installed: pip install 'logosim[clip]'") from exc
    try:
        net = open_clip.create_model(arch_name(model), pretrained=None)
    except RuntimeError as exc:
        raise ModelError(f"unknown open_clip model {arch_name(model)!r}: {exc}") from exc
    if weights != RANDOM:
        try:
            _load_visual(net, Path(weights).expanduser())
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load CLIP weights {weights!r}: {exc}") from exc
    visual = net.visual.eval()
    size = visual.image_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    dim = int(getattr(visual, "output_dim", 0) or net.text_projection.shape[-1])
    mean = tuple(getattr(visual, "image_mean", None) or CLIP_MEAN)
    std = tuple(getattr(visual, "image_std", None) or CLIP_STD)
    module = Backbone(ClipTower(visual, dim, size), nn.Identity(), dim)
    return LoadedBackbone(module.eval(), mean, std, digest)  # type: ignore[arg-type]
