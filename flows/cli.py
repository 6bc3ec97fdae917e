"""The ``logosim`` command line: one command per pipeline stage, each running its flow.

Flows run against ``PREFECT_API_URL`` when set (a real server), else on a temporary local
Prefect server that starts with the command. Commands live in ``flows/commands/``.
"""

from __future__ import annotations

import os

import typer

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from flows.commands import register_all

app = typer.Typer(
    help="Find visually similar logos and trademarks at register scale.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
register_all(app)


def main() -> None:
    if os.environ.get("LOGOSIM_LIFELINE", "1") != "0":
        from logosim.core.lifeline import start_lifeline

        start_lifeline()  # the temporary Prefect server and worker pools die with us
    app()


if __name__ == "__main__":
    main()
