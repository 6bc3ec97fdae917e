"""One writing run per store at a time: an advisory lock on ``<store>/.lock``.

Two builds (or a build and a reindex) on one store would interleave index, PCA and id-table
writes. The second run waits for the first, saying whose run it waits for. The lock is an
``flock`` on an open file, so the kernel releases it when its holder dies — a run killed with
``kill -9`` leaves no lock to clean up, and a stale ``.lock`` file is harmless. It is held
once per process and thread and is re-entrant there: the evaluate flow runs the build flow
inside its own lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from loguru import logger

from logosim.core.store import sweep_dead_temps

LOCK_FILE = ".lock"
_held: dict[Path, tuple[int, int, int]] = {}  # root → (fd, depth, owning thread)
_guard = threading.Lock()
_turns: dict[Path, threading.Lock] = {}  # one thread of this process at a time per store


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another run"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} ({info.get('command', '?')}, since {since})"


@contextlib.contextmanager
def store_lock(root: Path | str, wait: bool = True) -> Iterator[None]:
    """Hold the store's lock for the block; wait (with a message) while another run has it,
    or raise ``BlockingIOError`` when ``wait`` is False."""
    root = Path(root).expanduser().resolve()
    me = threading.get_ident()
    with _guard:
        fd, depth, owner = _held.get(root, (-1, 0, me))
        reentered = depth > 0 and owner == me
        if reentered:
            _held[root] = (fd, depth + 1, me)
        turn = _turns.setdefault(root, threading.Lock())
    if reentered:
        try:
            yield
        finally:
            _release(root)
        return
    if not turn.acquire(blocking=wait):
        raise BlockingIOError(f"{root} is in use by another run of this process")
    try:
        fd = _acquire(root, wait)
    except BaseException:
        turn.release()
        raise
    with _guard:
        _held[root] = (fd, 1, me)
    try:
        yield
    finally:
        _release(root)


def _acquire(root: Path, wait: bool) -> int:
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise BlockingIOError(f"{root} is in use by {_holder(path)}") from None
            logger.warning(f"store {root} is in use by {_holder(path)}; waiting for it to finish")
            started = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            logger.info(f"store {root} is free after {time.monotonic() - started:.1f} s")
        for path in sweep_dead_temps(root):  # the holder tidies up after killed writers
            logger.info(f"removed {path.relative_to(root)}: left by a writer that was killed")
        os.ftruncate(fd, 0)
        command = " ".join(os.path.basename(a) for a in sys.argv[:3])
        os.write(
            fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode()
        )
        return fd
    except BaseException:
        os.close(fd)
        raise


def _release(root: Path) -> None:
    with _guard:
        fd, depth, owner = _held[root]
        if depth > 1:
            _held[root] = (fd, depth - 1, owner)
            return
        del _held[root]
        turn = _turns[root]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    turn.release()
