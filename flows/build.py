"""The build flow: source → stats → splits → preprocess → embed → PCA → index.

Every stage is cached on content, so a rerun after success recomputes nothing, a rerun after
a kill recomputes only unfinished chunks, and a missing or corrupt artifact is recomputed.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.embed import embed_flow
from flows.hooks import report_failure
from flows.index import index_flow
from flows.pca import pca_flow
from flows.preprocess import embed_prepare, preprocess_flow
from flows.splits import splits_flow
from flows.stats import stats_flow
from logosim.core.settings import get_settings
from logosim.core.store import Manifest
from logosim.core.store_lock import store_lock
from logosim.data.sources import SourceSpec
from logosim.embed.params import EmbedParams, PrepareSpec
from logosim.embed.pca import PCAParams, describe_health
from logosim.index.params import IndexParams
from logosim.preprocess.stage import PreprocessParams
from logosim.search.composite import CompositeParams


class BuildParams(BaseModel):
    """Everything a build needs; the Prefect UI shows it as one form."""

    source: SourceSpec = Field(default_factory=SourceSpec)
    store: str | None = Field(None, description="Artifact store folder [env LOGOSIM_STORE].")
    chunk_size: int | None = Field(None, ge=1, description="Images per chunk [LOGOSIM_CHUNK_SIZE].")
    embed: EmbedParams = Field(default_factory=EmbedParams)
    pca: PCAParams = Field(default_factory=PCAParams)
    index: IndexParams = Field(default_factory=IndexParams)
    text_mask: bool = Field(
        True,
        description="Mask (inpaint) the words beside a mark before embedding, and queries "
        "the same way at search time (Tesseract; off: images go in as decoded).",
    )
    preprocess: PreprocessParams = Field(
        default_factory=PreprocessParams, description="OCR and inpainting settings (text_mask)."
    )
    rerank: CompositeParams = Field(
        default_factory=CompositeParams,
        description="Stage-2 re-ranking (issue 12) as `evaluate` measures it; search's default.",
    )

    def pca_stage(self) -> PCAParams:
        """The PCA settings in force: off when an exported model already projects."""
        exported = self.embed.exported()
        if exported is not None and exported.has_pca and self.pca.enabled:
            return self.pca.model_copy(update={"enabled": False})
        return self.pca

    def store_root(self) -> str:
        return str(self.store or get_settings().store.expanduser().resolve())


class BuildResult(BaseModel):
    store: str
    images: int
    embedded: int
    embeddings: list[Manifest]
    pca: Manifest
    index: Manifest


def preprocess_spec(params: BuildParams, store: str) -> PrepareSpec | None:
    """The preprocessing stage (text masks → inpainting) plugs in here: it returns the hook
    the embed stage applies to each decoded image. None: images go in as decoded."""
    if not params.text_mask:
        return None
    masks = preprocess_flow(params.source, store, params.preprocess, params.chunk_size)
    return embed_prepare(masks, params.preprocess)


@flow(name="build", log_prints=True, on_failure=[report_failure])
def build_flow(params: BuildParams | None = None) -> BuildResult:
    params = params or BuildParams()
    with store_lock(params.store_root()):  # a second run on this store waits for this one
        return _build(params)


def _build(params: BuildParams) -> BuildResult:
    store, source = params.store_root(), params.source
    stats = stats_flow(source, store)
    splits_flow(source, store)
    prepare = preprocess_spec(params, store)
    embeddings = embed_flow(source, store, params.embed, params.chunk_size, prepare)
    pca_params = params.pca_stage()
    if pca_params is not params.pca:
        print(f"pca: skipped, {params.embed.onnx_model} has the PCA projection inside")
    shipped = params.embed.shipped_projection() if pca_params.projection == "shipped" else None
    pca = pca_flow(store, embeddings, pca_params, str(shipped) if shipped else None)
    meta = {
        "embed": params.embed.model_dump(mode="json"),
        "prepare": prepare.model_dump(mode="json") if prepare else None,
        # Queries are masked with the same settings (logosim.preprocess.query_mask).
        "preprocess": params.preprocess.model_dump(mode="json") if prepare else None,
        "source": source.model_dump(mode="json"),
    }
    index = index_flow(store, embeddings, pca if pca_params.enabled else None, params.index, meta)
    result = BuildResult(
        store=store,
        images=stats.images,
        embedded=sum(m.rows for m in embeddings),
        embeddings=embeddings,
        pca=pca,
        index=index,
    )
    _publish_summary(result)
    return result


def pca_line(meta: dict, rows: int) -> str:
    if "dims" not in meta:
        return "- PCA: none (the exported model projects inside, or PCA is off)"
    health = describe_health(meta.get("health"))
    if meta.get("projection", "collection") != "collection":
        return (
            f"- PCA: the weights' learned whitening `{meta['projection']}`, "
            f"{meta['dims']} dims (nothing fitted on this collection); {health}"
        )
    return (
        f"- PCA: {meta['dims']} dims from {rows:,} train embeddings, "
        f"shrinkage {meta.get('shrinkage', 0):.3f}; {health}"
    )


def summary_lines(result: BuildResult) -> list[str]:
    meta = result.index.meta
    recall = ", ".join(f"{k} {v:.3f}" for k, v in meta.get("recall_vs_exact", {}).items())
    return [
        f"# Build: {result.store}",
        f"- images: **{result.images:,}**, embedded: **{result.embedded:,}** "
        f"({result.images - result.embedded:,} skipped; see errors.jsonl)",
        f"- embedding chunks: {len(result.embeddings)}",
        pca_line(result.pca.meta, result.pca.rows),
        f"- index: {meta.get('type')} over {result.index.rows:,} vectors × {meta.get('dim')} dims"
        + (f"; recall vs exact: {recall}" if recall else ""),
        f"- index file: `{result.index.path}` (sha256 {result.index.sha256[:12]}…)",
    ]


def _publish_summary(result: BuildResult) -> None:
    lines = summary_lines(result)
    create_markdown_artifact("\n".join(lines), key="build-summary", description="Build summary")
    print("\n".join(lines))
