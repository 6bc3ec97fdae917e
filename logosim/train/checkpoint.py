"""Training checkpoints: all the state a run needs to continue as if never interrupted.

A checkpoint (``train/checkpoints/step-XXXXXXXX.pt``) holds epoch, step, both encoders and
heads (the MoCo state dict, queue included), optimizer, scheduler, GradScaler, the RNG states
(python, numpy, torch, cuda) and the best validation figure. It is written atomically through
the store with a sha256 manifest. Resuming takes the newest checkpoint that verifies and
loads; a truncated or corrupt one is skipped with a warning. The best model's backbone is kept
separately in ``train/best.pt`` (a state dict ``load_backbone(weights=path)`` accepts).

Everything is saved as tensors and plain Python values, so loading uses
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from loguru import logger

from logosim.core.store import ArtifactStore, Manifest

CHECKPOINT_DIR = "train/checkpoints"
BEST_MODEL = "train/best.pt"
_NAME = re.compile(r"step-(\d{8})\.pt$")


def checkpoint_path(step: int) -> str:
    return f"{CHECKPOINT_DIR}/step-{step:08d}.pt"


# -- RNG state --------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every generator a training step may touch, as tensors and lists (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- saving and loading ------------------------------------------------------------------------
def _serialise(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(store: ArtifactStore, state: dict[str, Any], *, keep: int = 3) -> Manifest:
    """Publish ``state`` atomically as the checkpoint of ``state['step']``; prune old ones."""
    data = _serialise(state)
    manifest = store.write_bytes(
        checkpoint_path(int(state["step"])),
        data,
        kind="checkpoint",
        meta={"epoch": int(state["epoch"]), "step": int(state["step"])},
    )
    prune_checkpoints(store, keep)
    return manifest


def list_checkpoints(store: ArtifactStore) -> list[tuple[int, str]]:
    """(step, relative path) of every checkpoint file, newest first."""
    folder = store.path(CHECKPOINT_DIR)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.search(path.name)
        if match:
            found.append((int(match.group(1)), f"{CHECKPOINT_DIR}/{path.name}"))
    return sorted(found, reverse=True)


def prune_checkpoints(store: ArtifactStore, keep: int) -> None:
    for _, rel in list_checkpoints(store)[max(keep, 1) :]:
        store.path(rel).unlink(missing_ok=True)
        store.manifest_path(rel).unlink(missing_ok=True)


def load_checkpoint(store: ArtifactStore, rel: str) -> dict[str, Any]:
    """Load one checkpoint; raises when its manifest is missing or it fails its checksum."""
    manifest = store.read_manifest(rel)
    if manifest is None:
        raise ValueError(f"{rel}: no manifest (write interrupted)")
    data = store.read_bytes(manifest)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_latest(store: ArtifactStore) -> dict[str, Any] | None:
    """The newest checkpoint that verifies and loads; broken ones are skipped with a warning."""
    for step, rel in list_checkpoints(store):
        try:
            return load_checkpoint(store, rel)
        except Exception as exc:  # truncated, corrupt, unreadable: fall back to the previous
            logger.warning(f"skipping checkpoint {rel} (step {step}): {type(exc).__name__}: {exc}")
    return None


def save_best_model(
    store: ArtifactStore, backbone: torch.nn.Module, meta: dict[str, Any]
) -> Manifest:
    """The query backbone's weights (``features.*`` keys), loadable as ``weights=<path>``."""
    state = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
    return store.write_bytes(BEST_MODEL, _serialise(state), kind="model", meta=meta)


# -- graceful stop -----------------------------------------------------------------------------
@dataclass
class StopRequest:
    """Set by SIGTERM/SIGINT: the loop finishes its step, saves a checkpoint and returns."""

    requested: bool = False
    signal_name: str = ""

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        logger.warning(f"{self.signal_name} received: finishing this step, then saving")


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest | None = None) -> Iterator[StopRequest]:
    """Route SIGTERM/SIGINT to a :class:`StopRequest` while the block runs (main thread only;
    elsewhere signals keep their handlers and the caller may set ``requested`` itself)."""
    stop = stop or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
