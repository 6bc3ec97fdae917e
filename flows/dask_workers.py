"""Dask workers record their chunk task runs on the flow's Prefect server (issue 18).

prefect-dask sends every task the flow's settings, so a worker talks to the server those
settings name, whatever its own ``PREFECT_API_URL`` says. A command run without
``PREFECT_API_URL`` works on a temporary server that its settings do not name: each worker
then started a temporary server of its own and recorded the chunks there (the flow's UI
showed them as never run). So when the runner starts, before any chunk is submitted, it
(1) names the flow's server in the settings the tasks carry and (2) has every worker reach
that server, refusing with the workers and the reason when one cannot.
"""

from __future__ import annotations

from contextlib import ExitStack

import distributed
import httpx
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

PROBE_TIMEOUT_S = 10.0


class WorkersCannotReport(RuntimeError):
    """A Dask worker cannot reach the flow's Prefect server; no chunk has run."""


def reach_prefect(api_url: str) -> str | None:
    """On a worker: None when ``api_url`` answers its health check, else the reason.

    Plain httpx with the environment's proxies, as Prefect's own client uses.
    """
    try:
        response = httpx.get(api_url.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_workers_reach(client: distributed.Client, api_url: str) -> int:
    """Raise ``WorkersCannotReport`` unless every worker reaches ``api_url``; the count."""
    try:
        answers: dict[str, str | None] = client.run(reach_prefect, api_url)
    except Exception as exc:  # e.g. a worker without logosim installed cannot unpickle it
        raise WorkersCannotReport(
            f"could not check the Dask workers ({type(exc).__name__}: {exc}); they need "
            "logosim installed and must reach the flow's Prefect server"
        ) from exc
    if not answers:
        raise WorkersCannotReport("the Dask cluster has no workers")
    failing = {worker: reason for worker, reason in answers.items() if reason}
    if failing:
        listed = "; ".join(f"{worker}: {reason}" for worker, reason in sorted(failing.items()))
        raise WorkersCannotReport(
            f"{len(failing)} of {len(answers)} Dask workers cannot reach the flow's Prefect "
            f"server {api_url} ({listed}); their chunk task runs would be recorded elsewhere. "
            "Run the command with PREFECT_API_URL set to a server every worker reaches "
            "(`prefect server start --host 0.0.0.0`), see docs/operations.md section 7"
        )
    return len(answers)


def _inside_dask_worker() -> bool:
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


class ReportingDaskTaskRunner(DaskTaskRunner):
    """``DaskTaskRunner`` whose workers report to the flow's Prefect server, or that refuses."""

    def __enter__(self) -> ReportingDaskTaskRunner:
        super().__enter__()
        # prefect-dask enters a copy of the flow's runner on the worker around each task:
        # the check belongs to the flow's process only.
        if _inside_dask_worker():
            return self
        with ExitStack() as undo:
            undo.push(super().__exit__)
            api_url = str(get_client(sync_client=True).api_url)
            if not PREFECT_API_URL.value():  # a temporary server: name it for the tasks
                self._exit_stack.enter_context(temporary_settings({PREFECT_API_URL: api_url}))
            count = check_workers_reach(self.client, api_url)
            self.logger.info(f"{count} Dask workers report to the Prefect server at {api_url}")
            undo.pop_all()
        return self
