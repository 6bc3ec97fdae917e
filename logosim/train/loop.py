"""The fine-tuning loop: MoCo steps, schedule, precision, validation, checkpoints, stopping.

``train`` resumes by itself from the newest valid checkpoint in the store, so a killed run
(or a Prefect retry) continues where it was. SIGTERM/SIGINT finish the current step, save a
checkpoint and return. Each epoch ends with validation; the best backbone is kept apart in
``train/best.pt`` and the run stops early after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import nn
from tqdm import tqdm

from logosim.core.digest import stable_digest
from logosim.core.monitor import ResourceMonitor, describe
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.models import load_backbone
from logosim.train.augment import LogoAugment
from logosim.train.checkpoint import (
    BEST_MODEL,
    StopRequest,
    load_latest,
    rng_state,
    save_best_model,
    save_checkpoint,
    set_rng_state,
    stop_on_signals,
)
from logosim.train.data import PairBatches, TrainImages, load_images
from logosim.train.moco import MoCo, momentum_at
from logosim.train.params import CHECKPOINT_VERSION, CPU_AUTO_PRECISION, Precision, TrainParams
from logosim.train.validate import Validator


@dataclass
class TrainResult:
    status: str  # completed | early_stop | max_steps | signal
    step: int
    epoch: int
    best_score: float
    best_model: Manifest | None
    checkpoint: Manifest | None
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None  # the step of the checkpoint this run continued from


ProgressHook = Callable[[int, int], None]
EpochHook = Callable[[dict[str, Any]], None]


# -- set-up helpers ----------------------------------------------------------------------------
def resolve_precision(precision: Precision, device: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler)."""
    if precision == "auto":
        precision = "fp16" if device == "cuda" else CPU_AUTO_PRECISION
    if precision == "fp16":
        if device != "cuda":
            raise ValueError("precision 'fp16' needs CUDA; on CPU use 'bf16' or 'fp32'")
        return torch.float16, True
    if precision == "bf16":
        return torch.bfloat16, False
    return None, False


def freeze_early_stages(backbone: nn.Module, stages: int) -> None:
    features = backbone.features
    frozen = [getattr(features, "conv_stem", None), getattr(features, "bn1", None)]
    frozen += list(getattr(features, "blocks", []))[:stages] if stages else []
    for module in frozen if stages else []:
        if module is not None:
            module.requires_grad_(False)


