"""``logosim evaluate``: build (or reuse) the index over a source with known groups and
print leave-one-out retrieval quality (also written to DIR/eval/metrics.json), over every
grouped image and over the test split alone (DIR/eval/metrics_test.json)."""

from __future__ import annotations

from typing import Any

import typer

from flows.commands._options import register_build_like
from flows.commands.build import run_with_progress


def _evaluate(params: Any, total: int) -> None:
    from flows.evaluate import evaluate_flow
    from logosim.index.build import progress_total

    index_units = progress_total(total, params.index)
    metrics = run_with_progress(total, lambda: evaluate_flow(params), index_units)
    test = metrics.pop("test_split", {})
    typer.echo(f"{'':>13}  {'all queries':>11}" + (f"  {'test split':>11}" if test else ""))
    for key, value in metrics.items():
        typer.echo(f"{key:>13}: {_cell(value)}" + (f"  {_cell(test.get(key))}" if test else ""))
    if test:
        typer.echo("(test split: queries the PCA never saw; groups never cross splits)")


def _cell(value: object) -> str:
    return f"{value:>11.4f}" if isinstance(value, float) else f"{value!s:>11}"


def register(app: typer.Typer) -> None:
    register_build_like(
        app,
        "evaluate",
        "Leave-one-out R@1/@10/@100, mAP, NAR and P@10: every grouped image as a query, and "
        "the test split's alone (images the PCA never saw).",
        _evaluate,
        group_default="group",
    )
