"""Checkpoints: RNG round trip, skipping broken checkpoints, and a real kill + resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

from logosim.core.store import ArtifactStore
from logosim.train.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

ROOT = Path(__file__).resolve().parents[1]

# A tiny but real run: pretrained Lite0 at 64 px, 16 demo logos, 2 epochs of 4 steps.
RUN = """
import json, sys
from logosim.data.sources import SourceSpec
from logosim.core.store import ArtifactStore
from logosim.train.params import TrainParams
from logosim.train.loop import train
params = TrainParams.model_validate_json(sys.argv[2])
result = train(SourceSpec(), ArtifactStore(sys.argv[1]), params)
print(json.dumps({"status": result.status, "step": result.step, "resumed": result.resumed_from}))
"""
PARAMS = {
    "image_size": 64,
    "batch_size": 4,
    "max_images": 16,
    "val_images": 8,
    "epochs": 2,
    "warmup_epochs": 0.5,
    "queue_size": 32,
    "checkpoint_every_steps": 2,
    "keep_checkpoints": 10,
    "hidden_dim": 64,
    "proj_dim": 32,
    "workers": 1,
}


def _start(store: Path, **overrides) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    params = json.dumps(PARAMS | overrides)
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(store), params],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {path.name} landed:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} did not land in {timeout} s")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_rng_state_round_trip_restores_every_generator():
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def _small_state(step: int) -> dict:
    return {"epoch": 0, "step": step, "weights": torch.full((4,), float(step))}


def test_truncated_latest_checkpoint_is_skipped_with_a_warning(store: ArtifactStore):
    save_checkpoint(store, _small_state(2))
    save_checkpoint(store, _small_state(4))
    latest = store.path(checkpoint_path(4))
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a torn write
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        state = load_latest(store)
    finally:
        logger.remove(sink)
    assert state is not None and state["step"] == 2
    assert torch.equal(state["weights"], torch.full((4,), 2.0))
    assert any("step-00000004.pt" in w for w in warnings)


def test_checkpoint_without_manifest_is_not_trusted(store: ArtifactStore):
    save_checkpoint(store, _small_state(2))
    save_checkpoint(store, _small_state(6))
    store.manifest_path(checkpoint_path(6)).unlink()  # killed between data and manifest
    assert load_latest(store)["step"] == 2
    with pytest.raises(ValueError, match="no manifest"):
        load_checkpoint(store, checkpoint_path(6))


def test_old_checkpoints_are_pruned(store: ArtifactStore):
    for step in (1, 2, 3, 4):
        save_checkpoint(store, _small_state(step), keep=2)
    assert [step for step, _ in list_checkpoints(store)] == [4, 3]


def test_no_checkpoint_means_a_fresh_start(store: ArtifactStore):
    assert load_latest(store) is None


def _model_state(store: Path, step: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(ArtifactStore(store), checkpoint_path(step))["model"]


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(tmp_path: Path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _finish(_start(straight)) == {"status": "completed", "step": 8, "resumed": None}

    victim = _start(resumed)
    _wait_for(ArtifactStore(resumed).manifest_path(checkpoint_path(4)), victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    outcome = _finish(_start(resumed))
    assert outcome["status"] == "completed" and outcome["step"] == 8
    assert 4 <= outcome["resumed"] < 8  # it really continued from a checkpoint of the kill

    expected, actual = _model_state(straight, 8), _model_state(resumed, 8)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, actual[name], rtol=1e-4, atol=1e-5), name
        else:
            assert torch.equal(tensor, actual[name]), name


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_cleanly(tmp_path: Path):
    proc = _start(tmp_path, checkpoint_every_steps=0, epochs=4)
    # The first epoch's checkpoint proves training is under way; then ask it to stop.
    _wait_for(ArtifactStore(tmp_path).manifest_path(checkpoint_path(4)), proc)
    proc.send_signal(signal.SIGTERM)
    result = _finish(proc)
    assert result["status"] == "signal"
    assert 4 < result["step"] < 16
    state = load_latest(ArtifactStore(tmp_path))
    assert state["step"] == result["step"]
