"""Options shared by the commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logosim.settings import get_settings
from logosim.sources import SourceFormat, SourceSpec

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


def store_path(store: Path | None) -> str:
    return str((store or get_settings().store).expanduser().resolve())
