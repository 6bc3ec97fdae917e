"""PNG histograms of dataset statistics, drawn headless (no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from logosim.stats import ASPECT_BINS, SIZE_BINS, ImageStats
from logosim.store import ArtifactStore, Manifest

TOP_CODES = 30  # the long tail of Vienna codes would make an unreadable chart


def _bar_chart(path: Path, title: str, counts: dict[str, int], xlabel: str) -> None:
    # Figure + Agg canvas directly: thread-safe, unlike pyplot's global figure manager.
    figure = Figure(figsize=(max(6.0, 0.35 * len(counts) + 2), 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels, values = list(counts), list(counts.values())
    axes.bar(range(len(values)), values, color="#3b6ea5")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("images")
    figure.tight_layout()
    figure.savefig(path, format="png")


def _top(counts: dict[str, int], n: int) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def write_histograms(store: ArtifactStore, stats: ImageStats) -> list[Manifest]:
    """One PNG per distribution under ``stats/``; empty distributions are skipped."""
    charts = {
        "width": ("Image width (pixels)", {b: stats.width.get(b, 0) for b in SIZE_BINS}),
        "height": ("Image height (pixels)", {b: stats.height.get(b, 0) for b in SIZE_BINS}),
        "aspect_ratio": (
            "Aspect ratio (width / height)",
            {b: stats.aspect.get(b, 0) for b in ASPECT_BINS},
        ),
        "colour": ("Colour vs grayscale", dict(sorted(stats.colour.items()))),
        "transparency": ("Transparency (alpha channel)", dict(sorted(stats.transparency.items()))),
        "vienna_top": ("Vienna category (top level)", _top(stats.vienna_top, TOP_CODES)),
        "vienna_full": (f"Vienna code (top {TOP_CODES})", _top(stats.vienna_full, TOP_CODES)),
        "years": ("Year", dict(sorted(stats.years.items()))),
        "corrupt": ("Unusable images by reason", dict(sorted(stats.corrupt.items()))),
    }
    manifests = []
    for name, (title, counts) in charts.items():
        if not any(counts.values()):
            continue
        manifests.append(
            store.write_with(
                f"stats/{name}.png",
                lambda tmp, t=title, c=counts, n=name: _bar_chart(tmp, t, c, n),
                kind="plot",
                rows=sum(counts.values()),
            )
        )
    return manifests
