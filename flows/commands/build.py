"""``logosim build``: stats → splits → embed → PCA → index, with a progress bar over images."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Annotated, Any

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
from logosim.sources import SourceError, SourceSpec, open_source

ChunkOpt = Annotated[int | None, typer.Option(min=1, help="Images per chunk (default 2048).")]
DimsOpt = Annotated[int, typer.Option("--pca-dims", min=0, help="PCA output dims; 0 = no PCA.")]
WhitenOpt = Annotated[bool, typer.Option("--whiten/--no-whiten", help="Whiten PCA components.")]
ExactOpt = Annotated[
    int, typer.Option("--exact-below", min=0, help="Exact search below this many images.")
]
TextMaskOpt = Annotated[
    bool,
    typer.Option("--text-mask/--no-text-mask", help="OCR text and inpaint it before embedding."),
]


def build_params(
    spec: SourceSpec,
    store: str,
    chunk_size: int | None,
    pca_dims: int,
    whiten: bool,
    exact: int,
    text_mask: bool = False,
) -> Any:
    from flows.build import BuildParams
    from logosim.index import IndexParams
    from logosim.pca import PCAParams

    pca = PCAParams(enabled=pca_dims > 0, dims=max(pca_dims, 1), whiten=whiten)
    return BuildParams(
        source=spec,
        store=store,
        chunk_size=chunk_size,
        pca=pca,
        index=IndexParams(exact_below=exact),
        text_mask=text_mask,
    )


def checked_spec(source: str, fmt: Any, group_column: str | None) -> tuple[SourceSpec, int]:
    spec = source_spec(source, fmt, group_column)
    try:
        return spec, len(open_source(spec))
    except SourceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


@contextmanager
def embedding_progress(total: int) -> Any:
    """A tqdm bar fed by the embed stage (the slow one); cached chunks fill it at the end."""
    from logosim.embed import progress_hook

    lock = threading.Lock()
    with tqdm(total=total, unit="img", desc="embed", dynamic_ncols=True) as bar:

        def advance(n: int) -> None:
            with lock:
                bar.update(n)

        with progress_hook(advance):
            yield
        bar.update(bar.total - bar.n)


def run_with_progress(total: int, run: Callable[[], Any]) -> Any:
    with embedding_progress(total):
        return run()


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        chunk_size: ChunkOpt = None,
        pca_dims: DimsOpt = 512,
        whiten: WhitenOpt = True,
        exact_below: ExactOpt = 50_000,
        text_mask: TextMaskOpt = False,
    ) -> None:
        """Build the searchable index of a source (cached: a rerun recomputes only what changed)."""
        from flows.build import build_flow

        spec, total = checked_spec(source, fmt, group_column)
        params = build_params(
            spec, store_path(store), chunk_size, pca_dims, whiten, exact_below, text_mask
        )
        run_with_progress(total, lambda: build_flow(params))
