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
from dataclasses import asdict, dataclass, field, fields
from functools import partial
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
from logosim.embed.models import LoadedBackbone, load_backbone
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
    load = partial(load_images, source, size, normalize=params.normalize)
    train = load(keep_ids=train_ids, limit=params.max_images, desc="train images")
    # val images are scored as the embedder will see them; train views are blurred after
    # their augmentation (PairBatches), so the train images stay sharp here
    val = load(keep_ids=val_ids, limit=params.val_images, desc="val images", blur=params.blur)
    if not params.use_groups:
        train.groups = [None] * len(train)
        val.groups = [None] * len(val)
    val_set = set(val.ids)
    pairs = [(a, b) for a, b in pairs if a in val_set and b in val_set]
    return train, val, pairs


# -- state, set-up, resume ------------------------------------------------------------------------
@dataclass
class TrainState:
    """Where a run is: saved in every checkpoint (its keys are top-level checkpoint keys)."""

    epoch: int = 0
    batch: int = 0  # the next batch within the epoch
    step: int = 0
    best_score: float = -1.0
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> TrainState:
        return cls(**{f.name: checkpoint[f.name] for f in fields(cls)})


@dataclass
class TrainSetup:
    """Everything a run works with, built once (in a fixed order: the seeds come first)."""

    params: TrainParams
    device: str
    autocast: torch.dtype | None
    loaded: LoadedBackbone
    model: MoCo
    batches: PairBatches
    validator: Validator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    total: int  # steps in all

    @property
    def steps_per_epoch(self) -> int:
        return self.batches.steps_per_epoch


def set_up(source: SourceSpec, store: ArtifactStore, params: TrainParams) -> TrainSetup:
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
        supervised=params.loss == "supcon",
        hard_negatives=params.hard_negatives,
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
        blur=params.blur,
    )
    validator = Validator(
        val_images, pairs=pairs, use_groups=params.use_groups, seed=params.seed, augment=augment
    )
    total = params.epochs * batches.steps_per_epoch
    if params.max_steps:
        total = min(total, params.max_steps)
    warmup = round(total * params.warmup_epochs / params.epochs)

    trainable = [p for m in model.query_modules() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup))
    scaler = torch.amp.GradScaler(device, enabled=use_scaler)
    return TrainSetup(
        params, device, autocast, loaded, model, batches, validator, optimizer, scheduler,
        scaler, total,
    )  # fmt: skip


def resume(setup: TrainSetup, store: ArtifactStore) -> tuple[TrainState, int | None]:
    """The state of the newest valid checkpoint (model, optimiser, RNG restored), or a fresh
    one; and the step resumed from."""
    checkpoint = load_latest(store)
    if checkpoint is None:
        return TrainState(), None
    if checkpoint["run_digest"] != setup.params.run_digest():
        raise ValueError(
            f"the checkpoints in {store.root} come from a run with other settings; "
            "use another store (or delete train/checkpoints) to start afresh"
        )
    setup.model.load_state_dict(checkpoint["model"])
    setup.optimizer.load_state_dict(checkpoint["optimizer"])
    setup.scheduler.load_state_dict(checkpoint["scheduler"])
    setup.scaler.load_state_dict(checkpoint["scaler"])
    set_rng_state(checkpoint["rng"])
    state = TrainState.from_checkpoint(checkpoint)
    logger.info(f"resuming from step {state.step} (epoch {state.epoch})")
    return state, state.step


# -- checkpoints -----------------------------------------------------------------------------------
class CheckpointSaver:
    """Writes checkpoints (everything needed to resume) and the best backbone so far."""

    def __init__(self, store: ArtifactStore, setup: TrainSetup) -> None:
        self.store, self.setup = store, setup
        self.last: Manifest | None = None
        self.best: Manifest | None = None

    def checkpoint(self, state: TrainState) -> Manifest:
        setup, params = self.setup, self.setup.params
        payload = {
            "version": CHECKPOINT_VERSION,
            "run_digest": params.run_digest(),
            "params": params.model_dump(mode="json"),
            "model": setup.model.state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "scheduler": setup.scheduler.state_dict(),
            "scaler": setup.scaler.state_dict(),
            "rng": rng_state(),
            **state.as_dict(),
        }
        self.last = save_checkpoint(self.store, payload, keep=params.keep_checkpoints)
        return self.last

    def best_model(self, score: float, epoch: int, step: int, figures: dict[str, Any]) -> None:
        params = self.setup.params
        self.best = save_best_model(
            self.store,
            self.setup.model.backbone,
            {
                "score": score,
                "epoch": epoch,
                "step": step,
                "val": figures,
                "model": params.model,
                "image_size": params.image_size,
                "pooling": params.pooling,
            },
        )


# -- one epoch, validation -------------------------------------------------------------------------
@dataclass
class EpochRun:
    images: int = 0
    losses: list[float] = field(default_factory=list)
    stopped: bool = False  # a signal asked to stop (a checkpoint was written)

    @property
    def mean_loss(self) -> float:
        return float(np.mean(self.losses)) if self.losses else float("nan")


