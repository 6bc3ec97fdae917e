"""A real Dask cluster (``dask scheduler`` + ``dask worker`` on 127.0.0.1): chunk task runs are
recorded on the flow's Prefect server, whatever the worker's own PREFECT_API_URL says, and a
worker that cannot reach that server makes the command refuse before any chunk runs
(issue 18). One cluster serves the three cases, in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from processes import REPO, free_port, prefect_server, start, stop, wait_for

pytest.importorskip("prefect_dask")
pytestmark = pytest.mark.slow  # ~60 s: a Prefect server, a Dask cluster, three CLI runs

DASK = str(Path(sys.executable).with_name("dask"))
WRONG_SERVER = "http://127.0.0.1:9/api"  # nothing listens on the discard port
# A nanny's worker process is daemonic by default, and a daemonic process cannot start the
# OCR pool's processes (docs/operations.md section 7).
NOT_DAEMONIC = {"DASK_DISTRIBUTED__WORKER__DAEMON": "False"}


def _env(**extra: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOGOSIM_LIFELINE": "0"}
    env.pop("PREFECT_API_URL", None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _workers(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def _preprocess(source: Path, store: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "flows.cli", "preprocess", "--source", str(source)]
    command += ["--store", str(store), "--chunk-size", "4", "--no-prefilter"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def _chunk_runs(api: str) -> list[dict]:
    response = httpx.post(f"{api}/task_runs/filter", json={"limit": 200}, timeout=10)
    response.raise_for_status()
    return [run for run in response.json() if run["name"].startswith("preprocess")]


def test_workers_report_to_the_flows_server_or_the_command_refuses(demo_subset, tmp_path):
    source = demo_subset(8, 4)  # 12 logos: 3 chunks of 4
    address = f"tcp://127.0.0.1:{free_port()}"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker.log", tmp_path / "bad-worker.log"]
    # The scheduler unpickles the task graph, so it needs logosim's code as the workers do.
    cluster = [start([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                      "--no-dashboard"], _env(), logs[0])]  # fmt: skip
    try:
        wait_for(lambda: logs[0].exists() and "Scheduler at" in logs[0].read_text(),
                 "the Dask scheduler", 60, logs)  # fmt: skip
        worker = [DASK, "worker", address, "--nthreads", "1", "--no-dashboard"]
        cluster.append(start(worker, _env(PREFECT_API_URL=WRONG_SERVER, **NOT_DAEMONIC), logs[1]))
        wait_for(lambda: _workers(address) == 1, "the Dask worker", 60, logs)

        # 1. The command has a real server: the worker, told another one, reports there.
        with prefect_server(tmp_path) as server_env:
            api = server_env["PREFECT_API_URL"]
            env = _env(PREFECT_API_URL=api, PREFECT_HOME=server_env["PREFECT_HOME"],
                       LOGOSIM_TASK_RUNNER="dask", LOGOSIM_DASK_ADDRESS=address)  # fmt: skip
            done = _preprocess(source, tmp_path / "store-1", env)
            output = done.stdout + done.stderr
            assert done.returncode == 0, output[-4000:]
            assert f"1 Dask workers report to the Prefect server at {api}" in output
            runs = _chunk_runs(api)
        assert len(runs) == 3 and {r["state_type"] for r in runs} == {"COMPLETED"}, runs

        # 2. The command runs on its own temporary server: the worker is told its address
        # and starts no temporary server of its own.
        env = _env(LOGOSIM_TASK_RUNNER="dask", LOGOSIM_DASK_ADDRESS=address,
                   PREFECT_HOME=str(tmp_path / "home-2"))  # fmt: skip
        done = _preprocess(source, tmp_path / "store-2", env)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "1 Dask workers report to the Prefect server at http://127.0.0.1:" in output
        assert len(list((tmp_path / "store-2" / "masks").glob("*.npz"))) == 3
        assert "Starting temporary server" not in logs[1].read_text()

        # 3. A second worker cannot reach servers (a dead proxy): refused, no chunk run.
        bad = _env(ALL_PROXY="http://127.0.0.1:9", NO_PROXY="", no_proxy="", **NOT_DAEMONIC)
        cluster.append(start(worker, bad, logs[2]))
        wait_for(lambda: _workers(address) == 2, "the second Dask worker", 60, logs)
        done = _preprocess(source, tmp_path / "store-3", env)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output[-4000:]
        assert "1 of 2 Dask workers cannot reach the flow's Prefect server" in output, output
        assert "PREFECT_API_URL" in output
        assert not (tmp_path / "store-3" / "masks").exists()
    finally:
        for proc in reversed(cluster):
            stop(proc)
