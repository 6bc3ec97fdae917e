"""The extract flow (``logosim fetch-logos``): website logos for a list of domains.

domain list → chunks of ~256 → extract each (cached) → one Parquet.

Chunks run one at a time, each on its own asyncio loop with ``concurrency`` connections, so
the global and per-host connection limits hold exactly. The output is a valid ``--source``
for build, cluster and evaluate; failed domains are rows with a reason, and errors.jsonl.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows._chunks import run_chunk_tasks
from logosim.core.settings import get_settings
from logosim.web.extract import ExtractSettings
from logosim.web.stage import DEFAULT_CHUNK, ExtractSummary, plan_jobs, read_domains
from tasks.extract import extract_chunk_task, publish_logos_task


@flow(name="extract", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def extract_flow(
    domains: str,
    store: str | None = None,
    out: str | None = None,
    settings: ExtractSettings | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> ExtractSummary:
    store = store or str(get_settings().store.expanduser().resolve())
    settings = settings or ExtractSettings()
    jobs = plan_jobs(store, read_domains(domains), settings, chunk_size)
    manifests = run_chunk_tasks(extract_chunk_task, jobs, label="extract")
    summary = publish_logos_task(store, manifests, out)
    _publish_artifacts(summary)
    return summary


def _publish_artifacts(summary: ExtractSummary) -> None:
    rows = [
        {"figure": "domains", "value": summary.domains},
        {"figure": "ok", "value": summary.ok},
        {"figure": "failed", "value": summary.failed},
        *({"figure": f"source: {k}", "value": v} for k, v in summary.by_source.items()),
        *({"figure": f"failed: {k}", "value": v} for k, v in summary.by_reason.items()),
    ]
    create_table_artifact(rows, key="extract-summary", description="Logo extraction")
    share = summary.ok / summary.domains if summary.domains else 0.0
    create_markdown_artifact(
        f"# Logos\n- **{summary.ok:,}** of {summary.domains:,} domains ({share:.0%})\n"
        f"- output: `{summary.out}` (a `--source` for build)\n- errors: `{summary.errors_path}`",
        key="extract-report",
        description="Logo extraction",
    )
