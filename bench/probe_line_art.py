"""Outline copies (issue 16, thirteenth round): does a line-art twin of every image find them?

An outline copy is a contour drawing of its mark; its original is outside the top 100 hits a
third of the time (bench/diagnose_copy_misses.py). Here every image also gets a **line-art
twin**: its colour edges traced (Canny at full size) as one-pixel black lines on white, with
(``border``) or without the canvas edge, framed and embedded like the image. A pair scores the
better of the plain similarity and plain-vs-twin, the twin side taken only where the *other*
image is line art (``gatedR``: silhouette / ink ≥ R, as ``probe_outline.py`` measures it) or
always (``max``), or always with a margin the twin side must win by (``margin``, fourteenth
round). Twins are never compared with twins (the eleventh round's silhouettes on both
sides collapsed retrieval).

Shipped weights and projection, the build's trim framing and σ 2 blur, no text mask; gallery
of 12,390 (bench + copies), queries from the val split as in ``probe_outline.py``. Prints and
writes bench/results/line-art-probe-val.json.

    flock /tmp/logosim-heavy.lock env PYTHONPATH=$PWD .venv/bin/python bench/probe_line_art.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from bench_blur import blurred_features
from bench_data import print_and_write
from probe_outline import ProbeSet, framer, silhouette

from logosim.embed.embedder import Embedder
from logosim.embed.params import DEFAULT_BLUR, EmbedParams
from logosim.embed.pca import PCAModel
from logosim.embed.weight_files import logo_projection_path

RESULTS = Path(__file__).parent / "results"
GATES = (2.0, 3.0)  # silhouette / ink from which an image is line art (outline copies' median 3.3)
MARGINS = (0.03, 0.06, 0.1, 0.15)  # the twin side must beat the plain score by this much


def line_art(image: np.ndarray, border: bool) -> np.ndarray:
    """The image's colour edges as one-pixel black lines on white (and the canvas edge)."""
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 40, 120) > 0
    if border:
        edges[[0, -1], :] = edges[:, [0, -1]] = True
    out = np.full_like(image, 255)
    out[edges] = 0
    return out


def twin_scores(
    plain: np.ndarray,
    twin: np.ndarray,
    line: np.ndarray | None,
    queries: np.ndarray,
    margin: float = 0.0,
) -> np.ndarray:
    """max(plain·plain, query plain · gallery twin, query twin · gallery plain); with ``line``
    (gated) the twin side counts only where the plain side's image is line art; ``margin`` is
    taken off the twin side (it wins only where it beats the plain score by that much)."""
    scores = plain[queries] @ plain.T
    to_twins = plain[queries] @ twin.T  # a line-art query against every image's line art
    from_twins = twin[queries] @ plain.T  # the query's line art against line-art images
    if line is not None:
        to_twins = np.where(line[queries][:, None], to_twins, -np.inf)
        from_twins = np.where(line[None, :], from_twins, -np.inf)
    return np.maximum(scores, np.maximum(to_twins, from_twins) - margin)


def main() -> None:
    data = ProbeSet()
    embedder = Embedder(EmbedParams(blur=0))  # the blur is applied here, after framing
    framed = framer(embedder)
    squares, twins, bordered, ratios = [], [], [], []
    for raw in data.decoded():
        squares.append(framed(raw))
        twins.append(framed(line_art(raw, border=False)))
        bordered.append(framed(line_art(raw, border=True)))
        ratios.append(silhouette(raw)[1])
    ratio = np.array(ratios)
    with np.load(logo_projection_path(), allow_pickle=False) as npz:
        project = PCAModel.from_arrays(dict(npz)).transform
    plain = project(blurred_features(embedder, squares, DEFAULT_BLUR))
    vectors = {
        "twin": project(blurred_features(embedder, twins, DEFAULT_BLUR)),
        "border-twin": project(blurred_features(embedder, bordered, DEFAULT_BLUR)),
    }

    def variants(queries: np.ndarray) -> dict[str, np.ndarray]:
        out = {"base": plain[queries] @ plain.T}
        for name, twin in vectors.items():
            out[f"max-{name}"] = twin_scores(plain, twin, None, queries)
            for gate in GATES:
                out[f"gated{gate:g}-{name}"] = twin_scores(plain, twin, ratio >= gate, queries)
        bordered_twin = vectors["border-twin"]
        for margin in MARGINS:
            out[f"margin{margin:g}-border-twin"] = twin_scores(
                plain, bordered_twin, None, queries, margin
            )
        return out

    report: dict = {"split": "val"} | {
        f"line art share at {gate:g}": round(float((ratio >= gate).mean()), 4) for gate in GATES
    }
    data.score(variants, report)
    print_and_write(report, RESULTS / "line-art-probe-val.json")


if __name__ == "__main__":
    main()
