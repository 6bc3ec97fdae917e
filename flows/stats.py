"""The stats flow: plan checkpoint chunks → stats per chunk (cached) → merge and publish.

A killed run resumes from its last finished chunk: each chunk's stats are a cached task
keyed on the chunk's content digest and the stats version, persisted in the store.
"""

from __future__ import annotations

import os

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows._chunks import run_chunk_tasks
from logosim.core.settings import get_settings
from logosim.data.chunks import plan_chunks
from logosim.data.sources import SourceSpec, open_source
from logosim.data.stats import StatsParams, StatsSummary, stats_job
from tasks.stats import publish_stats, stats_chunk

# A few chunks at a time (decoding releases the GIL): checkpoints then finish one after the
# other, so a kill loses little; Prefect's default would start every chunk at once.
STATS_WORKERS = min(4, os.cpu_count() or 1)


@flow(name="stats", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=STATS_WORKERS))
def stats_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    params: StatsParams | None = None,
) -> StatsSummary:
    source = source or SourceSpec()
    store = store or str(get_settings().store.expanduser().resolve())
    params = params or default_params()
    chunks = plan_chunks(open_source(source), params.checkpoint_every)
    jobs = [stats_job(store, source, chunk, params) for chunk in chunks]
    manifests = run_chunk_tasks(stats_chunk, jobs, label="stats")
    summary, report = publish_stats(store, source, manifests)
    _publish_artifacts(summary, report)
    return summary


def default_params(checkpoint_every: int | None = None) -> StatsParams:
    settings = get_settings()
    return StatsParams(
        checkpoint_every=checkpoint_every or settings.stats_checkpoint_every,
        max_image_pixels=settings.max_image_pixels,
        max_image_bytes=settings.max_image_bytes,
    )


def _publish_artifacts(summary: StatsSummary, report: dict) -> None:
    rows = [
        {"figure": "images", "value": summary.images},
        {"figure": "decoded", "value": summary.decoded},
        {"figure": "corrupt", "value": summary.corrupt},
        {"figure": "with text (share)", "value": round(report["with_text_share"], 4)},
        {"figure": "groups", "value": report["group_count"]},
        *({"figure": f"colour: {k}", "value": v} for k, v in report["colour"].items()),
        *({"figure": f"transparency: {k}", "value": v} for k, v in report["transparency"].items()),
        *({"figure": f"corrupt: {k}", "value": v} for k, v in summary.corrupt_by_reason.items()),
    ]
    create_table_artifact(rows, key="stats-summary", description="Dataset statistics")
    top = list(report["vienna_top"].items())[:10]
    lines = [
        f"# Dataset statistics: {report['source']}",
        f"- **{summary.images:,}** images, **{summary.corrupt:,}** unusable "
        f"({', '.join(f'{k}: {v}' for k, v in summary.corrupt_by_reason.items()) or 'none'})",
        f"- mean size {_fmt(report['width_mean'])} × {_fmt(report['height_mean'])} px",
        f"- with text: {report['with_text_share']:.1%}; groups: {report['group_count']:,}",
        f"- top Vienna categories: {', '.join(f'{k} ({v})' for k, v in top) or 'none'}",
        f"- full figures: `{summary.stats_path}`; errors: `{summary.errors_path}`",
    ]
    create_markdown_artifact("\n".join(lines), key="stats-report", description="Dataset stats")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"
