"""``logosim train``: contrastive fine-tuning with a progress bar; resumes by itself."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._options import (
    BlurOpt,
    Exit,
    FormatOpt,
    GroupOpt,
    ImageSizeOpt,
    SourceOpt,
    StoreOpt,
    TrainPrecisionOpt,
    fail,
    source_spec,
    store_path,
)
from logosim.embed.params import NormalizeMode
from logosim.train.params import Loss


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        epochs: Annotated[int, typer.Option(min=1, help="Epochs (seed: 100).")] = 100,
        max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after N steps.")] = None,
        batch_size: Annotated[int, typer.Option(min=2)] = 64,
        lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
        image_size: ImageSizeOpt = 224,
        queue_size: Annotated[int, typer.Option(min=0, help="0 = queue-free MoCo v3.")] = 65_536,
        freeze_stages: Annotated[int, typer.Option(min=0, max=7)] = 0,
        precision: TrainPrecisionOpt = "auto",
        max_images: Annotated[int | None, typer.Option(min=2)] = None,
        checkpoint_every: Annotated[int, typer.Option(min=0, help="Steps; 0 = per epoch.")] = 0,
        group_positives: Annotated[bool, typer.Option(help="Same group = positive.")] = False,
        vienna_positives: Annotated[
            bool, typer.Option(help="Same Vienna code = positive.")
        ] = False,
        use_groups: Annotated[bool, typer.Option(help="Use group labels at all.")] = True,
        loss: Annotated[
            Loss,
            typer.Option(help="moco, or supcon: same-group images are positives, not negatives."),
        ] = "moco",
        normalize: Annotated[
            NormalizeMode,
            typer.Option(help="Training image geometry: pad, trim, trim_small or crop."),
        ] = "pad",
        seed: Annotated[int, typer.Option(help="Seed of the run.")] = 0,
        blur: BlurOpt = 0.0,
    ) -> None:
        """Fine-tune the backbone (MoCo, symmetric InfoNCE) and keep the best model in
        DIR/train/best.pt. Checkpoints go to DIR/train/checkpoints; rerun to resume.
        Ctrl-C saves a checkpoint at the end of the current step."""
        from flows.train import train_flow
        from logosim.train.params import TrainParams

        try:
            params = TrainParams(
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                lr=lr,
                image_size=image_size,
                queue_size=queue_size,
                freeze_stages=freeze_stages,
                precision=precision,
                max_images=max_images,
                checkpoint_every_steps=checkpoint_every,
                group_positives=group_positives,
                vienna_positives=vienna_positives,
                use_groups=use_groups,
                loss=loss,
                normalize=normalize,
                blur=blur,
                seed=seed,
            )
            model = train_flow(source_spec(source, fmt, group_column), store_path(store), params)
        except ValueError as exc:
            fail(str(exc), Exit.BAD_INPUT, exc)
        run = model.meta["run"]
        typer.echo(f"status:     {run['status']} (step {run['step']}, epoch {run['epoch']})")
        typer.echo(f"best score: {run['best_score']:.4f}")
        typer.echo(f"model:      {model.path}")
