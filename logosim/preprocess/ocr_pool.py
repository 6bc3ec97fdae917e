"""A process pool for OCR in which no single image can take the run down.

- A Tesseract hang ends at the per-image timeout inside the worker (pytesseract kills the
  process); a worker that hangs anyway is caught by a hard deadline in the parent, the pool
  is torn down and rebuilt, and the image is recorded as failed.
- A crashed worker (segfault, OOM kill) breaks a ``ProcessPoolExecutor``: the pool is rebuilt
  and the images that were in flight are retried one at a time, so only the culprit fails.
- Each worker is told ``OMP_THREAD_LIMIT=1``: Tesseract's own OpenMP threads only fight each
  other when there already is one process per core.
Results come back in input order.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytesseract
from loguru import logger

Item = TypeVar("Item")
Result = TypeVar("Result")

# Seconds a worker gets beyond the Tesseract timeout before the parent gives up on it.
HARD_DEADLINE_SLACK_S = 20.0
# Crashes in a row, with no image done in between, that mean the pool itself cannot work.
MAX_CONSECUTIVE_CRASHES = 4


class OcrPoolError(RuntimeError):
    """Workers die whatever they are given (cannot start, broken install): stop the chunk."""


@dataclass(frozen=True, slots=True)
class Failure(Generic[Item]):
    """An item the pool could not process: ``reason`` is 'worker_timeout' or 'worker_crashed'."""

    item: Item
    reason: str
    detail: str


def _init_worker(tesseract_cmd: str) -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"
    pytesseract.pytesseract.tesseract_cmd = tesseract_cmd
    # Ctrl-C goes to the whole process group: the parent decides, workers do not die mid-item.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OcrPool:
    """``map(fn, items)`` over worker processes, yielding a result or a :class:`Failure` each.

    ``fn`` must be a module-level function (it is pickled to spawned workers) and should
    catch its own per-item errors; the pool handles what ``fn`` cannot: hangs and crashes.
    """

    def __init__(self, workers: int = 0, *, timeout_s: float = 10.0, window: int = 0) -> None:
        self.workers = workers or default_workers()
        self.deadline_s = timeout_s + HARD_DEADLINE_SLACK_S
        self.window = window or 4 * self.workers
        self._executor: ProcessPoolExecutor | None = None
        self.restarts = 0
        self._crashes_in_a_row = 0

    # -- pool life --------------------------------------------------------------------------
    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            if multiprocessing.current_process().daemon:
                raise OcrPoolError(
                    "OCR needs worker processes and this process is daemonic, so it may not "
                    "start any (a Dask nanny's worker is, by default): start the Dask workers "
                    "with DASK_DISTRIBUTED__WORKER__DAEMON=False (docs/operations.md, Dask)"
                )
            # spawn: the parent may run Prefect's threads; forking those is unsafe.
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(pytesseract.pytesseract.tesseract_cmd,),
            )
        return self._executor

    def _kill(self) -> None:
        """Tear the pool down now, hung workers included."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            if process.is_alive():
                process.kill()
        executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OcrPool:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        # On an interrupt (SIGINT/SIGTERM → exception) kill workers rather than wait for them.
        if exc_type is None:
            self.close()
        else:
            self._kill()

    # -- work -------------------------------------------------------------------------------
    def map(
        self, fn: Callable[[Item], Result], items: Iterable[Item]
    ) -> Iterator[Result | Failure[Item]]:
        pending: deque[tuple[Item, Future]] = deque()
        source = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, self._pool().submit(fn, item)))
            if not pending:
                return
            item, future = pending.popleft()
            try:
                result = future.result(timeout=self.deadline_s)
                self._crashes_in_a_row = 0
                yield result
            except FutureTimeout:
                logger.warning(f"OCR worker hung past {self.deadline_s:.0f} s; restarting the pool")
                yield Failure(item, "worker_timeout", f"no answer in {self.deadline_s:.0f} s")
                in_flight = [queued for queued, _ in pending]
                pending.clear()
                self._restart()
                pending.extend((queued, self._pool().submit(fn, queued)) for queued in in_flight)
            except BrokenProcessPool:
                in_flight = [item] + [queued for queued, _ in pending]
                pending.clear()
                self._restart()
                logger.warning(
                    f"an OCR worker died; retrying {len(in_flight)} in-flight images one by one"
                )
                for suspect in in_flight:
                    yield self._isolated(fn, suspect)

    def _restart(self) -> None:
        self.restarts += 1
        self._kill()

    def _isolated(self, fn: Callable[[Item], Result], item: Item) -> Result | Failure[Item]:
        """Run one item alone, so a crash can be pinned on it."""
        try:
            result = self._pool().submit(fn, item).result(timeout=self.deadline_s)
            self._crashes_in_a_row = 0
            return result
        except BrokenProcessPool as exc:
            self._restart()
            self._crashes_in_a_row += 1
            if self._crashes_in_a_row >= MAX_CONSECUTIVE_CRASHES:
                raise OcrPoolError(
                    f"{self._crashes_in_a_row} OCR workers died in a row without finishing an "
                    "image: the pool cannot run here (spawned workers need the main module "
                    "guarded by `if __name__ == '__main__':`)"
                ) from exc
            return Failure(item, "worker_crashed", f"worker process died: {exc}")
        except FutureTimeout:
            self._restart()
            return Failure(item, "worker_timeout", f"no answer in {self.deadline_s:.0f} s")
