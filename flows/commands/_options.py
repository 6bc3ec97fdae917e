"""Options shared by the commands, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from logosim.core.progress import ProgressFn
from logosim.core.settings import get_settings
from logosim.data.sources import SourceError, SourceFormat, SourceSpec, open_source

SourceOpt = Annotated[
    str, typer.Option("--source", "-s", help="Folder, .parquet file, L3D folder, or 'demo'.")
]
StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Artifact store folder [env LOGOSIM_STORE].")
]
FormatOpt = Annotated[
    SourceFormat, typer.Option("--format", help="Source layout; detected when 'auto'.")
]
GroupOpt = Annotated[
    str | None,
    typer.Option("--group-column", help="Column of known-similar groups (Parquet)."),
]


def source_spec(
    source: str, fmt: SourceFormat = "auto", group_column: str | None = None
) -> SourceSpec:
    return SourceSpec(path=source, format=fmt, group_column=group_column)


def checked_spec(
    source: str, fmt: SourceFormat, group_column: str | None
) -> tuple[SourceSpec, int]:
    spec = source_spec(source, fmt, group_column)
    try:
        return spec, len(open_source(spec))
    except SourceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def store_path(store: Path | None) -> str:
    return str((store or get_settings().store).expanduser().resolve())


@contextmanager
def image_progress(total: int, desc: str, listen: Callable[[ProgressFn], Any]) -> Iterator[tqdm]:
    """A tqdm bar over images, fed by a stage's progress channel (``listen``); chunks that
    came from the cache never report, so the bar is topped up when the flow returns."""
    with tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True) as bar:
        with listen(bar.update):
            yield bar
        bar.update(bar.total - bar.n)
