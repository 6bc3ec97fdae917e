"""``logosim export``: the embedding model as one validated ONNX file + JSON report."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.commands._options import (
    BlurOpt,
    Exit,
    ExportPrecisionOpt,
    ImageSizeOpt,
    NormalizeOpt,
    StoreOpt,
    WeightsOpt,
    fail,
    store_path,
)
from logosim.embed.params import DEFAULT_BLUR, DEFAULT_NORMALIZE


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        store: StoreOpt = None,
        precision: ExportPrecisionOpt = "fp32",
        weights: WeightsOpt = "auto",
        image_size: ImageSizeOpt = 224,
        normalize: NormalizeOpt = DEFAULT_NORMALIZE,
        blur: BlurOpt = DEFAULT_BLUR,
        validate_source: Annotated[str, typer.Option(help="Real logos to validate on.")] = "demo",
        validate_images: Annotated[int, typer.Option(min=2)] = 64,
    ) -> None:
        """Backbone + pooling + PCA + L2 in one ONNX file under DIR/export/, checked against
        PyTorch on real logos (fails when any cosine < 0.999)."""
        from flows.export import export_flow
        from logosim.data.sources import SourceSpec
        from logosim.embed.export_params import ExportError, ExportParams

        try:
            params = ExportParams(
                precision=precision,
                weights=weights,
                image_size=image_size,
                normalize=normalize,
                blur=blur,
                validate_source=SourceSpec(path=validate_source),
                validate_images=validate_images,
            )
            model = export_flow(store_path(store), params)
        except ValueError as exc:  # settings refused before any work
            fail(str(exc), Exit.BAD_INPUT, exc)
        except ExportError as exc:  # the exported model did not validate
            fail(str(exc), Exit.FAILED, exc)
        typer.echo(json.dumps(model.meta, indent=1))
        typer.echo(f"model: {model.path}")
