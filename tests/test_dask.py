"""Dask: with LOGOSIM_TASK_RUNNER=dask, build runs its chunks on a 2-worker LocalCluster and
gives the same embeddings and index as the default thread runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.runner import RunnerSettings, chunk_task_runner, result_storage
from logosim.core.store import ArtifactStore
from logosim.index.logo_index import LogoIndex

pytest.importorskip("prefect_dask")
REPO = Path(__file__).resolve().parents[1]

BUILD = """
import json, sys
from flows.build import BuildParams, build_flow

if __name__ == "__main__":
    result = build_flow(BuildParams.model_validate_json(sys.argv[1]))
    print("RESULT", json.dumps([m.path for m in result.embeddings]))
"""


def test_runner_is_chosen_by_one_setting():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(chunk_task_runner(RunnerSettings()), ThreadPoolTaskRunner)
    local = chunk_task_runner(RunnerSettings(task_runner="dask", dask_workers=3))
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    remote = chunk_task_runner(RunnerSettings(task_runner="dask", dask_address="tcp://h:8786"))
    assert remote.address == "tcp://h:8786" and not remote.cluster_kwargs


def test_result_storage_is_the_store_or_a_shared_url(tmp_path):
    from prefect.filesystems import RemoteFileSystem

    assert result_storage(tmp_path).basepath == str(tmp_path.resolve() / "_prefect" / "results")
    shared = result_storage(tmp_path, RunnerSettings(result_storage="s3://bucket/results/"))
    assert isinstance(shared, RemoteFileSystem) and shared.basepath == "s3://bucket/results"
    local = result_storage(tmp_path, RunnerSettings(result_storage=f"file://{tmp_path}/r"))
    assert local.basepath == str(tmp_path / "r")


@pytest.fixture(scope="module")
def demo40(demo_subset) -> Path:
    return demo_subset(30, 10)


def _embeddings(store: ArtifactStore, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    parts = [store.read_arrays(store.read_manifest(p)) for p in paths]
    return np.concatenate([p["ids"] for p in parts]), np.concatenate(
        [p["embeddings"] for p in parts]
    )


def _index_vectors(store: ArtifactStore) -> tuple[list[str], np.ndarray]:
    loaded = LogoIndex.load(store)
    ids = loaded.table.ids
    return ids, np.stack([loaded.index.reconstruct(slot) for slot in range(len(ids))])


@pytest.mark.slow  # ~30 s on 2 cores (pytest --durations)
def test_build_on_a_2_worker_local_cluster_matches_the_thread_runner(
    prefect_server, demo40, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    from flows.build import BuildParams, build_flow

    def params(store: str) -> BuildParams:
        return BuildParams.model_validate(
            {
                "source": {"path": str(demo40)},
                "store": store,
                "chunk_size": 10,
                "pca": {"dims": 16},
                "embed": {"runtime": "eager", "batch_size": 8},
            }
        )

    # Dask: a fresh process, so the one setting is read when the flows are imported.
    script = tmp_path / "build_on_dask.py"
    script.write_text(BUILD)
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PYTHONPATH": str(REPO),  # this checkout's code, whatever the venv has installed
        "LOGOSIM_TASK_RUNNER": "dask",
        "LOGOSIM_DASK_WORKERS": "2",
        "LOGOSIM_DASK_THREADS_PER_WORKER": "1",
    }
    dask_store = str(tmp_path / "dask-store")
    done = subprocess.run(
        [sys.executable, str(script), params(dask_store).model_dump_json()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Creating a new Dask cluster" in output  # the chunks really went to Dask
    dask_paths = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])

    threads = build_flow(params(str(tmp_path / "thread-store")))

    dask, local = ArtifactStore(dask_store), ArtifactStore(threads.store)
    assert dask_paths == [m.path for m in threads.embeddings]  # same chunks, same cache keys
    dask_ids, dask_vectors = _embeddings(dask, dask_paths)
    ids, vectors = _embeddings(local, [m.path for m in threads.embeddings])
    assert dask_ids.tolist() == ids.tolist() and len(ids) == 40
    np.testing.assert_allclose(dask_vectors, vectors, rtol=1e-4, atol=1e-5)
    dask_index_ids, dask_index = _index_vectors(dask)
    index_ids, index = _index_vectors(local)
    assert dask_index_ids == index_ids
    np.testing.assert_allclose(dask_index, index, rtol=1e-3, atol=1e-4)
