"""Re-ranking ANN candidates with cheap, explainable image cues.

Two cues an examiner looks at besides "the network says similar": the colours (a red and a
blue rendition of one mark differ; two marks in the same palette look alike) and the layout
(where the ink is on the canvas). Each gives a similarity in [-1, 1] that is mixed with the
ANN score by settable weights. Off by default: on the dev bench it did not beat the ANN
ranking (see notes/issue-3-index.md for the measurement).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

LAYOUT_SIDE = 24
COLOUR_BINS = 4  # per RGB channel: 64 bins


class RerankParams(BaseModel):
    enabled: bool = Field(False, description="Re-rank ANN candidates with colour and layout.")
    weight_ann: float = Field(1.0, ge=0.0)
    weight_colour: float = Field(0.1, ge=0.0)
    weight_layout: float = Field(0.1, ge=0.0)


def _square(image: Image.Image, side: int) -> Image.Image:
    """Pad to a square on white, then shrink: the same framing as the embedder's 'pad'."""
    image = image.convert("RGB")
    edge = max(image.size)
    canvas = Image.new("RGB", (edge, edge), "white")
    canvas.paste(image, ((edge - image.width) // 2, (edge - image.height) // 2))
    return canvas.resize((side, side), Image.Resampling.BILINEAR)


def colour_histogram(image: Image.Image) -> np.ndarray:
    """Hellinger-normalised RGB histogram of the non-background pixels (64 bins)."""
    pixels = np.asarray(_square(image, 64), dtype=np.int32).reshape(-1, 3)
    ink = pixels[(pixels < 235).any(axis=1)]  # near-white is the canvas, not the mark
    if not len(ink):
        ink = pixels
    q = ink * COLOUR_BINS // 256
    codes = (q[:, 0] * COLOUR_BINS + q[:, 1]) * COLOUR_BINS + q[:, 2]
    hist = np.bincount(codes, minlength=COLOUR_BINS**3).astype(np.float32)
    root = np.sqrt(hist / hist.sum())
    return root / max(float(np.linalg.norm(root)), 1e-12)


def layout_map(image: Image.Image) -> np.ndarray:
    """Centred, unit-norm ink map at 24×24: its dot product is the layouts' correlation."""
    gray = np.asarray(_square(image, LAYOUT_SIDE).convert("L"), dtype=np.float32)
    ink = (255.0 - gray).ravel()
    ink -= ink.mean()
    return ink / max(float(np.linalg.norm(ink)), 1e-6)


def cues(images: Sequence[Image.Image | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour and layout descriptors; ``ok`` is False where an image is missing."""
    colour = np.zeros((len(images), COLOUR_BINS**3), dtype=np.float32)
    layout = np.zeros((len(images), LAYOUT_SIDE**2), dtype=np.float32)
    ok = np.zeros(len(images), dtype=bool)
    for i, image in enumerate(images):
        if image is not None:
            colour[i], layout[i], ok[i] = colour_histogram(image), layout_map(image), True
    return colour, layout, ok


def combine(
    ann: np.ndarray, colour: np.ndarray, layout: np.ndarray, params: RerankParams
) -> np.ndarray:
    return params.weight_ann * ann + params.weight_colour * colour + params.weight_layout * layout


def rerank(
    query: Image.Image,
    ids: list[str],
    scores: np.ndarray,
    images: Sequence[Image.Image | None],
    params: RerankParams,
) -> tuple[list[str], np.ndarray]:
    """Candidates re-ordered by the combined score; a candidate without an image keeps
    only its ANN term (so a missing file demotes it instead of failing the query)."""
    q_colour, q_layout, _ = cues([query])
    c_colour, c_layout, ok = cues(images)
    combined = combine(
        np.asarray(scores, dtype=np.float32),
        (c_colour @ q_colour[0]) * ok,
        (c_layout @ q_layout[0]) * ok,
        params,
    )
    order = np.argsort(-combined, kind="stable")
    return [ids[i] for i in order], combined[order]
