"""``logosim fetch-logos`` (alias ``extract``): a domain list → a Parquet of website logos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.commands._options import StoreOpt, store_path

DomainsOpt = Annotated[
    Path,
    typer.Option(
        "--domains",
        help="Parquet or CSV with a 'domain' (example.com) or 'url' column, or a text file.",
    ),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Output Parquet [default: <store>/logos.parquet].")
]


def register(app: typer.Typer) -> None:
    def fetch_logos(
        domains: DomainsOpt,
        store: StoreOpt = None,
        out: OutOpt = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Connections, all hosts.")] = 64,
        per_host: Annotated[int, typer.Option(min=1, help="Connections to one host.")] = 2,
        timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request.")] = 20.0,
        no_robots: Annotated[bool, typer.Option("--no-robots", help="Ignore robots.txt.")] = False,
        allow_private: Annotated[
            bool,
            typer.Option("--allow-private", help="Allow loopback/private/link-local addresses."),
        ] = False,
        chunk_size: Annotated[int, typer.Option(min=1, help="Domains per cached chunk.")] = 256,
    ) -> None:
        """Find each site's logo (and best icon): JSON-LD, itemprop, og:logo, header and
        root-link images, inline SVG, CSS backgrounds, then icons; one row per domain with
        status ok/failed and a reason. The output is a valid --source for build.

        Polite and safe: robots.txt, a named User-Agent, per-host limits, capped bodies,
        no requests to non-public addresses. A rerun skips finished chunks and retries only
        timeouts and connection errors.
        """
        from tqdm import tqdm

        from flows.extract import extract_flow
        from logosim.web.extract import ExtractSettings, progress_hook
        from logosim.web.fetch import FetchSettings
        from logosim.web.stage import DomainListError, read_domains

        try:
            total = len(read_domains(domains))
        except DomainListError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        fetch = FetchSettings(
            concurrency=concurrency,
            per_host=per_host,
            timeout=timeout,
            obey_robots=not no_robots,
            allow_private=allow_private,
        )
        settings = ExtractSettings(fetch=fetch, domain_timeout=max(60.0, 3 * timeout))
        with tqdm(total=total, unit="domain", desc="fetch-logos", dynamic_ncols=True) as bar:
            with progress_hook(bar.update):
                summary = extract_flow(
                    str(domains),
                    store_path(store),
                    str(out.expanduser().resolve()) if out else None,
                    settings,
                    chunk_size,
                )
            bar.update(bar.total - bar.n)  # chunks from the cache never report
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.by_reason.items())
        sources = ", ".join(f"{k}: {v}" for k, v in summary.by_source.items())
        typer.echo(f"domains: {summary.domains:,}")
        typer.echo(f"ok:      {summary.ok:,}" + (f" ({sources})" if sources else ""))
        typer.echo(f"failed:  {summary.failed:,}" + (f" ({reasons})" if reasons else ""))
        typer.echo(f"logos:   {summary.out}")
        if summary.failed:
            typer.echo(f"errors:  {summary.errors_path}")

    app.command("fetch-logos")(fetch_logos)
    app.command("extract", hidden=True)(fetch_logos)
