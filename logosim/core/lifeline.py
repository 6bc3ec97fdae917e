"""A lifeline: when a ``logosim`` command dies, its child processes die with it.

A command runs its flows on a temporary Prefect server started as a child process (and may
start OCR worker pools or a Dask LocalCluster). After ``kill -9`` of the command those
children are re-parented to init and keep running (three kills left three ~230 MB servers).
A parent-death signal (``PR_SET_PDEATHSIG``) would need a hook where Prefect spawns its
server, and fires when the spawning *thread* ends, not the process. Instead a small watchdog
process, started first, notes the command's descendants every ``poll`` seconds and, once the
command is gone, terminates the ones it saw (then kills those that ignore SIGTERM). A child
started within the last poll is caught through the process group: when the command leads
its own group (a shell gives each job one), every process still in that group is ended too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil

POLL_SECONDS = 0.2
GRACE_SECONDS = 3.0


def start_lifeline(pid: int | None = None, poll: float = POLL_SECONDS) -> subprocess.Popen:
    """Watch ``pid`` (this process by default) from a separate process session."""
    return subprocess.Popen(
        [sys.executable, "-m", "logosim.core.lifeline", str(pid or os.getpid()), str(poll)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a signal to the command's process group spares it
    )


def _descendants(parent: psutil.Process, me: int) -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in parent.children(recursive=True) if p.pid != me}
    except psutil.Error:
        return {}


def end_all(processes: list[psutil.Process], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM, a grace period, then SIGKILL for the ones still alive."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(pid: int, poll: float = POLL_SECONDS) -> None:
    """Until ``pid`` ends, remember its descendants; then end the ones it left behind."""
    me = os.getpid()
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    group = os.getpgid(pid) if os.getpgid(pid) == pid else None  # only a group it leads
    seen: dict[int, psutil.Process] = {}
    while _alive(parent):
        seen.update(_descendants(parent, me))
        time.sleep(poll)
    if group is not None:
        seen.update(_group_members(group, me))
    # psutil.Process.is_running also checks the creation time: a reused pid is not ours
    end_all([p for p in seen.values() if p.is_running()])


def _group_members(group: int, me: int) -> dict[int, psutil.Process]:
    members = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid != me and os.getpgid(process.pid) == group:
                members[process.pid] = process
    return members


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else POLL_SECONDS)
