"""``logosim embed``: embed every image of a source into chunk files, with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._options import (
    BlurOpt,
    ChunkOpt,
    FormatOpt,
    GroupOpt,
    ImageSizeOpt,
    NormalizeOpt,
    OnnxModelOpt,
    SourceOpt,
    StoreOpt,
    WeightsOpt,
    checked_spec,
    image_progress,
    store_path,
)
from logosim.embed.params import (
    DEFAULT_BLUR,
    DEFAULT_MODEL,
    DEFAULT_NORMALIZE,
    DEFAULT_WEIGHTS,
    DeviceName,
    Pooling,
    RuntimeName,
)


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        model: Annotated[str, typer.Option(help="timm model name.")] = DEFAULT_MODEL,
        weights: WeightsOpt = DEFAULT_WEIGHTS,
        pooling: Annotated[Pooling, typer.Option(help="gem or avg.")] = "gem",
        image_size: ImageSizeOpt = 224,
        normalize: NormalizeOpt = DEFAULT_NORMALIZE,
        blur: BlurOpt = DEFAULT_BLUR,
        batch_size: Annotated[
            int, typer.Option(min=0, help="0 = auto (16 CPU, 128 CUDA); halved on OOM.")
        ] = 0,
        device: Annotated[DeviceName, typer.Option()] = "auto",
        runtime: Annotated[RuntimeName, typer.Option()] = "auto",
        workers: Annotated[int, typer.Option(min=0, help="Decode threads (0 = cores).")] = 0,
        chunk_size: ChunkOpt = None,
        onnx_model: OnnxModelOpt = None,
    ) -> None:
        """Embed a source into DIR/embeddings/*.npz (cached per chunk: a rerun skips done chunks)."""
        from flows.embed import embed_flow
        from logosim.embed.embedder import progress_hook
        from logosim.embed.params import EmbedParams

        spec, total = checked_spec(source, fmt, group_column)
        params = EmbedParams(
            model=model,
            weights=weights,
            pooling=pooling,
            image_size=image_size,
            normalize=normalize,
            blur=blur,
            batch_size=batch_size,
            device=device,
            runtime=runtime,
            workers=workers,
            onnx_model=str(onnx_model) if onnx_model else None,
        )
        with image_progress(total, "embed", progress_hook):
            manifests = embed_flow(spec, store_path(store), params, chunk_size)
        images = sum(m.rows for m in manifests)
        skipped = sum(int(m.meta.get("errors", 0)) for m in manifests)
        typer.echo(f"chunks:   {len(manifests)}")
        typer.echo(f"embedded: {images:,}" + (f" (skipped {skipped:,})" if skipped else ""))
        typer.echo(f"store:    {store_path(store)}/embeddings")
