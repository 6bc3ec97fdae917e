"""Stage 2: re-rank the ANN candidates by a composite of four explainable terms.

    score = Σ_t w_t · s_t / Σ_t w_t   over the terms t present for that candidate

- **global**: the ANN's cosine (the best over the query's test-time variants, below);
- **spatial**: agreement of local descriptors (``logosim.embed.local_features``): each query
  patch's best match among the candidate's patches, averaged with the query's ink weights,
  and the same from the candidate's side (symmetric chamfer), or best-region matching over
  the R-MAC regions;
- **text**: phonetic similarity of the word elements (``logosim.search.phonetic``);
- **colour**: cosine of the Hellinger colour histograms.

A term that cannot be computed for a candidate (no stored local descriptors, no text on either
side) is *absent*, not zero: the remaining weights are renormalised, so a candidate is never
dropped or punished for missing data. Every hit carries its component scores.

Test-time variants: only the query is embedded at query time, so the query can afford a few
extra forward passes (mirror image, 90° turns). Each candidate takes the variant whose visual
score (global + spatial) is best: a mirrored or rotated copy matches its original.

Pure numpy over (K, slots, 64) fp16 blocks: 1,000 candidates in a few ms on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from logosim.embed.local_features import Layout

TERMS = ("global", "spatial", "text", "colour")
Spatial = Literal["patches", "regions", "both"]
Variant = Literal["flip", "rot90", "rot270", "rot180", "crops"]


class CompositeParams(BaseModel):
    """Stage-2 settings (a form in the Prefect UI and the evaluate flow)."""

    enabled: bool = Field(
        False,
        description="Re-rank the ANN candidates by the composite score (off: it has not yet "
        "measured a gain on both benches, notes/issue-12-rerank.md).",
    )
    weight_global: float = Field(0.50, ge=0.0, description="Weight of the ANN (global) cosine.")
    weight_spatial: float = Field(0.35, ge=0.0, description="Weight of local-feature agreement.")
    weight_text: float = Field(0.10, ge=0.0, description="Weight of phonetic text similarity.")
    weight_colour: float = Field(0.05, ge=0.0, description="Weight of colour similarity.")
    spatial: Spatial = Field("patches", description="patches (chamfer) | regions | both.")
    variants: list[Variant] = Field(
        default_factory=lambda: ["flip"],
        description="Extra query variants embedded at query time: flip, rot90, rot270, "
        "rot180, crops (a wide or tall query's two end squares: a mark beside its words).",
    )

    def weights(self) -> np.ndarray:
        return np.array(
            [self.weight_global, self.weight_spatial, self.weight_text, self.weight_colour],
            dtype=np.float32,
        )


Profile = Literal["default", "copies"]
PROFILES: dict[str, dict] = {
    # the starting point (0.50 global, 0.35 spatial patches, 0.10 text, 0.05 colour)
    "default": {},
    # copy detection: fitted on train-split queries of both dev benches (bench_rerank.py,
    # bench/results/rerank_logo.json). Test split, logo weights: copies R@1 0.325 → 0.383,
    # brands 0.591 → 0.564. It finds edited copies of a mark and costs cross-design brands.
    "copies": {
        "weight_global": 0.50,
        "weight_spatial": 0.05,
        "spatial": "regions",
        "weight_text": 0.10,
        "weight_colour": 0.10,
        "variants": ["flip", "rot90", "rot270"],
    },
}


def profile(name: Profile, **changes) -> CompositeParams:
    """A named set of stage-2 settings, switched on, with ``changes`` on top."""
    if name not in PROFILES:
        raise ValueError(f"unknown re-rank profile {name!r}: one of {', '.join(PROFILES)}")
    return CompositeParams(enabled=True, **{**PROFILES[name], **changes})


@dataclass
class Scored:
    """Candidates in their new order with the composite and each term (NaN = absent)."""

    order: np.ndarray  # positions into the input candidates, best first
    score: np.ndarray  # (K,) composite, in the new order
    terms: dict[str, np.ndarray] = field(default_factory=dict)  # term → (K,), new order
    variant: np.ndarray | None = None  # which query variant won, per candidate


def chamfer(
    query: np.ndarray, query_ink: np.ndarray, cands: np.ndarray, cand_ink: np.ndarray
) -> np.ndarray:
    """Symmetric ink-weighted chamfer similarity.

    query (V, P, d), query_ink (V, P); cands (K, P, d), cand_ink (K, P) → (V, K).
    """
    v, p, d = query.shape
    k, pc, _ = cands.shape
    sims = query.reshape(v * p, d) @ cands.reshape(k * pc, d).T  # (V·P, K·P)
    sims = sims.reshape(v, p, k, pc)
    q_best = sims.max(axis=3)  # (V, P, K): each query patch's best candidate patch
    c_best = sims.max(axis=1)  # (V, K, P): each candidate patch's best query patch
    qw = query_ink / np.maximum(query_ink.sum(axis=1, keepdims=True), 1e-6)
    cw = cand_ink / np.maximum(cand_ink.sum(axis=1, keepdims=True), 1e-6)
    forward = np.einsum("vpk,vp->vk", q_best, qw)
    backward = np.einsum("vkp,kp->vk", c_best, cw)
    return 0.5 * (forward + backward)


def best_region(query: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """Each query region's best candidate region, averaged: (V, R, d), (K, R, d) → (V, K)."""
    v, r, d = query.shape
    k, rc, _ = cands.shape
    sims = (query.reshape(v * r, d) @ cands.reshape(k * rc, d).T).reshape(v, r, k, rc)
    return sims.max(axis=3).mean(axis=1)


