"""``logosim evaluate``: build (or reuse) the index over a source with known groups and
print leave-one-out retrieval quality (also written to DIR/eval/metrics.json)."""

from __future__ import annotations

from typing import Any

import typer

from flows.commands._options import register_build_like
from flows.commands.build import run_with_progress


def _evaluate(params: Any, total: int) -> None:
    from flows.evaluate import evaluate_flow

    metrics = run_with_progress(total, lambda: evaluate_flow(params))
    for key, value in metrics.items():
        typer.echo(f"{key:>13}: {value:.4f}" if isinstance(value, float) else f"{key:>13}: {value}")


def register(app: typer.Typer) -> None:
    register_build_like(
        app,
        "evaluate",
        "Leave-one-out R@1/@10/@100, mAP, NAR and P@10 (every grouped image is a query).",
        _evaluate,
        group_default="group",
    )
