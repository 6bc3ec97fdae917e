"""``logosim reindex``: bring an existing index up to date with its source, in place."""

from __future__ import annotations

import typer

from flows.commands._options import (
    ChunkOpt,
    FormatOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    store_path,
)


def register(app: typer.Typer) -> None:
    @app.command("reindex")
    def reindex(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        chunk_size: ChunkOpt = None,
    ) -> None:
        """Embed new and changed images with the index's own settings and add them; tombstone
        deleted ones (what the nightly `reindex` deployment runs)."""
        from flows.reindex import reindex_flow

        spec, _ = checked_spec(source, fmt, None)
        result = reindex_flow(spec, str(store_path(store)), chunk_size)
        typer.echo(
            f"new {result.new:,}, changed {result.changed:,}, deleted {result.deleted:,}, "
            f"embedded {result.embedded:,}; index now {result.index.rows:,} vectors"
        )