def _ink(blocks: np.ndarray, layout: Layout) -> np.ndarray:
    ink = blocks[:, layout.ink, : min(layout.patches, blocks.shape[-1])].astype(np.float32)
    ink = np.pad(ink, ((0, 0), (0, layout.patches - ink.shape[1])), constant_values=1.0)
    return np.maximum(ink, 0.02)  # an empty cell still counts a little (all-white images)


def spatial_scores(
    query: np.ndarray, cands: np.ndarray, layout: Layout, method: Spatial
) -> np.ndarray:
    """(V, slots, d) query blocks vs (K, slots, d) candidate blocks → (V, K)."""
    q = query.astype(np.float32)
    c = cands.astype(np.float32)
    parts = []
    if method in ("patches", "both"):
        ps = layout.patch_slice
        parts.append(chamfer(q[:, ps], _ink(q, layout), c[:, ps], _ink(c, layout)))
    if method in ("regions", "both"):
        rs = layout.region_slice
        parts.append(best_region(q[:, rs], c[:, rs]))
    return np.mean(parts, axis=0)


def colour_scores(query: np.ndarray, cands: np.ndarray, layout: Layout) -> np.ndarray:
    """(slots, d) query block (any variant: colour ignores turns) vs (K, …) → (K,)."""
    return cands[:, layout.colour].astype(np.float32) @ query[layout.colour].astype(np.float32)


def composite(
    global_scores: np.ndarray,
    params: CompositeParams,
    *,
    spatial: np.ndarray | None = None,
    colour: np.ndarray | None = None,
    text: np.ndarray | None = None,
) -> Scored:
    """Order candidates by the composite score.

    ``global_scores`` and ``spatial`` are (V, K) over query variants (or (K,)); ``colour`` and
    ``text`` are (K,). NaN in any term marks it absent for that candidate.
    """
    g = np.atleast_2d(np.asarray(global_scores, dtype=np.float32))
    v, k = g.shape
    w = params.weights()
    s = np.full((v, k), np.nan, np.float32) if spatial is None else np.atleast_2d(spatial)
    s = np.broadcast_to(s, (v, k))
    # the best variant per candidate by its visual score (absent spatial: global alone)
    ws = np.where(np.isnan(s), 0.0, w[1])
    visual = (w[0] * g + ws * np.nan_to_num(s)) / np.maximum(w[0] + ws, 1e-12)
    best = np.argmax(visual, axis=0)
    cols = np.arange(k)
    terms = np.full((len(TERMS), k), np.nan, dtype=np.float32)
    terms[0] = g[best, cols]
    terms[1] = s[best, cols]
    if text is not None:
        terms[2] = text
    if colour is not None:
        terms[3] = colour
    present = ~np.isnan(terms)
    weight = np.where(present, w[:, None], 0.0)
    total = weight.sum(axis=0)
    score = np.where(
        total > 0, (weight * np.nan_to_num(terms)).sum(axis=0) / np.maximum(total, 1e-12), terms[0]
    )
    order = np.argsort(-score, kind="stable")
    return Scored(
        order=order,
        score=score[order],
        terms={name: terms[i][order] for i, name in enumerate(TERMS)},
        variant=best[order],
    )
