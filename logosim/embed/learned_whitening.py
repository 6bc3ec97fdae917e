"""Learned whitening: a projection fitted on pairs that should match (issue 16).

PCA whitening evens out the directions along which *all* marks vary. Learned whitening
(Mikolajczyk & Matas 2007; Radenović et al. 2018) whitens the directions along which two
renditions of *one* mark vary instead — the scatter of positive-pair differences — so that
what tells two brands apart counts more than what a redrawing or a scan changes, then keeps
the directions in that space along which marks differ most from the marks of other brands
they are most easily taken for (their nearest hard negatives). The pairs come from the dev bench's train
split: two renditions of one brand group (mostly from different icon collections: drawing
style is what must not count), and each image with a register-edit view of itself.

The result is a ``PCAModel`` (mean, components, unit scale, signed power), so everything
downstream of the PCA stage uses it unchanged; the packaged logo weights ship one
(``weight_files.logo_projection_path``, ``scripts/fit_logo_projection.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from logosim.embed.pca import PCAModel, l2_normalize, power_normalize


class LearnedWhiteningParams(BaseModel):
    dims: int = Field(512, ge=1, description="Output dimension.")
    pre_dims: int = Field(
        1024, ge=1, description="PCA first (no whitening): directions too rare to estimate go."
    )
    shrinkage: float = Field(
        0.1, ge=0, le=1, description="Pair scatter shrunk toward a multiple of the identity."
    )
    power: float = Field(0.5, gt=0, le=1, description="Signed power on raw features (as PCA).")
    hard_negatives: int = Field(
        5,
        ge=0,
        description="Keep the directions along which each train image differs most from its "
        "this many nearest marks of other brands (0: from all train images).",
    )


def group_pairs(groups: Sequence[str]) -> np.ndarray:
    """(P, 2) row indices of every pair of rows sharing a non-empty group."""
    members: dict[str, list[int]] = {}
    for row, group in enumerate(groups):
        if group:
            members.setdefault(group, []).append(row)
    pairs = [pair for rows in members.values() for pair in itertools.combinations(rows, 2)]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def _scatter(differences: np.ndarray) -> np.ndarray:
    return differences.T @ differences / max(len(differences), 1)


HARD_NEGATIVE_BLOCK = 1024  # rows of the similarity matrix held at once


def _hard_negative_scatter(whitened: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Scatter of each row's differences from its ``k`` most similar rows of other groups
    (a row without a group counts only itself as its own): the confusions to undo."""
    unit = whitened / np.maximum(np.linalg.norm(whitened, axis=1, keepdims=True), 1e-12)
    unit = unit.astype(np.float32)
    scatter = np.zeros((whitened.shape[1],) * 2)
    k = min(k, len(whitened) - 1)
    for start in range(0, len(whitened), HARD_NEGATIVE_BLOCK):
        rows = np.arange(start, min(start + HARD_NEGATIVE_BLOCK, len(whitened)))
        similarity = unit[rows] @ unit.T
        same = (groups[rows, None] == groups[None, :]) & (groups[rows, None] != "")
        similarity[same] = -np.inf
        similarity[np.arange(len(rows)), rows] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        differences = (whitened[rows, None, :] - whitened[nearest]).reshape(-1, whitened.shape[1])
        scatter += differences.T @ differences
    return scatter / (len(whitened) * k)


def fit_learned_whitening(
    features: np.ndarray,
    groups: Sequence[str],
    views: np.ndarray,
    view_of: np.ndarray,
    params: LearnedWhiteningParams | None = None,
) -> PCAModel:
    """Fit on raw train ``features`` (N, D) with their ``groups`` ("" = none): pairs of rows
    of one group, and ``views`` (M, D) raw features of edited views of rows ``view_of`` (M,).
    Group pairs and view pairs weigh the same (their scatters are averaged)."""
    params = params or LearnedWhiteningParams()
    pairs = group_pairs(groups)
    if not len(pairs) and not len(views):
        raise ValueError("learned whitening needs matching pairs: no groups and no views")
    x = l2_normalize(power_normalize(features, params.power)).astype(np.float64)
    v = l2_normalize(power_normalize(views, params.power)).astype(np.float64)
    mean = x.mean(axis=0)
    # 1. Plain PCA to pre_dims: directions the train split barely spans stay out.
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((x - mean).T))
    keep = min(params.pre_dims, x.shape[1], len(x) - 1)
    basis = eigenvectors[:, np.argsort(eigenvalues)[::-1][:keep]]
    # 2. Whiten the scatter of matching-pair differences (shrunk: a few thousand pairs).
    scatters = []
    if len(pairs):
        scatters.append(_scatter((x[pairs[:, 0]] - x[pairs[:, 1]]) @ basis))
    if len(views):
        scatters.append(_scatter((x[view_of] - v) @ basis))
    scatter = sum(scatters) / len(scatters)
    mu = float(np.trace(scatter)) / len(scatter)
    scatter = (1.0 - params.shrinkage) * scatter + params.shrinkage * mu * np.eye(len(scatter))
    values, vectors = np.linalg.eigh(scatter)
    whiten = vectors @ np.diag(np.maximum(values, 1e-12) ** -0.5) @ vectors.T
    # 3. Keep the directions of largest spread in the whitened space: between each image and
    # the marks of other brands it is most easily taken for (or between all train images).
    whitened = (x - mean) @ basis @ whiten
    if params.hard_negatives:
        labels = np.asarray(groups, dtype=object)
        spread_matrix = _hard_negative_scatter(whitened, labels, params.hard_negatives)
    else:
        spread_matrix = np.cov(whitened.T)
    spread, rotation = np.linalg.eigh(spread_matrix)
    dims = min(params.dims, len(spread))
    rotation = rotation[:, np.argsort(spread)[::-1][:dims]]
    projection = basis @ whiten @ rotation  # (D, dims)
    return PCAModel(
        mean=mean.astype(np.float32),
        components=np.ascontiguousarray(projection.T, dtype=np.float32),
        scale=np.ones(dims, np.float32),
        power=params.power,
        fit={
            "train_rows": len(x),
            "group_pairs": len(pairs),
            "view_pairs": len(views),
            "hard_negatives": params.hard_negatives,
            "shrinkage": params.shrinkage,
        },
    )
