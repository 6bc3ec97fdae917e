"""``logosim build``: stats → splits → embed → PCA → index, with a progress bar over images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from flows.commands._options import image_progress, register_build_like


def run_with_progress(total: int, run: Callable[[], Any]) -> Any:
    """Run a build-like flow under a bar fed by the embed stage (the slow one)."""
    from logosim.embed.embedder import progress_hook

    with image_progress(total, "embed", progress_hook):
        return run()


def _build(params: Any, total: int) -> None:
    from flows.build import build_flow

    run_with_progress(total, lambda: build_flow(params))


def register(app: typer.Typer) -> None:
    register_build_like(
        app,
        "build",
        "Build the searchable index of a source (cached: a rerun recomputes only what changed).",
        _build,
    )