def set_train_mode(model: MoCo, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:  # small CPU batches make batch statistics noisy: keep ImageNet's
        for backbone in (model.backbone, model.key_backbone):
            for module in backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _holdout(ids: list[str], seed: int, fraction: float) -> set[str]:
    cut = int(fraction * 2**32)
    return {i for i in ids if int(stable_digest("val", seed, i)[:8], 16) < cut}


def split_images(
    store: ArtifactStore, source_spec: SourceSpec, params: TrainParams, size: int
) -> tuple[TrainImages, TrainImages, list[tuple[str, str]]]:
    """Train and val images (the store's splits when present, else a hashed hold-out)."""
    from logosim.data import splits

    source = open_source(source_spec)
    pairs: list[tuple[str, str]] = []
    try:
        train_ids: set[str] | None = splits.load_split_ids(store, "train")
        val_ids = splits.load_split_ids(store, "val")
        with contextlib.suppress(FileNotFoundError):  # splits without pairs: groups or proxy
            rows = splits.load_pairs(store, "val").to_pylist()
            pairs = [(str(p["a"]), str(p["b"])) for p in rows if p["label"] == 1]
    except FileNotFoundError:
        all_ids = [r.id for r in source.records(with_bytes=False)]
        val_ids = _holdout(all_ids, params.seed, params.val_fraction)
        train_ids = set(all_ids) - val_ids
        logger.info(f"no splits in the store: holding out {len(val_ids)} images for validation")
    train = load_images(
        source, size, keep_ids=train_ids, limit=params.max_images, desc="train images"
    )
    val = load_images(source, size, keep_ids=val_ids, limit=params.val_images, desc="val images")
    if not params.use_groups:
        train.groups = [None] * len(train)
        val.groups = [None] * len(val)
    val_set = set(val.ids)
    pairs = [(a, b) for a, b in pairs if a in val_set and b in val_set]
    return train, val, pairs


# -- the loop ------------------------------------------------------------------------------------
def train(
    source: SourceSpec,
    store: ArtifactStore,
    params: TrainParams | None = None,
    *,
    on_step: ProgressHook | None = None,
    on_epoch: EpochHook | None = None,
    stop: StopRequest | None = None,
) -> TrainResult:
    """Fine-tune (or resume fine-tuning) the backbone on ``source``; see the module doc."""
    params = params or TrainParams()
    device = "cuda" if params.device == "auto" and torch.cuda.is_available() else params.device
    device = "cpu" if device == "auto" else device
    autocast, use_scaler = resolve_precision(params.precision, device)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)

    loaded = load_backbone(params.model, params.weights, params.pooling, params.gem_p)
    freeze_early_stages(loaded.module, params.freeze_stages)
    model = MoCo(
        loaded.module,
        loaded.dim,
        proj_dim=params.proj_dim,
        hidden_dim=params.hidden_dim,
        queue_size=params.queue_size,
        temperature=params.temperature,
    ).to(device)
    train_images, val_images, pairs = split_images(store, source, params, params.image_size)
    augment = LogoAugment(params.augment)
    batches = PairBatches(
        train_images,
        params.batch_size,
        augment,
        seed=params.seed,
        mean=loaded.mean,
        std=loaded.std,
        group_positives=params.group_positives,
        vienna_positives=params.vienna_positives,
    )
    validator = Validator(
        val_images, pairs=pairs, use_groups=params.use_groups, seed=params.seed, augment=augment
    )
    steps_per_epoch = batches.steps_per_epoch
    total = params.epochs * steps_per_epoch
    if params.max_steps:
        total = min(total, params.max_steps)
    warmup = round(total * params.warmup_epochs / params.epochs)

    trainable = [p for m in model.query_modules() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    scaler = torch.amp.GradScaler(device, enabled=use_scaler)

    state = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best_score": -1.0,
        "stale_epochs": 0,
        "history": [],
    }
    resumed_from: int | None = None
    checkpoint = load_latest(store)
    if checkpoint is not None:
        if checkpoint["run_digest"] != params.run_digest():
            raise ValueError(
                f"the checkpoints in {store.root} come from a run with other settings; "
                "use another store (or delete train/checkpoints) to start afresh"
            )
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        state = {k: checkpoint[k] for k in state}
        resumed_from = int(state["step"])
        logger.info(f"resuming from step {resumed_from} (epoch {state['epoch']})")

    def snapshot() -> Manifest:
        payload = {
            "version": CHECKPOINT_VERSION,
            "run_digest": params.run_digest(),
            "params": params.model_dump(mode="json"),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            **state,
        }
        return save_checkpoint(store, payload, keep=params.keep_checkpoints)

    monitor = ResourceMonitor()
    best_manifest: Manifest | None = None
    last_checkpoint: Manifest | None = None

    def end_of_epoch(epoch: int, seconds: float, images: int, loss: float) -> bool:
        """Validate, keep the best model; True when patience has run out."""
        nonlocal best_manifest
        figures = validator(model.backbone, loaded.mean, loaded.std, device, autocast)
        score = float(figures["score"])
        improved = score > state["best_score"] + 1e-9
        if improved:
            state["best_score"], state["stale_epochs"] = score, 0
            best_manifest = save_best_model(
                store,
                model.backbone,
                {
                    "score": score,
                    "epoch": epoch,
                    "step": state["step"],
                    "val": figures,
                    "model": params.model,
                    "image_size": params.image_size,
                    "pooling": params.pooling,
                },
            )
        else:
            state["stale_epochs"] += 1
        resources = monitor.sample()
        report = {
            "epoch": epoch,
            "step": state["step"],
            "loss": round(loss, 5),
            "lr": optimizer.param_groups[0]["lr"],
            "throughput": round(images / max(seconds, 1e-9), 2),
            "improved": improved,
            **figures,
            **resources,
        }
        state["history"].append(report)
        logger.info(
            f"epoch {epoch}: loss {loss:.4f}, val {figures['val_kind']} score {score:.4f}"
            f"{' (best)' if improved else ''}, {report['throughput']} img/s, {describe(resources)}"
        )
        if on_epoch is not None:
            on_epoch(report)
        return state["stale_epochs"] >= params.patience

    status = "completed"
    bar = tqdm(
        total=total, initial=min(state["step"], total), desc="train", unit="step", disable=None
    )
    with stop_on_signals(stop) as stop_request, ThreadPoolExecutor(params.workers) as pool:
        set_train_mode(model, params.freeze_bn)
        while state["epoch"] < params.epochs and state["step"] < total:
            epoch, started, seen, losses = state["epoch"], time.perf_counter(), 0, []
            while state["batch"] < steps_per_epoch and state["step"] < total:
                view1, view2 = batches.batch(epoch, state["batch"], pool)
                view1, view2 = (
                    view1.to(device, non_blocking=True),
                    view2.to(device, non_blocking=True),
                )
                with torch.autocast(
                    device_type=device,
                    dtype=autocast or torch.float32,
                    enabled=autocast is not None,
                ):
                    loss = model(view1, view2)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                model.after_step(
                    momentum_at(state["step"], total, params.momentum, params.momentum_cosine)
                )
                state["batch"] += 1
                state["step"] += 1
                seen += len(view1)
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if on_step is not None:
                    on_step(state["step"], total)
                if stop_request.requested:
                    last_checkpoint = snapshot()
                    bar.close()
                    return _result(
                        "signal", state, best_manifest, last_checkpoint, store, resumed_from
                    )
                if (
                    params.checkpoint_every_steps
                    and state["step"] % params.checkpoint_every_steps == 0
                ):
                    last_checkpoint = snapshot()
            epoch_done = state["batch"] >= steps_per_epoch
            if epoch_done:
                state["epoch"], state["batch"] = epoch + 1, 0
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            out_of_patience = end_of_epoch(epoch, time.perf_counter() - started, seen, mean_loss)
            last_checkpoint = snapshot()
            if out_of_patience:
                status = "early_stop"
                logger.info(f"early stop: {params.patience} epochs without improvement")
                break
            if not epoch_done:
                status = "max_steps"
                break
    bar.close()
    return _result(status, state, best_manifest, last_checkpoint, store, resumed_from)


def _result(
    status: str,
    state: dict,
    best: Manifest | None,
    checkpoint: Manifest | None,
    store: ArtifactStore,
    resumed_from: int | None,
) -> TrainResult:
    best = best or store.load_verified(BEST_MODEL)
    return TrainResult(
        status,
        state["step"],
        state["epoch"],
        state["best_score"],
        best,
        checkpoint,
        state["history"],
        resumed_from,
    )
