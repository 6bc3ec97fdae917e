"""A full disk or an I/O error inside Prefect's own result writes (issue 18).

Chunk task results (manifests) are Prefect result records under ``<store>/_prefect/results``,
written through ``AtomicLocalFileSystem``. The fault is injected at the fsync of those
files (where a full disk or a failing device reports), during a real stats flow on a real
Prefect server. Checked: the message names the record and the free space; every record and
artifact already there still reads; no temporary file is left; the rerun once the disk is
back equals an uninterrupted run and reuses the chunks whose records were written.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pytest

from logosim.core.store import ArtifactStore, DiskSpaceError
from logosim.core.verify import verify_store

RESULTS = "_prefect/results"


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with the traceback, when there is one

    def clear(self) -> None:
        self.lines.clear()

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def prefect_log():
    """What Prefect's run loggers wrote (they do not propagate to the root logger)."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # Prefect's own setup would drop a handler added before it
    handler, logger = _Collected(), logging.getLogger("prefect")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def source(demo_subset) -> Path:
    return demo_subset(12, 4)  # 16 logos: 4 chunks of 4


def _stats(source: Path, store: Path):
    from flows.stats import default_params, stats_flow
    from logosim.data.sources import SourceSpec

    return stats_flow(SourceSpec(path=str(source)), str(store), default_params(4))


def _records(store: Path) -> dict[str, dict]:
    """Every result record there, parsed (a cut one fails the test here)."""
    return {p.name: json.loads(p.read_bytes()) for p in (store / RESULTS).iterdir()}


def _fail_fsync(monkeypatch, code: int, *, after_records: int, lasting: bool) -> None:
    """From the fsync of result record number ``after_records + 1`` on, fail with ``code``:
    every write after it too (``lasting``, a disk that stays full) or only that one."""
    real = os.fsync
    seen = {"records": 0, "fired": False}

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        is_record = RESULTS in path and path.endswith(".tmp")  # not the folder's fsync
        seen["records"] += is_record
        first = is_record and seen["records"] > after_records and not seen["fired"]
        if first or (seen["fired"] and lasting):
            seen["fired"] = True
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _unchanged(reference: Path, store: Path) -> None:
    for name in ("stats/stats.json", "errors.jsonl"):
        assert (store / name).read_bytes() == (reference / name).read_bytes(), name


def test_full_disk_in_a_result_write_fails_clearly_and_the_rerun_completes(
    prefect_server, source, tmp_path, monkeypatch, prefect_log
):
    reference = tmp_path / "reference"
    expected = _stats(source, reference)
    prefect_log.clear()

    store = tmp_path / "store"
    with monkeypatch.context() as patch:
        _fail_fsync(patch, errno.ENOSPC, after_records=2, lasting=True)
        with pytest.raises(DiskSpaceError, match=r"disk full while writing .* MiB free"):
            _stats(source, store)
    # Prefect logs the failed record write with our message: the record's path, free space.
    log = prefect_log.text()
    assert f"disk full while writing {store.resolve() / RESULTS}/" in log, log[-3000:]
    written = _records(store)  # whole records only
    assert len(written) == 2
    report = verify_store(ArtifactStore(store))
    assert report.ok and not report.leftovers, report.lines()

    assert _stats(source, store) == expected.model_copy(
        update={
            "stats_path": expected.stats_path.replace(str(reference), str(store)),
            "errors_path": expected.errors_path.replace(str(reference), str(store)),
            "plots": [p.replace(str(reference), str(store)) for p in expected.plots],
        }
    )
    _unchanged(reference, store)
    assert prefect_log.text().count("Cached(type=COMPLETED)") == 2
    assert set(written) < set(_records(store))


def test_an_io_error_in_a_result_write_is_logged_and_costs_one_chunk_later(
    prefect_server, source, tmp_path, monkeypatch, prefect_log
):
    reference = tmp_path / "reference"
    _stats(source, reference)
    prefect_log.clear()
    store = tmp_path / "store"
    with monkeypatch.context() as patch:
        _fail_fsync(patch, errno.EIO, after_records=1, lasting=False)
        _stats(source, store)  # the task's result is in memory: the run completes
    log = prefect_log.text()
    assert f"Input/output error while writing {store.resolve() / RESULTS}/" in log, log[-3000:]
    assert len(_records(store)) == 3  # four chunks, one record lost
    _unchanged(reference, store)
    assert verify_store(ArtifactStore(store)).ok

    _stats(source, store)
    # only the chunk whose record was lost runs again
    assert prefect_log.text().count("Cached(type=COMPLETED)") == 3
    assert len(_records(store)) == 4
    _unchanged(reference, store)
