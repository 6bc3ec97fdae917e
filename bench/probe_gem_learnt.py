"""Issue 16, fifteenth round: does learning the GeM exponent p help the shipped recipe?

The issue lists "GeM p learnt" among the loss and pooling levers; every model so far pooled
with a fixed p = 3. This trains one seed of the shipped recipe (``scripts/train_logo_model.py``
defaults: three epochs, register edits, sharp views) with p a trainable parameter started at
3, on its own learning rate (``--p-lr-scale`` × the network's peak; the same warm-up and
cosine schedule), and reports the training loop's own val figures per epoch and the learnt p,
to compare with the same seed at fixed p. Nothing in ``logosim/`` changes: the run patches
the loop's backbone loader (the pool) and optimiser (a second parameter group) for this
process only.

    PYTHONPATH=$PWD:$PWD/bench:$PWD/scripts .venv/bin/python bench/probe_gem_learnt.py \\
        --store /tmp/gem-learnt --splits-from S [--seed 0] [--p-lr-scale 50]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_data import DEV_BENCH, print_and_write
from torch import nn
from train_logo_model import copy_splits, params

import logosim.train.loop as loop
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.train.checkpoint import BEST_MODEL, StopRequest

RESULTS = Path(__file__).parent / "results"


class LearntGeM(nn.Module):
    """GeM with p a parameter (Radenović et al.); p is kept ≥ 1 (average pooling) in use."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = nn.Parameter(torch.tensor(float(p))), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def patch_loop(p_lr_scale: float) -> list[LearntGeM]:
    """Learnable pool in the backbone the loop loads; p on its own lr in the optimiser.
    Returns the list the trained pool lands in (to read p after each epoch)."""
    load_backbone, adamw = loop.load_backbone, torch.optim.AdamW
    pools: list[LearntGeM] = []

    def load_with_learnt_pool(*args, **kwargs):
        loaded = load_backbone(*args, **kwargs)
        loaded.module.pool = LearntGeM(3.0)
        pools.append(loaded.module.pool)
        return loaded

    def adamw_with_p_group(parameters, lr: float, weight_decay: float):
        parameters = list(parameters)
        exponents = [p for p in parameters if p.ndim == 0]  # the pool's p: the only scalar
        rest = [p for p in parameters if p.ndim != 0]
        groups = [
            {"params": rest},
            {"params": exponents, "lr": lr * p_lr_scale, "weight_decay": 0.0},
        ]
        return adamw(groups, lr=lr, weight_decay=weight_decay)

    loop.load_backbone = load_with_learnt_pool
    loop.torch.optim.AdamW = adamw_with_p_group  # type: ignore[misc]
    return pools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--splits-from", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--p-lr-scale", type=float, default=50.0)
    args = parser.parse_args()
    pools = patch_loop(args.p_lr_scale)
    p_by_epoch: list[float] = []
    store = args.store / f"seed-{args.seed}"
    copy_splits(args.splits_from, store)
    result = loop.train(
        SourceSpec(path=DEV_BENCH, group_column="group"),
        ArtifactStore(store),
        params(args.seed),
        on_epoch=lambda report: p_by_epoch.append(round(float(pools[0].p), 4)),
        stop=StopRequest(),
    )
    best = torch.load(store / BEST_MODEL, map_location="cpu", weights_only=True)
    learnt = {k: float(v) for k, v in best.items() if k.endswith("pool.p")}
    report = {
        "seed": args.seed,
        "p_lr_scale": args.p_lr_scale,
        "learnt p (best.pt)": learnt,
        "p after each epoch": p_by_epoch,
        "status": result.status,
        "history": json.loads(json.dumps(result.history, default=str)),
    }
    print_and_write(report, RESULTS / f"gem-learnt-seed{args.seed}.json")


if __name__ == "__main__":
    main()
