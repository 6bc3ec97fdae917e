"""``logosim verify`` and ``logosim gc``: check a store's artifacts, and clean it up."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._options import StoreOpt, store_path

QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Compare sizes only; skip the sha256 of every file.")
]


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(store: StoreOpt = None, quick: QuickOpt = False) -> None:
        """Check every manifest against its file (missing, truncated, changed bytes) and list
        leftovers of interrupted writes, files without a manifest and stale embedding
        chunks. Exits 1 when an artifact is damaged (the next run recomputes it)."""
        from logosim.core.store import ArtifactStore
        from logosim.core.verify import verify_store

        report = verify_store(ArtifactStore(store_path(store)), checksum=not quick)
        for line in report.lines():
            typer.echo(line)
        if not report.ok:
            raise typer.Exit(1)

    @app.command("gc")
    def gc(
        store: StoreOpt = None,
        delete: Annotated[
            bool, typer.Option("--delete", help="Remove them; without it, only list them.")
        ] = False,
        orphans: Annotated[
            bool,
            typer.Option("--orphans", help="Also remove files no manifest describes."),
        ] = False,
        stale: Annotated[
            bool,
            typer.Option(
                "--stale", help="Also remove embedding chunks the index was not built from."
            ),
        ] = False,
    ) -> None:
        """Remove leftovers of interrupted writes (with --orphans, files no manifest describes;
        with --stale, embedding chunks the current index does not use). A dry run by default."""
        from logosim.core.store import ArtifactStore
        from logosim.core.verify import collect_garbage, verify_store

        artifacts = ArtifactStore(store_path(store))
        report = verify_store(artifacts, checksum=False)
        doomed = collect_garbage(artifacts, report, orphans=orphans, stale=stale, delete=delete)
        for rel in doomed:
            typer.echo(("removed  " if delete else "would remove  ") + rel)
        total = len(doomed)
        typer.echo(f"{total} file(s) {'removed' if delete else 'to remove; pass --delete'}")
