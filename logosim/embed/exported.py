"""What an exported model (``logosim export``) says about itself, read without torch.

The export writes its settings into the ONNX metadata (``logosim.*``): the square input size
and normalise mode its uint8 NHWC input expects, the output dimension, and whether the PCA
projection is inside the graph, and (since issue 17) whether a second output carries the
local descriptors for stage-2 re-ranking (``logosim.local_grid``). The embed stage needs them to prepare pixels, to key its
cache (the file's sha256) and to know whether a PCA stage still has to follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import get_args

from logosim.embed.params import BLUR_UNRECORDED, NormalizeMode
from logosim.embed.weight_files import ModelError, file_digest

META_PREFIX = "logosim."


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    image_size: int
    normalize: NormalizeMode
    dim: int
    has_pca: bool
    precision: str
    sha256: str
    local_grid: tuple[int, int] | None = None  # the second output's feature-map grid
    projection_origin: str = ""  # the local projection inside the graph
    blur: float = BLUR_UNRECORDED


@lru_cache(maxsize=8)
def _read(path: str, size: int, mtime_ns: int) -> dict[str, str]:
    import onnx

    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # truncated or not ONNX at all
        raise ModelError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from exc
    return {p.key: p.value for p in proto.metadata_props}


def read_exported(path: str | Path) -> ExportedModel:
    """The settings of an exported model; ModelError when it is missing or not ours."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ModelError(f"exported model {file} does not exist (make one with: logosim export)")
    st = file.stat()
    meta = _read(str(file), st.st_size, st.st_mtime_ns)
    if f"{META_PREFIX}image_size" not in meta or f"{META_PREFIX}dim" not in meta:
        raise ModelError(
            f"{file}: no logosim metadata; only models written by `logosim export` can embed"
        )
    normalize = meta.get(f"{META_PREFIX}normalize", "pad")
    if normalize not in get_args(NormalizeMode):
        raise ModelError(f"{file}: unknown normalise mode {normalize!r} in its metadata")
    return ExportedModel(
        path=file,
        image_size=int(meta[f"{META_PREFIX}image_size"]),
        normalize=normalize,  # type: ignore[arg-type]
        dim=int(meta[f"{META_PREFIX}dim"]),
        has_pca=meta.get(f"{META_PREFIX}pca", "False") == "True",
        precision=meta.get(f"{META_PREFIX}precision", "fp32"),
        sha256=file_digest(file),
        local_grid=_grid(meta.get(f"{META_PREFIX}local_grid")),
        projection_origin=meta.get(f"{META_PREFIX}local_projection", ""),
        blur=float(meta.get(f"{META_PREFIX}blur", BLUR_UNRECORDED)),
    )


def _grid(text: str | None) -> tuple[int, int] | None:
    """'7x7' → (7, 7); absent (an export without the local output) → None."""
    if not text:
        return None
    h, _, w = text.partition("x")
    return int(h), int(w)
