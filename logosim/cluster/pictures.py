"""The PNGs of a clustering run, drawn headless (Figure + Agg, no pyplot state):

- ``cluster_samples.png``: the largest clusters, one row each, best members first;
- ``similarity_heatmap.png``: cosine similarities of a sample ordered by cluster, with the
  logos along both axes;
- ``umap.png``: the 2-D map coloured by cluster, medoid thumbnails of the largest clusters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from PIL import Image, ImageDraw, ImageFont

PALETTE = [to_hex(c) for c in colormaps["tab20"].colors]
NOISE_COLOUR = "#c8c8c8"


def cluster_colour(label: int) -> str:
    return NOISE_COLOUR if label < 0 else PALETTE[label % len(PALETTE)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _tile(image: Image.Image | None, size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), "white")
    if image is not None:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return tile


def best_members(labels: np.ndarray, closeness: np.ndarray, cluster: int, count: int) -> np.ndarray:
    """Up to ``count`` members of ``cluster``, closest to its centre first."""
    members = np.flatnonzero(labels == cluster)
    return members[np.argsort(-closeness[members], kind="stable")][:count]


def samples_grid(
    path: Path,
    rows: Sequence[tuple[str, Sequence[Image.Image | None]]],
    thumb: int = 96,
) -> None:
    """One row per cluster: a caption above, then its sample logos."""
    pad, caption = 8, 22
    columns = max((len(t) for _, t in rows), default=1)
    width = pad + columns * (thumb + pad)
    height = pad + len(rows) * (caption + thumb + pad) if rows else 60
    sheet = Image.new("RGB", (max(width, 480), height), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(15)
    if not rows:
        draw.text((pad, pad), "no clusters to show", fill="black", font=font)
    for r, (title, tiles) in enumerate(rows):
        y = pad + r * (caption + thumb + pad)
        draw.text((pad, y), title, fill="#1f3f6f", font=font)
        for c, image in enumerate(tiles):
            x = pad + c * (thumb + pad)
            sheet.paste(_tile(image, thumb), (x, y + caption))
            draw.rectangle([x - 1, y + caption - 1, x + thumb, y + caption + thumb], outline="#ccc")
    sheet.save(path, format="PNG", optimize=True)


def _figure(width: float, height: float, dpi: int = 100) -> Figure:
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def heatmap(
    path: Path,
    x: np.ndarray,
    labels: np.ndarray,
    thumbs: Sequence[Image.Image | None],
    title: str,
) -> None:
    """Cosine similarities of the sample ``x`` (already ordered by cluster), thumbnails on
    both axes, a line between clusters."""
    n = len(x)
    sims = x @ x.T
    size = max(6.0, 0.26 * n + 3.0)
    figure = _figure(size + 1.2, size)
    axes = figure.add_axes((0.09, 0.02, 0.78, 0.9))
    shown = axes.imshow(sims, cmap="magma", vmin=max(-1.0, float(sims.min())), vmax=1.0)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=13, pad=34)
    bounds = np.flatnonzero(np.diff(labels)) + 0.5
    for b in bounds:
        axes.axhline(b, color="#33ccff", lw=1.2)
        axes.axvline(b, color="#33ccff", lw=1.2)
    zoom = 0.21 * 96 / max(1, max((t.width for t in thumbs if t is not None), default=96))
    for i, image in enumerate(thumbs):
        if image is None:
            continue
        for xy, box in (((-0.75, i), (1.0, 0.5)), ((i, -0.75), (0.5, 0.0))):
            artist = AnnotationBbox(
                OffsetImage(np.asarray(_tile(image, 96)), zoom=zoom),
                xy,
                xycoords="data",
                box_alignment=box,
                frameon=False,
                annotation_clip=False,
            )
            axes.add_artist(artist)
    bar = figure.add_axes((0.9, 0.2, 0.025, 0.6))
    figure.colorbar(shown, cax=bar, label="cosine similarity")
    figure.savefig(path, format="png")


def umap_map(
    path: Path,
    xy: np.ndarray,
    labels: np.ndarray,
    medoid_thumbs: Sequence[tuple[int, int, Image.Image | None]],
    title: str,
) -> None:
    """The 2-D layout coloured by cluster (noise in grey, underneath); medoid thumbnails of
    the largest clusters framed in their cluster's colour with the cluster number."""
    figure = _figure(13, 11)
    axes = figure.add_axes((0.03, 0.03, 0.94, 0.92))
    n = len(xy)
    dot = float(np.clip(24000 / max(n, 1), 1.5, 30))
    noise = labels < 0
    axes.scatter(xy[noise, 0], xy[noise, 1], s=dot * 0.6, c=NOISE_COLOUR, lw=0, alpha=0.7)
    colours = [cluster_colour(int(c)) for c in labels[~noise]]
    axes.scatter(xy[~noise, 0], xy[~noise, 1], s=dot, c=colours, lw=0, alpha=0.85)
    span = np.ptp(xy, axis=0).max() if n else 1.0
    placed: list[np.ndarray] = []
    for label, index, image in medoid_thumbs:
        if image is None or any(np.abs(xy[index] - p).max() < 0.07 * span for p in placed):
            continue  # a thumbnail would hide another: the larger cluster keeps its place
        placed.append(xy[index])
        artist = AnnotationBbox(
            OffsetImage(np.asarray(_tile(image, 96)), zoom=0.5),
            (xy[index, 0], xy[index, 1]),
            xybox=(0, 0),
            boxcoords="offset points",
            frameon=True,
            bboxprops={"edgecolor": cluster_colour(label), "lw": 2.5},
            pad=0.1,
        )
        axes.add_artist(artist)
        axes.annotate(
            str(label),
            (xy[index, 0], xy[index, 1]),
            xytext=(0, -30),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            weight="bold",
            color="#222",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    axes.set_xticks([])
    axes.set_yticks([])
    if n:
        pad = 0.04 * span
        axes.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
        axes.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    clusters = len(np.unique(labels[labels >= 0]))
    axes.set_title(
        f"{title}: {n:,} logos, {clusters:,} clusters"
        + (f", {int(noise.sum()):,} noise (grey)" if noise.any() else "")
        + "\nthumbnails: medoids of the largest clusters (number = cluster)",
        fontsize=13,
    )
    figure.savefig(path, format="png")


def heatmap_sample(
    labels: np.ndarray, closeness: np.ndarray, clusters: int = 8, per_cluster: int = 6
) -> np.ndarray:
    """Rows for the heatmap: the best members of the largest clusters, grouped by cluster
    (clusters are numbered by size, so 0, 1, … are the largest)."""
    chosen = [
        best_members(labels, closeness, c, per_cluster)
        for c in range(min(clusters, int(labels.max()) + 1))
    ]
    if not chosen:  # no cluster at all (all noise): show a spread of singletons
        return np.arange(min(len(labels), clusters * per_cluster))
    return np.concatenate(chosen)
