"""``logosim preprocess``: text masks for a source, or a preview grid of what they do."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._options import (
    ChunkOpt,
    FormatOpt,
    GroupOpt,
    SourceOpt,
    StoreOpt,
    checked_spec,
    image_progress,
    store_path,
    warn,
)

PreviewOpt = Annotated[
    int, typer.Option("--preview", min=0, help="Only draw a grid for the first N images.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Where the preview grid PNG goes.")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="OCR processes; 0 = per core.")]
PrefilterOpt = Annotated[
    bool, typer.Option("--prefilter/--no-prefilter", help="Skip images with no text strokes.")
]
LineFallbackOpt = Annotated[
    bool,
    typer.Option(
        "--line-fallback/--no-line-fallback",
        help="Where the page layout reads no word, read each letter row alone (a word beside "
        "a large icon).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("preprocess")
    def preprocess(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = None,
        preview: PreviewOpt = 0,
        out: OutOpt = Path("preprocess_preview.png"),
        chunk_size: ChunkOpt = None,
        workers: WorkersOpt = 0,
        prefilter: PrefilterOpt = True,
        line_fallback: LineFallbackOpt = True,
    ) -> None:
        """Detect text (Tesseract) and store run-length text masks per chunk, for embedding
        to inpaint on the fly. With --preview N, draw original / boxes / masked instead."""
        from logosim.preprocess.ocr import OcrParams
        from logosim.preprocess.stage import PreprocessParams

        spec, total = checked_spec(source, fmt, group_column)
        ocr = OcrParams(prefilter=prefilter, line_fallback=line_fallback)
        params = PreprocessParams(workers=workers, ocr=ocr)
        if preview:
            _preview(spec, params, preview, out)
            return
        _run(spec, store_path(store), params, chunk_size, total)


def _preview(spec, params, count: int, out: Path) -> None:
    from logosim.data.sources import open_source
    from logosim.preprocess.ocr import tesseract_available
    from logosim.report.preview import preview_grid

    if not tesseract_available():
        warn("warning: tesseract not found: no boxes will be drawn")
    from tqdm import tqdm

    records = itertools.islice(open_source(spec).records(0, count), count)
    grid = preview_grid(tqdm(records, total=count, unit="img", desc="preview"), params)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    typer.echo(f"preview: {out} ({count} rows: original | boxes | masked)")


def _run(spec, store: str, params, chunk_size: int | None, total: int) -> None:
    from flows.preprocess import preprocess_flow
    from logosim.preprocess.stage import ERRORS_FILE, progress_hook

    with image_progress(total, "preprocess", progress_hook):
        manifests = preprocess_flow(spec, store, params, chunk_size)
    flags: dict[str, int] = {}
    for manifest in manifests:
        for name, n in manifest.meta.get("flags", {}).items():
            flags[name] = flags.get(name, 0) + n
    typer.echo("masks:   " + ", ".join(f"{k}: {v:,}" for k, v in flags.items() if v))
    typer.echo(f"chunks:  {len(manifests)} in {store}/masks")
    typer.echo(f"errors:  {Path(store) / ERRORS_FILE}")
