"""No orphans: after ``kill -9`` of a command, the processes it started go too (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _wait_for_child(parent: subprocess.Popen, match: str, timeout: float) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert parent.poll() is None, f"the command ended early ({parent.returncode})"
        for child in psutil.Process(parent.pid).children(recursive=True):
            try:
                if match in " ".join(child.cmdline()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no child process matching {match!r} within {timeout} s")


def test_children_of_a_killed_process_are_ended(tmp_path):
    """A parent with a lifeline starts a child that ignores SIGTERM; kill -9 the parent."""
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        from logosim.core.lifeline import start_lifeline
        start_lifeline(poll=0.1)
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        subprocess.Popen([sys.executable, "-c", stubborn])
        subprocess.Popen(["sleep", "300"])
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        stubborn = _wait_for_child(parent, "SIG_IGN", timeout=30)
        sleeper = _wait_for_child(parent, "sleep 300", timeout=30)
        time.sleep(0.5)  # at least one lifeline poll has seen both
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone(sleeper.pid, timeout=10), "plain child left running"
        assert _gone(stubborn.pid, timeout=15), "SIGTERM-ignoring child left running"
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.slow
def test_killed_command_leaves_no_prefect_server(tmp_path):
    """``logosim stats`` on its temporary Prefect server, killed with SIGKILL mid-run."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "flows.cli", "stats", "--source", "demo"]
    command += ["--store", str(tmp_path / "store")]
    with open(tmp_path / "stats.log", "wb") as log:
        cli = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        server = _wait_for_child(cli, "uvicorn", timeout=120)
        time.sleep(1.0)
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(timeout=10)
        assert _gone(server.pid, timeout=15), "the temporary Prefect server outlived its command"
    finally:
        if cli.poll() is None:
            cli.kill()
