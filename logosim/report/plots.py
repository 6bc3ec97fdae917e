"""PNG histograms of dataset statistics, drawn headless (no display, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from logosim.core.store import ArtifactStore, Manifest


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


def write_histograms(
    store: ArtifactStore, charts: dict[str, tuple[str, dict[str, int]]]
) -> list[Manifest]:
    """One PNG per chart (name → (title, counts by bin, in order)) under ``stats/``; empty
    charts are skipped. The bins come from ``ImageStats.charts``: plots know no statistics."""
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
