"""The local descriptors as part of the network graph (issue 12).

Projecting 49 cells and 14 regions of a 1280-channel map in numpy after the network costs a
third of the embedding throughput on 2 cores (the map itself is 250 KB an image to copy out
of the runtime); inside the graph the same linear algebra runs in the runtime's threads and
the graph's output grows by 4 K floats only. So :class:`LocalHead` does exactly what
``local_features.describe_maps`` does for patches and regions, in torch, and every runtime
(eager, ONNX Runtime, OpenVINO, an ONNX export) carries it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from logosim.embed.local_features import GEM_P, LOCAL_DIM, LocalProjection, region_masks


class _Projection(nn.Module):
    """signed-sqrt → L2 → PCA → L2 of ``(..., C)`` rows. ``signed=False`` for inputs known to
    be positive (GeM-pooled regions): the plain square root is then the same value."""

    def __init__(self, model, signed: bool = True) -> None:
        super().__init__()
        self.signed = signed
        if model.power != 0.5:
            raise ValueError("the in-graph local projection expects a signed square root")
        comps = torch.from_numpy(np.ascontiguousarray(model.components, dtype=np.float32))
        self.register_buffer("components", comps.T.contiguous())  # (C, d)
        offset = torch.from_numpy(model.mean.astype(np.float32)) @ comps.T
        self.register_buffer("offset", offset)
        self.register_buffer("scale", torch.from_numpy(model.scale.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) → (..., d)
        # sign(x)·sqrt(|x|) written without Sign: OpenVINO runs Sign with a reference kernel
        # (and around it layout reorders) that alone cost ~2 % of the embedding throughput;
        # relu/sqrt/sub are jit kernels it fuses. Same values (notes/issue-12-rerank.md).
        if self.signed:
            root = torch.sqrt(torch.relu(x)) - torch.sqrt(torch.relu(-x))
        else:
            root = torch.sqrt(x)
        root = root / torch.clamp(torch.linalg.vector_norm(root, dim=-1, keepdim=True), min=1e-12)
        y = (root @ self.components - self.offset) / self.scale
        return y / torch.clamp(torch.linalg.vector_norm(y, dim=-1, keepdim=True), min=1e-12)


class LocalHead(nn.Module):
    """Feature map (N, C, h, w) → (N, (h·w + R)·64): projected patches, then regions."""

    def __init__(self, projection: LocalProjection, grid: tuple[int, int]) -> None:
        super().__init__()
        if GEM_P != 3.0:
            raise ValueError("the in-graph region pooling is written for GeM p=3")
        self.grid = grid
        self.origin = projection.origin  # said in an export's metadata
        self.patches = _Projection(projection.patches)
        self.regions = _Projection(projection.regions, signed=False)  # GeM means: > 0
        masks = torch.from_numpy(region_masks(*grid).T.copy())  # (h·w, R)
        self.register_buffer("masks", masks)

    @property
    def width(self) -> int:
        return (self.grid[0] * self.grid[1] + self.masks.shape[1]) * LOCAL_DIM

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        cells = feature_map.flatten(2)  # (N, C, h·w)
        patches = self.patches(cells.transpose(1, 2))  # (N, h·w, d)
        # GeM over each region without Pow: OpenVINO runs a float-exponent Pow here about as
        # slowly as the rest of the head together (embedding 320 → 405 img/s without it,
        # notes/issue-12-rerank.md); x·x·x and exp(log(·)/3) give the same values to rounding.
        kept = torch.clamp(cells, min=1e-6)
        regions = torch.exp(torch.log((kept * kept * kept) @ self.masks) / GEM_P)  # (N, C, R)
        regions = self.regions(regions.transpose(1, 2))  # (N, R, d)
        return torch.cat([patches.flatten(1), regions.flatten(1)], dim=1)
