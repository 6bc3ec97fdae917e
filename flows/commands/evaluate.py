"""``logosim evaluate``: build (or reuse) the index over a source with known groups and
print leave-one-out retrieval quality (also written to DIR/eval/metrics.json)."""

from __future__ import annotations

import typer

from flows.commands._options import (
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    store_path,
)
from flows.commands.build import (
    ChunkOpt,
    DbaAlphaOpt,
    DbaOpt,
    DimsOpt,
    ExactOpt,
    OnnxModelOpt,
    TextMaskOpt,
    WeightsOpt,
    WhitenOpt,
    build_params,
    run_with_progress,
)


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = "group",
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
        """Leave-one-out R@1/@10/@100, mAP, NAR and P@10 (every grouped image is a query)."""
        from flows.evaluate import evaluate_flow

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
        metrics = run_with_progress(total, lambda: evaluate_flow(params))
        test = metrics.pop("test_split", {})
        typer.echo(f"{'':>13}  {'all queries':>11}" + (f"  {'test split':>11}" if test else ""))
        for key, value in metrics.items():
            typer.echo(f"{key:>13}: {_cell(value)}" + (f"  {_cell(test.get(key))}" if test else ""))
        if test:
            typer.echo("(test split: queries the PCA never saw; groups never cross splits)")


def _cell(value: object) -> str:
    return f"{value:>11.4f}" if isinstance(value, float) else f"{value!s:>11}"
