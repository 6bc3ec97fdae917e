"""End to end against a real Prefect server, the way the UI drives it.

Starts ``prefect server start`` (SQLite, loopback, temporary PREFECT_HOME) and a serve
process for the build deployment, presses "Run" through the API (``run_deployment``, what the
UI's Run button calls), and checks: the run completes although one embed chunk fails once
with an injected transient I/O error (it is retried); a second run finds every chunk Cached.
Every process it starts is stopped by process group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from logosim.core.faults import FAULT_ENV, arm_fault

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # the child keeps its own handle
        return subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process and everything it started (its own session/process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _wait_for(check, what: str, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


@pytest.fixture(scope="module")
def demo60(demo_subset) -> Path:
    """40 grouped demo logos (so splits has pairs) + 20 distractors."""
    return demo_subset(40, 20)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[dict]:
    """A real server and a serve process for build/default; yields their settings."""
    work = tmp_path_factory.mktemp("e2e")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "logosim",
        FAULT_ENV: str(work / "fault-once"),
    }
    env.pop("PREFECT_PROFILES_PATH", None)
    server_log, serve_log = work / "server.log", work / "serve.log"
    procs = [
        _start(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            server_log,
        )
    ]
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, "the Prefect server", 120, [server_log])
        procs.append(_start([sys.executable, "-m", "deployments.serve", "build"], env, serve_log))

        def deployed() -> bool:
            response = httpx.get(f"{api}/deployments/name/build/default", timeout=2)
            return response.status_code == 200

        _wait_for(deployed, "the build/default deployment", 120, [serve_log])
        yield {"api": api, "fault": work / "fault-once", "logs": [server_log, serve_log]}
    finally:
        for proc in reversed(procs):
            _stop(proc)


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
