"""End to end against a real Prefect server, the way the UI drives it.

Starts ``prefect server start`` (SQLite, loopback, temporary PREFECT_HOME) and a serve
process for the build deployment, presses "Run" through the API (``run_deployment``, what the
UI's Run button calls), and checks: the run completes although one embed chunk fails once
with an injected transient I/O error (it is retried); a second run finds every chunk Cached.
Every process it starts is stopped by process group.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from processes import prefect_server, start, stop, wait_for

from logosim.core.faults import FAULT_ENV, arm_fault

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def demo60(demo_subset) -> Path:
    """40 grouped demo logos (so splits has pairs) + 20 distractors."""
    return demo_subset(40, 20)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[dict]:
    """A real server and a serve process for build/default; yields their settings."""
    work = tmp_path_factory.mktemp("e2e")
    with prefect_server(work, {FAULT_ENV: str(work / "fault-once")}) as env:
        serve_log = work / "serve.log"
        serve = start([sys.executable, "-m", "deployments.serve", "build"], env, serve_log)
        try:

            def deployed() -> bool:
                response = httpx.get(f"{env['PREFECT_API_URL']}/deployments/name/build/default")
                return response.status_code == 200

            wait_for(deployed, "the build/default deployment", 120, [serve_log])
            yield {
                "api": env["PREFECT_API_URL"],
                "fault": work / "fault-once",
                "logs": [work / "server.log", serve_log],
            }
        finally:
            stop(serve)


def _task_runs(flow_run_id: UUID) -> list:
    """Task runs of a flow run and of all its subflow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    runs, frontier = [], [flow_run_id]
    with get_client(sync_client=True) as client:
        while frontier:
            runs += client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=frontier))
            )
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)
                )
            )
            frontier = [c.id for c in children]
    return runs


def _chunk_runs(runs: list) -> dict[str, object]:
    return {r.name: r for r in runs if "-chunk-" in r.name}


@pytest.mark.slow  # ~30 s on 2 cores (pytest --durations)
def test_build_deployment_runs_retries_and_caches(served, demo60, tmp_path):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    parameters = {
        "params": {
            "source": {"path": str(demo60)},
            "store": str(tmp_path / "store"),
            "chunk_size": 20,
            "pca": {"dims": 16},
            "embed": {"runtime": "eager", "batch_size": 16},
        }
    }
    arm_fault(served["fault"], "embed")  # the first embed chunk raises OSError once
    with temporary_settings({PREFECT_API_URL: served["api"]}):
        first = run_deployment(name="build/default", parameters=parameters, timeout=240)
        assert first.state.is_completed(), (first.state, served["logs"][1].read_text()[-4000:])
        assert not served["fault"].exists()  # the fault fired
        chunks = _chunk_runs(_task_runs(first.id))
        embeds = {n: r for n, r in chunks.items() if n.startswith("embed-")}
        assert len(embeds) == 3, sorted(chunks)
        retried = [n for n, r in embeds.items() if r.run_count == 2]
        assert len(retried) == 1, {n: r.run_count for n, r in embeds.items()}
        assert all(r.state.is_completed() for r in chunks.values())

        second = run_deployment(name="build/default", parameters=parameters, timeout=240)
        assert second.state.is_completed()
        again = _chunk_runs(_task_runs(second.id))
        assert again.keys() == chunks.keys()
        assert {n: r.state.name for n, r in again.items()} == {n: "Cached" for n in again}
