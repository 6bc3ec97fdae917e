"""``logosim stats``: dataset statistics with a progress bar over images."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from tqdm import tqdm

from flows.commands._options import (
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    source_spec,
    store_path,
)
from logosim.sources import SourceError, open_source
from logosim.stats import progress_hook

CheckpointOpt = Annotated[
    int | None,
    typer.Option(
        "--checkpoint-every",
        min=1,
        help="Images per checkpoint [env LOGOSIM_STATS_CHECKPOINT_EVERY, default 10000].",
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

        spec = source_spec(source, fmt, group_column)
        try:
            total = len(open_source(spec))
        except SourceError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        lock = threading.Lock()
        with tqdm(total=total, unit="img", desc="stats", dynamic_ncols=True) as bar:

            def advance(n: int) -> None:
                with lock:
                    bar.update(n)

            with progress_hook(advance):
                summary = stats_flow(spec, store_path(store), default_params(checkpoint_every))
            bar.update(bar.total - bar.n)  # chunks restored from checkpoints
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.corrupt_by_reason.items())
        typer.echo(f"images:  {summary.images:,}")
        typer.echo(f"corrupt: {summary.corrupt:,}" + (f" ({reasons})" if reasons else ""))
        typer.echo(f"stats:   {summary.stats_path}")
        if summary.corrupt:
            typer.echo(f"errors:  {summary.errors_path}")
