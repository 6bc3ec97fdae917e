"""``logosim api``: the search service (FastAPI on uvicorn) and the examiner's page."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._options import StoreOpt, store_path


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        store: StoreOpt = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
        workers: Annotated[
            int, typer.Option(min=1, help="Processes (they share the index pages).")
        ] = 1,
        model: Annotated[
            Path | None, typer.Option(help="Exported ONNX model (default: the store's).")
        ] = None,
        source: Annotated[
            str | None, typer.Option(help="The indexed source, if it moved since the build.")
        ] = None,
        backend: Annotated[str, typer.Option(help="faiss | pgvector")] = "faiss",
        dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (pgvector).")] = None,
    ) -> None:
        """Serve the index in DIR: the API under /v1, its schema at /docs, the page at /.

        API keys come from LOGOSIM_API_KEYS (comma-separated) or LOGOSIM_API_KEYS_FILE; with
        none the service answers this machine only. No Prefect server is needed.
        """
        from logosim.service.config import LOOPBACK, ServiceSettings

        env = {"LOGOSIM_API_STORE": store_path(store), "LOGOSIM_API_BACKEND": backend}
        for name, value in (("MODEL", model), ("SOURCE", source), ("DSN", dsn)):
            if value is not None:
                env[f"LOGOSIM_API_{name}"] = str(value)
        os.environ.update(env)  # the workers build their app from the environment
        settings = ServiceSettings()
        if not settings.api_keys() and host not in LOOPBACK:
            typer.secho(
                f"no API key configured (LOGOSIM_API_KEYS): listening on 127.0.0.1, not {host}",
                fg="yellow",
                err=True,
            )
            host = "127.0.0.1"
        typer.echo(f"logosim api: http://{host}:{port}/ (store {settings.store})", err=True)
        # A fresh interpreter: the CLI has imported every command (torch among them); the
        # serving path needs none of it (~190 MB instead of ~660 MB resident before the index).
        args = ["--factory", "logosim.service.app:create_app", "--host", host, "--port", str(port)]
        args += ["--workers", str(workers), "--log-level", "info"]
        os.execv(sys.executable, [sys.executable, "-m", "uvicorn", *args])
