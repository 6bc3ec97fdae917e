"""Failure reporting: which chunk failed and why, as a markdown artifact and a run log line.

Attach ``report_failure`` to a flow with ``@flow(on_failure=[report_failure])``. When the run
fails it reads the failed task runs of the run and of its subflow runs (chunk tasks are named
``<stage>-chunk-NNNNN``), and writes the report where people look first: the run's Artifacts
tab (key ``failure-report``) and its logs. To be *notified*, pair it with the automation in
``docs/operations.md`` (trigger: a flow run of a ``logosim`` flow enters Failed; action: send
a notification through a Slack/e-mail block), whose message links to this run.
"""

from __future__ import annotations

import re
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType, TaskRun
from prefect.logging.loggers import flow_run_logger
from pydantic import BaseModel

FAILURE_ARTIFACT_KEY = "failure-report"
_CHUNK = re.compile(r"chunk-\d+")
_FAILED = [StateType.FAILED, StateType.CRASHED]


class FailedTask(BaseModel):
    flow_run: str
    task_run: str
    chunk: str | None
    reason: str


def failed_task(flow_run_name: str, task_run: TaskRun) -> FailedTask:
    message = (task_run.state.message if task_run.state else None) or "no message"
    chunk = _CHUNK.search(task_run.name)
    return FailedTask(
        flow_run=flow_run_name,
        task_run=task_run.name,
        chunk=chunk.group(0) if chunk else None,
        reason=message.strip(),
    )


def failure_markdown(
    flow_name: str, flow_run_name: str, state: State, failed: list[FailedTask]
) -> str:
    lines = [
        f"# {flow_name} failed: `{flow_run_name}`",
        "",
        f"**Flow state:** {state.name} — {(state.message or '').strip() or 'no message'}",
        "",
    ]
    if not failed:
        lines.append("No task run failed: the flow itself raised (see the run logs).")
    else:
        lines += [
            f"**{len(failed)} failed task run(s).** Chunks already finished stay cached: "
            "fix the cause and rerun the deployment to redo only these.",
            "",
            "| flow run | task run | chunk | why |",
            "| --- | --- | --- | --- |",
        ]
        for item in failed:
            why = item.reason.replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {item.flow_run} | {item.task_run} | {item.chunk or '–'} | {why} |")
    return "\n".join(lines)


def collect_failed_tasks(client: SyncPrefectClient, flow_run: FlowRun) -> list[FailedTask]:
    """Failed task runs of ``flow_run`` and of its subflow runs (any depth)."""
    found: list[tuple[str, TaskRun]] = []
    subflow_placeholders: set[UUID] = set()  # a subflow shows as a task run in its parent
    frontier: list[FlowRun] = [flow_run]
    seen: set[UUID] = set()
    while frontier:
        runs = {r.id: r for r in frontier if r.id not in seen}
        if not runs:
            break
        seen |= runs.keys()
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(runs))),
            task_run_filter=TaskRunFilter(state=dict(type=TaskRunFilterStateType(any_=_FAILED))),
        )
        found += [(runs[t.flow_run_id].name, t) for t in task_runs if t.flow_run_id in runs]
        frontier = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=list(runs))
            )
        )
        subflow_placeholders |= {r.parent_task_run_id for r in frontier if r.parent_task_run_id}
    return [
        failed_task(run_name, task_run)
        for run_name, task_run in sorted(found, key=lambda item: (item[0], item[1].name))
        if task_run.id not in subflow_placeholders
    ]


def report_failure(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """``on_failure`` hook: write the failure report artifact and log it."""
    logger = flow_run_logger(flow_run, flow)
    with get_client(sync_client=True) as client:
        failed = collect_failed_tasks(client, flow_run)
        markdown = failure_markdown(flow.name, flow_run.name, state, failed)
        client.create_artifact(
            ArtifactCreate(
                key=FAILURE_ARTIFACT_KEY,
                type="markdown",
                data=markdown,
                description=f"Why {flow.name} run {flow_run.name} failed",
                flow_run_id=flow_run.id,
            )
        )
    for item in failed:
        logger.error(f"failed: {item.task_run} ({item.chunk or 'no chunk'}): {item.reason}")
    if not failed:
        logger.error(f"failed without a failed task: {state.message}")
