"""``logosim serve``: serve every flow as a deployment from this process (the laptop route)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        flows: Annotated[
            list[str] | None,
            typer.Argument(help="Flows to serve (default: all), e.g. build embed reindex."),
        ] = None,
        reindex_cron: Annotated[
            str, typer.Option(help="Cron of the reindex/nightly schedule (UTC).")
        ] = "0 2 * * *",
        pause_schedule: Annotated[
            bool, typer.Option("--pause-schedule", help="Create the schedule paused.")
        ] = False,
        limit: Annotated[int | None, typer.Option(help="Most flow runs executing at once.")] = None,
    ) -> None:
        """Serve the deployments (build/default, embed/default, …, reindex/nightly).

        Start a server first (`prefect server start`) and set PREFECT_API_URL, then press
        Run on a deployment in the UI. Stop with Ctrl-C.
        """
        from deployments.serve import serve_all  # imports every flow: only when serving

        serve_all(
            flows or None,
            reindex_cron=reindex_cron,
            schedule_active=not pause_schedule,
            limit=limit,
        )
