"""The splits flow: metadata → stratified, group-preserving 70/15/15 splits → val/test pairs."""

from __future__ import annotations

from loguru import logger
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel

from flows._chunks import run_chunk_tasks
from logosim.core.settings import get_settings
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.data.splits import SplitsParams, pair_manifests, splits_job
from tasks._prefect import for_store
from tasks.splits import make_splits


class SplitsSummary(BaseModel):
    images: int
    splits: dict[str, int]
    groups: int
    strata: int
    pairs: dict[str, dict[str, int]]
    splits_path: str
    pairs_paths: list[str]


@flow(name="splits", log_prints=True)
def splits_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    params: SplitsParams | None = None,
) -> SplitsSummary:
    source = source or SourceSpec()
    store = store or str(get_settings().store.expanduser().resolve())
    params = params or SplitsParams(seed=get_settings().seed)
    job = splits_job(store, source, params)
    (manifest,) = run_chunk_tasks(make_splits, [job], label="splits")
    manifest = _recompute_if_pairs_lost(manifest, job)
    summary = _summary(ArtifactStore(store), manifest)
    _publish_artifacts(summary)
    return summary


def _recompute_if_pairs_lost(manifest: Manifest, job) -> Manifest:
    """run_chunk_tasks checks splits.parquet; its two pair files are checked here."""
    store = ArtifactStore(job.store)
    if all(store.verify(m) for m in pair_manifests(manifest)):
        return manifest
    logger.warning("splits: a cached pair file is missing or corrupt; recomputing")
    task = for_store(make_splits, store.root).with_options(refresh_cache=True)
    return task(job)


def _summary(store: ArtifactStore, manifest: Manifest) -> SplitsSummary:
    meta = manifest.meta
    return SplitsSummary(
        images=meta["images"],
        splits=meta["splits"],
        groups=meta["groups"],
        strata=meta["strata"],
        pairs=meta["pairs"],
        splits_path=str(store.path(manifest.path)),
        pairs_paths=[str(store.path(m.path)) for m in pair_manifests(manifest)],
    )


def _publish_artifacts(summary: SplitsSummary) -> None:
    rows = [
        {
            "split": split,
            "images": count,
            "similar pairs": summary.pairs.get(split, {}).get("similar", 0),
            "dissimilar pairs": summary.pairs.get(split, {}).get("dissimilar", 0),
        }
        for split, count in summary.splits.items()
    ]
    create_table_artifact(rows, key="splits-summary", description="Train/val/test splits")
    create_markdown_artifact(
        f"# Splits\n- {summary.images:,} images, {summary.groups:,} groups kept whole, "
        f"{summary.strata} strata\n- "
        + ", ".join(f"{k}: {v:,}" for k, v in summary.splits.items())
        + f"\n- `{summary.splits_path}`",
        key="splits-report",
        description="Splits",
    )
