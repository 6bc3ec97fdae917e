"""Finished work stays finished across the move to sub-packages (issue 11): a store built by
the flat layout (commit f70faab) is reused by this layout with every chunk task ``Cached``.

Prefect's cached task results are pickles naming classes by their old module paths
(``logosim.store.Manifest``); ``logosim._moved`` resolves those paths to the moved modules.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLAT_LAYOUT = "f70faab"  # the last commit of the flat logosim/ layout


def test_old_module_paths_load_the_moved_classes():
    import pickle

    import logosim.store

    from logosim.core.store import Manifest

    assert logosim.store is sys.modules["logosim.core.store"]
    assert logosim.store.__spec__.name == "logosim.core.store"
    # a pickle written by the flat layout names logosim.store.Manifest
    Manifest.__module__ = "logosim.store"
    try:
        old = pickle.dumps(Manifest(path="a", sha256="0", size=1))
    finally:
        Manifest.__module__ = "logosim.core.store"
    assert b"logosim.store" in old and b"logosim.core" not in old
    assert type(pickle.loads(old)) is Manifest
    from logosim.index import IndexParams  # old module, now a package: same names
    from logosim.index.params import IndexParams as moved

    assert IndexParams is moved


def _flat_layout_checkout(into: Path) -> Path:
    """The flat layout's code, from git history (no worktree: nothing left behind)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", FLAT_LAYOUT],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"commit {FLAT_LAYOUT} is not in this clone's history (shallow?): {exc}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _cli_build(code: Path, source: Path, store: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(code), "PREFECT_API_URL": _api_url()}
    command = ["build", "--source", str(source), "--store", str(store)]
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", *command, "--chunk-size", "20", "--pca-dims", "16"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _old_class_paths(store: Path) -> set[str]:
    """Class module paths named in the persisted Prefect results of ``store``."""
    found = set()
    for file in (store / "_prefect" / "results").rglob("*"):
        if not file.is_file() or file.name.endswith(".lock"):
            continue
        raw = file.read_bytes()
        try:
            payload = base64.b64decode(json.loads(raw)["result"])
        except (ValueError, KeyError, TypeError):
            payload = raw
        for name in (b"logosim.store", b"logosim.core.store"):
            if name in payload:
                found.add(name.decode())
    return found


def test_store_built_by_the_flat_layout_is_reused_where_cache_keys_held(
    prefect_server, demo_subset, tmp_path
):
    from test_build_flow import always_rerun, states, task_runs_since

    source, store = demo_subset(40, 20), tmp_path / "store"
    old_code = _flat_layout_checkout(tmp_path / "flat")
    assert not (old_code / "logosim" / "core").exists()
    _cli_build(old_code, source, store)
    assert _old_class_paths(store) == {"logosim.store"}  # pickles name the old paths

    started = datetime.now(UTC)
    _cli_build(ROOT, source, store)
    runs = states(task_runs_since(started))
    chunk_runs = {n: s for n, s in runs.items() if "-chunk-" in n}
    assert sorted(n for n in chunk_runs if n.startswith("embed-")) == [
        f"embed-chunk-0000{i}" for i in range(3)
    ]
    assert any(n.startswith("stats-chunk-") for n in chunk_runs), runs
    recomputed = {n: s for n, s in runs.items() if s != "Cached" and not always_rerun(n)}
    # Issue 19 changed the PCA fit (PCA_VERSION 2) after the flat layout: the PCA is refitted
    # and the index rebuilt from the cached chunks, by design.
    refitted = {n for n in recomputed if n.startswith(("fit_pca_task", "build_index_task"))}
    # Issue 12: a store from before local descriptors gets them once per chunk.
    added = {n for n in recomputed if n.startswith("local-chunk-")}
    # Issues 16/17 changed what an embedding is (default weights "logo", EMBED_CODE_VERSION 2:
    # JPEG draft decode), so the embed chunks are recomputed once, by their cache keys.
    reembedded = {n for n in recomputed if n.startswith("embed-chunk-")}
    # Issue 16 (sixth round) made text masking the default: the masks are computed once.
    masked = {n for n in recomputed if n.startswith("preprocess-chunk-")}
    assert not set(recomputed) - refitted - added - reembedded - masked, runs
    unchanged = {n: s for n, s in chunk_runs.items() if n not in added | reembedded | masked}
    assert unchanged and all(s == "Cached" for s in unchanged.values()), chunk_runs
