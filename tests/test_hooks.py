"""The failure hook reports which chunk failed and why; injected faults fire once and retry."""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.hooks import FAILURE_ARTIFACT_KEY, report_failure
from logosim.core.faults import FAULT_ENV, InjectedFault, arm_fault, raise_fault_once
from tasks._prefect import transient_io


@task
def chunk_work(index: int, bad: int) -> int:
    if index == bad:
        raise ValueError(f"image table of chunk {index} is unreadable")
    return index


@flow(name="hook-child")
def child_flow(bad: int) -> list[int]:
    futures = [
        chunk_work.with_options(task_run_name=f"embed-chunk-{i:05d}").submit(i, bad)
        for i in range(3)
    ]
    return [f.result() for f in futures]


@flow(name="hook-parent", on_failure=[report_failure])
def parent_flow(bad: int) -> list[int]:
    return child_flow(bad)


def _failure_reports(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[FAILURE_ARTIFACT_KEY]))
        )
    return [a.data for a in artifacts if a.flow_run_id == flow_run_id]


def test_failure_report_names_the_failed_chunk_of_a_subflow(prefect_server):
    state = parent_flow(bad=1, return_state=True)
    assert state.is_failed()
    reports = _failure_reports(state.state_details.flow_run_id)
    assert len(reports) == 1
    report = reports[0]
    assert "embed-chunk-00001" in report
    assert "chunk-00001" in report and "unreadable" in report
    # Finished chunks and the subflow's placeholder task run are not reported as failures.
    assert "embed-chunk-00000" not in report and "embed-chunk-00002" not in report
    rows = [line for line in report.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 1  # the chunk, not the subflow's placeholder task run


def test_successful_run_writes_no_failure_report(prefect_server):
    state = parent_flow(bad=-1, return_state=True)
    assert state.is_completed()
    assert _failure_reports(state.state_details.flow_run_id) == []


def test_fault_fires_once_for_its_site(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, str(tmp_path / "fault"))
    raise_fault_once("embed:chunk-00000")  # not armed: nothing happens
    arm_fault(tmp_path / "fault", "embed")
    raise_fault_once("stats:chunk-00000")  # other site: still armed
    with pytest.raises(InjectedFault) as info:
        raise_fault_once("embed:chunk-00003")
    assert isinstance(info.value, OSError) and "embed:chunk-00003" in str(info.value)
    raise_fault_once("embed:chunk-00003")  # disarmed
    assert not (tmp_path / "fault").exists()


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=transient_io)
def flaky_chunk() -> str:
    raise_fault_once("embed:chunk-00000")
    return "done"


@flow(name="fault-retry")
def fault_retry_flow() -> str:
    return flaky_chunk()


def test_injected_fault_is_retried_and_the_run_completes(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, str(arm_fault(tmp_path / "fault", "embed")))
    state = fault_retry_flow(return_state=True)
    assert state.is_completed() and state.result() == "done"
    with get_client(sync_client=True) as client:
        (task_run,) = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert task_run.run_count == 2  # failed once with the injected OSError, then succeeded


def test_failure_automation_file_creates_an_automation(prefect_server, tmp_path):
    """deployments/automations.yaml, with a real notification block, is accepted as is."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.blocks.notifications import SlackWebhook
    from prefect.settings import PREFECT_API_URL

    repo = Path(__file__).resolve().parents[1]
    block_id = SlackWebhook(url="https://hooks.slack.com/services/T0/B0/x").save(
        "logosim-failures", overwrite=True
    )
    text = (repo / "deployments" / "automations.yaml").read_text()
    automations = tmp_path / "automations.yaml"
    automations.write_text(text.replace("NOTIFY_BLOCK_ID", str(block_id)))
    prefect = str(Path(sys.executable).with_name("prefect"))
    done = subprocess.run(
        [prefect, "--no-prompt", "automation", "create", "--from-file", str(automations)],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with get_client(sync_client=True) as client:
        (automation,) = client.read_automations_by_name("logosim-run-failed")
    assert "prefect.flow-run.Failed" in automation.trigger.expect
    assert str(automation.actions[0].block_document_id) == str(block_id)
