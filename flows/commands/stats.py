"""``logosim stats``: dataset statistics with a progress bar over images."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._options import (
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    image_progress,
    store_path,
)

CheckpointOpt = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every",
        min=1,
        help="Images per checkpoint (env LOGOSIM_STATS_CHECKPOINT_EVERY, default 10000).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        checkpoint_every: CheckpointOpt = None,
    ) -> None:
        """Image sizes, aspect ratios, colour, transparency, Vienna codes, years, text share
        and unusable files; writes stats/stats.json, PNG histograms and errors.jsonl.

        Checkpoints every N images: a rerun after a kill resumes from the last checkpoint.
        """
        from flows.stats import default_params, stats_flow
        from logosim.data.stats import progress_hook

        spec, total = checked_spec(source, fmt, group_column)
        with image_progress(total, "stats", progress_hook):
            summary = stats_flow(spec, store_path(store), default_params(checkpoint_every))
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.corrupt_by_reason.items())
        typer.echo(f"images:  {summary.images:,}")
        typer.echo(f"corrupt: {summary.corrupt:,}" + (f" ({reasons})" if reasons else ""))
        typer.echo(f"stats:   {summary.stats_path}")
        if summary.corrupt:
            typer.echo(f"errors:  {summary.errors_path}")
