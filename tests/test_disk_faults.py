"""A full disk or an I/O error at write time, in every kind of write (issue 18).

Every artifact goes through ``atomic_path``; the fault is injected at each of its steps
(the write itself, the fsync, the rename, the manifest) for each kind of artifact, through
the function that really produces it. Checked: a clear error naming the file (and the free
space, for a full disk); the version already there is untouched and still verifies; no
temporary file is left; and the same write succeeds once the disk is back.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from logosim.core.failures import ImageFailure, collect_errors, write_chunk_errors
from logosim.core.store import ArtifactStore, DiskSpaceError
from logosim.core.verify import verify_store
from logosim.embed.pca import PCAParams, fit_and_save_pca
from logosim.index.build import build_index
from logosim.index.params import IndexParams
from logosim.train.checkpoint import save_checkpoint


def _chunk(store: ArtifactStore, value: float = 1.0):
    rng = np.random.default_rng(int(value))
    return store.write_arrays(
        "embeddings/c0.npz",
        {
            "ids": np.array([f"m{i}" for i in range(40)]),
            "embeddings": rng.random((40, 16), dtype=np.float32) * value,
            "rows": np.arange(40),
        },
        kind="embeddings",
        rows=40,
    )


def _errors(store: ArtifactStore):
    failure = ImageFailure(id="m1", source="x.png", stage="embed", reason="truncated")
    write_chunk_errors(store, "embed", "chunk-00000", [failure])
    return collect_errors(store)


WRITES = {
    "embedding chunk": lambda store: _chunk(store, 2.0),
    "metrics json": lambda store: store.write_json("eval/metrics.json", {"recall@1": 0.9}),
    "errors.jsonl": _errors,
    "pca": lambda store: fit_and_save_pca(
        store, [store.read_manifest("embeddings/c0.npz")], PCAParams(dims=4), None
    ),
    "index": lambda store: build_index(
        store, [store.read_manifest("embeddings/c0.npz")], None, IndexParams(dba_neighbours=0)
    ),
    "checkpoint": lambda store: save_checkpoint(store, {"step": 1, "epoch": 0, "w": [1, 2]}),
}


def _fail_on(monkeypatch, site: str, code: int) -> None:
    """Make the n-th call of the patched step raise OSError(code)."""
    target, nth = {
        "write": ("logosim.store.sha256_file", 1),  # reading back the written temp file
        "fsync": ("os.fsync", 1),
        "rename": ("os.replace", 1),
        "manifest": ("os.replace", 2),  # the artifact is published, its manifest is not
    }[site]
    module_name, attr = target.rsplit(".", 1)
    module = __import__(module_name, fromlist=[attr])
    real = getattr(module, attr)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, failing)


@pytest.mark.parametrize("site", ["write", "fsync", "rename", "manifest"])
@pytest.mark.parametrize("kind", list(WRITES))
def test_full_disk_fails_clearly_and_damages_nothing(tmp_path, monkeypatch, kind, site):
    store = ArtifactStore(tmp_path / "store")
    _chunk(store)
    WRITES[kind](store)  # a first, good version of the artifact
    before = verify_store(store)
    assert before.ok

    with monkeypatch.context() as patch:
        _fail_on(patch, site, errno.ENOSPC)
        with pytest.raises(DiskSpaceError, match=r"disk full while writing .*MiB free"):
            WRITES[kind](store)

    after = verify_store(store)
    assert not after.leftovers
    if site == "manifest":
        # the new file is in place but its manifest is the old one: detected, recomputed
        assert len(after.damaged) <= 1
    else:
        assert after.ok, after.lines()
    WRITES[kind](store)  # space is back: the same write succeeds
    assert verify_store(store).ok


@pytest.mark.parametrize("kind", ["embedding chunk", "index"])
def test_io_error_names_the_file_and_stays_retryable(tmp_path, monkeypatch, kind):
    store = ArtifactStore(tmp_path / "store")
    _chunk(store)
    with monkeypatch.context() as patch:
        _fail_on(patch, "fsync", errno.EIO)
        with pytest.raises(OSError, match="while writing") as raised:
            WRITES[kind](store)
    assert raised.value.errno == errno.EIO and not isinstance(raised.value, DiskSpaceError)
    assert not verify_store(store).leftovers
