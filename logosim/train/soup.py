"""Weight-space averaging ("model soup", Wortsman et al. 2022) of fine-tuned backbones.

Runs of the logo recipe from the same ImageNet start, differing only in their seed, land in
one basin: their average retrieves at least as well as the seeds' mean without needing a
lucky seed (notes/issue-16-tuned-model.md, third and fourth rounds), which is how the shipped
model is made: three seeds, one average.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch


def average_weights(paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The mean of the state dicts at ``paths`` (floating tensors; integer buffers such as
    BatchNorm's ``num_batches_tracked`` are taken from the first)."""
    if not paths:
        raise ValueError("nothing to average")
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    keys = states[0].keys()
    if any(state.keys() != keys for state in states[1:]):
        raise ValueError("the weights do not share one architecture (different keys)")
    return {
        key: torch.stack([s[key] for s in states]).mean(0)
        if states[0][key].is_floating_point()
        else states[0][key]
        for key in keys
    }


def soup_bytes(paths: Sequence[Path]) -> bytes:
    """:func:`average_weights`, serialised as a loadable ``weights=<path>`` file."""
    buffer = io.BytesIO()
    torch.save(average_weights(paths), buffer)
    return buffer.getvalue()
