"""Validation each epoch: how well the current backbone retrieves known-similar logos.

Which similarity is known, in order of preference:
1. ``splits/pairs_val.parquet`` (label 1 pairs): Recall@K of the partner, gallery = val images;
2. the source's group column: the bench figures (R@1, mAP, NAR) over the val images;
3. neither (or groups switched off): each val image must find a fixed augmented copy of itself
   among all val images and copies — a label-free proxy, reported as such.
The first available one is the ``score`` that selects the best model and drives early stopping.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from logosim.search.metrics import leave_one_out, pair_recall
from logosim.train.augment import LogoAugment
from logosim.train.data import TrainImages, positive_partners, to_tensor


@torch.no_grad()
def embed_arrays(
    backbone: nn.Module,
    images: Sequence,
    mean: Sequence[float],
    std: Sequence[float],
    device: str,
    autocast: torch.dtype | None,
    batch_size: int = 64,
) -> np.ndarray:
    """L2-normalised descriptors of HWC uint8 images (or PIL images), in eval mode."""
    # Restore each module's own mode: ``train(True)`` on the whole backbone would also switch
    # on the BatchNorm layers that training keeps frozen (eval), and the epochs after the
    # first validation would then train against drifting batch statistics.
    modes = [(module, module.training) for module in backbone.modules()]
    backbone.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size], mean, std).to(device)
        with torch.autocast(
            device_type=device, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            out.append(nn.functional.normalize(backbone(x).float(), dim=1).cpu().numpy())
    for module, training in modes:
        module.training = training
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


class Validator:
    """Holds the val images and their labels; :meth:`__call__` gives figures and a score."""

    def __init__(
        self,
        images: TrainImages,
        *,
        pairs: list[tuple[str, str]] | None = None,
        use_groups: bool = True,
        ks: Sequence[int] = (1, 5, 10),
        seed: int = 0,
        augment: LogoAugment | None = None,
        min_group_queries: int = 10,
    ) -> None:
        self.images, self.ks = images, tuple(ks)
        self.pairs = pairs or []
        grouped = sum(1 for partners in positive_partners(images.groups) if partners)
        # A handful of grouped images makes a noisy score: then the label-free proxy is used.
        self.groups = images.groups if use_groups and grouped >= min_group_queries else None
        if self.pairs:
            self.kind = "pairs_val"
        elif self.groups is not None:
            self.kind = "groups"
        else:
            self.kind = "augmented_copies"
        # Copies are drawn once, so every epoch is scored on the same task.
        augment = augment or LogoAugment()
        self.copies = (
            [
                np.asarray(augment(images.image(i), random.Random(f"val:{seed}:{i}")))
                for i in range(len(images))
            ]
            if self.kind == "augmented_copies"
            else []
        )

    def __call__(
        self,
        backbone: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        device: str,
        autocast: torch.dtype | None = None,
    ) -> dict[str, float]:
        originals = list(self.images.pixels)
        vectors = embed_arrays(backbone, originals + self.copies, mean, std, device, autocast)
        figures: dict[str, float] = {"val_images": float(len(originals)), "val_kind": self.kind}  # type: ignore[dict-item]
        if self.kind == "augmented_copies":
            ids = self.images.ids + [f"{i}#copy" for i in self.images.ids]
            result = pair_recall(vectors, ids, [(i, f"{i}#copy") for i in self.images.ids], self.ks)
            figures |= {k.replace("pair_", "copy_"): v for k, v in result.items()}
            figures["score"] = result[f"pair_recall@{self.ks[0]}"]
            return figures
        if self.pairs:
            result = pair_recall(vectors, self.images.ids, self.pairs, self.ks)
            figures |= result
            figures["score"] = result[f"pair_recall@{self.ks[0]}"]
        if self.groups is not None:
            bench = leave_one_out(vectors, self.groups)
            figures |= {f"bench_{k}": v for k, v in bench.items()}
            figures.setdefault("score", bench["recall@1"])
        return figures