def train_one_epoch(
    setup: TrainSetup,
    state: TrainState,
    pool: ThreadPoolExecutor,
    saver: CheckpointSaver,
    bar: tqdm,
    stop_request: StopRequest,
    on_step: ProgressHook | None = None,
) -> EpochRun:
    """MoCo steps from ``state.batch`` to the end of the epoch (or of the run, or a signal)."""
    params, model, device = setup.params, setup.model, setup.device
    epoch, run = state.epoch, EpochRun()
    while state.batch < setup.steps_per_epoch and state.step < setup.total:
        view1, view2 = setup.batches.batch(epoch, state.batch, pool)
        view1, view2 = view1.to(device, non_blocking=True), view2.to(device, non_blocking=True)
        labels = setup.batches.labels(epoch, state.batch).to(device)
        with torch.autocast(
            device_type=device,
            dtype=setup.autocast or torch.float32,
            enabled=setup.autocast is not None,
        ):
            loss = model(view1, view2, labels)
        setup.optimizer.zero_grad(set_to_none=True)
        setup.scaler.scale(loss).backward()
        setup.scaler.step(setup.optimizer)
        setup.scaler.update()
        setup.scheduler.step()
        model.after_step(
            momentum_at(state.step, setup.total, params.momentum, params.momentum_cosine)
        )
        state.batch += 1
        state.step += 1
        run.images += len(view1)
        run.losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{run.losses[-1]:.3f}")
        if on_step is not None:
            on_step(state.step, setup.total)
        if stop_request.requested:
            saver.checkpoint(state)
            run.stopped = True
            return run
        if params.checkpoint_every_steps and state.step % params.checkpoint_every_steps == 0:
            saver.checkpoint(state)
    return run


def validate(
    setup: TrainSetup,
    state: TrainState,
    saver: CheckpointSaver,
    monitor: ResourceMonitor,
    epoch: int,
    seconds: float,
    run: EpochRun,
    on_epoch: EpochHook | None = None,
) -> bool:
    """Validate, keep the best model; True when patience has run out."""
    params, loaded = setup.params, setup.loaded
    figures = setup.validator(
        setup.model.backbone, loaded.mean, loaded.std, setup.device, setup.autocast
    )
    score = float(figures["score"])
    improved = score > state.best_score + 1e-9
    if improved:
        state.best_score, state.stale_epochs = score, 0
        saver.best_model(score, epoch, state.step, figures)
    else:
        state.stale_epochs += 1
    resources = monitor.sample()
    report = {
        "epoch": epoch,
        "step": state.step,
        "loss": round(run.mean_loss, 5),
        "lr": setup.optimizer.param_groups[0]["lr"],
        "throughput": round(run.images / max(seconds, 1e-9), 2),
        "improved": improved,
        **figures,
        **resources,
    }
    state.history.append(report)
    logger.info(
        f"epoch {epoch}: loss {run.mean_loss:.4f}, val {figures['val_kind']} score {score:.4f}"
        f"{' (best)' if improved else ''}, {report['throughput']} img/s, {describe(resources)}"
    )
    if on_epoch is not None:
        on_epoch(report)
    return state.stale_epochs >= params.patience


# -- the loop --------------------------------------------------------------------------------------
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
    setup = set_up(source, store, params)
    state, resumed_from = resume(setup, store)
    saver, monitor = CheckpointSaver(store, setup), ResourceMonitor()

    status = "completed"
    bar = tqdm(
        total=setup.total, initial=min(state.step, setup.total), desc="train", unit="step",
        disable=None,
    )  # fmt: skip
    with stop_on_signals(stop) as stop_request, ThreadPoolExecutor(params.workers) as pool:
        set_train_mode(setup.model, params.freeze_bn)
        while state.epoch < params.epochs and state.step < setup.total:
            epoch, started = state.epoch, time.perf_counter()
            run = train_one_epoch(setup, state, pool, saver, bar, stop_request, on_step)
            if run.stopped:
                bar.close()
                return _result("signal", state, saver, store, resumed_from)
            epoch_done = state.batch >= setup.steps_per_epoch
            if epoch_done:
                state.epoch, state.batch = epoch + 1, 0
            seconds = time.perf_counter() - started
            out_of_patience = validate(setup, state, saver, monitor, epoch, seconds, run, on_epoch)
            saver.checkpoint(state)
            if out_of_patience:
                status = "early_stop"
                logger.info(f"early stop: {params.patience} epochs without improvement")
                break
            if not epoch_done:
                status = "max_steps"
                break
    bar.close()
    return _result(status, state, saver, store, resumed_from)


def _result(
    status: str,
    state: TrainState,
    saver: CheckpointSaver,
    store: ArtifactStore,
    resumed_from: int | None,
) -> TrainResult:
    best = saver.best or store.load_verified(BEST_MODEL)
    return TrainResult(
        status,
        state.step,
        state.epoch,
        state.best_score,
        best,
        saver.last,
        state.history,
        resumed_from,
    )
