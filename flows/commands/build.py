"""``logosim build``: stats → splits → embed → PCA → index, with a progress bar over images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from flows.commands._options import image_progress, register_build_like, stage_progress


def run_with_progress(total: int, run: Callable[[], Any], index_units: int = 0) -> Any:
    """Run a build-like flow under a bar fed by the embed stage and, given ``index_units``
    (``progress_total``), one that the index build opens (minutes at register scale)."""
    from logosim.embed.embedder import progress_hook
    from logosim.index.build import progress_hook as index_hook

    with image_progress(total, "embed", progress_hook):
        if not index_units:
            return run()
        with stage_progress(index_units, "index", index_hook, unit="vec"):
            return run()


def _build(params: Any, total: int) -> None:
    from flows.build import build_flow
    from logosim.index.build import progress_total

    run_with_progress(total, lambda: build_flow(params), progress_total(total, params.index))


def register(app: typer.Typer) -> None:
    register_build_like(
        app,
        "build",
        "Build the searchable index of a source (cached: a rerun recomputes only what changed).",
        _build,
    )
