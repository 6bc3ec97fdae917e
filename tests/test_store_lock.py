"""One writing run per store: the second waits, a killed holder's lock is recovered (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from processes import REPO

from logosim.core.store_lock import store_lock


def _holder(store) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        import time
        from logosim.core.store_lock import store_lock
        with store_lock({str(store)!r}):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_waits_and_a_killed_holder_frees_the_store(tmp_path):
    holder = _holder(tmp_path)
    try:
        with (
            pytest.raises(BlockingIOError, match=f"pid {holder.pid}"),
            store_lock(tmp_path, wait=False),
        ):
            pass
        acquired = threading.Event()

        def second_run() -> None:
            with store_lock(tmp_path):
                acquired.set()

        waiter = threading.Thread(target=second_run)
        waiter.start()
        assert not acquired.wait(1.0)  # waits while the holder runs
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup: the kernel drops the flock
        started = time.monotonic()
        assert acquired.wait(10)
        assert time.monotonic() - started < 5
        waiter.join(5)
    finally:
        holder.kill()
        holder.wait()


def test_reentrant_in_one_thread_exclusive_across_threads(tmp_path):
    order = []
    with store_lock(tmp_path):
        with store_lock(tmp_path):  # the evaluate flow runs the build flow inside its lock
            order.append("nested")

        def other() -> None:
            with store_lock(tmp_path):
                order.append("other thread")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("outer done")
    thread.join(5)
    assert order == ["nested", "outer done", "other thread"]


def test_the_lock_holder_removes_temporary_files_of_killed_writers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "index").mkdir()
    killed = tmp_path / "index" / f".index.faiss.{dead.pid}.abc123.tmp"
    live = tmp_path / "index" / f".ids.json.{os.getpid()}.def456.tmp"  # a writer still at work
    killed.write_bytes(b"half")
    live.write_bytes(b"in progress")
    with store_lock(tmp_path):
        assert not killed.exists() and live.exists()
