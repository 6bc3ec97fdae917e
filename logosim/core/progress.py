"""Progress of long stages, reported to whoever listens in this process (the CLI's bar).

Stages run inside Prefect tasks, in worker threads of the process that started the flow;
a module-level channel per stage lets the command line draw one bar across all chunks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

ProgressFn = Callable[[int], None]


class ProgressChannel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[ProgressFn] = []

    @contextlib.contextmanager
    def listen(self, callback: ProgressFn) -> Iterator[None]:
        """Call ``callback(n)`` (serialised) as the stage finishes ``n`` more images."""
        with self._lock:
            self._listeners.append(callback)
        try:
            yield
        finally:
            with self._lock:
                self._listeners.remove(callback)

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def advance(self, n: int) -> None:
        if not n:
            return
        with self._lock:
            for callback in self._listeners:
                callback(n)
