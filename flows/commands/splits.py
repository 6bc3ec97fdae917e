"""``logosim splits``: stratified, group-preserving train/val/test splits and eval pairs."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._options import (
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    store_path,
)

SeedOpt = Annotated[int | None, typer.Option("--seed", help="Split seed (env LOGOSIM_SEED).")]
StratumOpt = Annotated[
    str | None,
    typer.Option(
        "--stratum-column",
        help="Column to stratify by where there are no Vienna codes (default: the first of category, vienna_top, class, collection with two or more values).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("splits")
    def splits(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        seed: SeedOpt = None,
        stratum_column: StratumOpt = None,
    ) -> None:
        """Train/val/test 70/15/15, stratified by Vienna category (or a category column),
        never splitting a group of known-similar images; writes splits/splits.parquet and
        val/test pairs (similar and as many dissimilar). Reads metadata only.
        """
        from flows.splits import splits_flow
        from logosim.core.settings import get_settings
        from logosim.data.splits import SplitsParams

        spec, _ = checked_spec(source, fmt, group_column)
        params = SplitsParams(
            seed=get_settings().seed if seed is None else seed, stratum_column=stratum_column
        )
        summary = splits_flow(spec, store_path(store), params)
        typer.echo(f"images: {summary.images:,} ({summary.groups:,} groups kept whole)")
        for split, count in summary.splits.items():
            line = f"  {split}: {count:,}"
            if pairs := summary.pairs.get(split):
                line += f", pairs {pairs['similar']} similar / {pairs['dissimilar']} dissimilar"
            typer.echo(line)
        typer.echo(f"splits: {summary.splits_path}")
