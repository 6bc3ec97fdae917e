"""Leave-one-out metrics with stage-2 re-ranking (``logosim evaluate --rerank``).

Same protocol and metric keys as ``metrics.leave_one_out``: every grouped image queries all
the others. The top K by the stored vectors (exact) are re-ordered by the composite score
from the stored local descriptors (the query's own block is read from the store too: no
network runs, so query variants — mirror, turns — are not evaluated here; bench_rerank.py
measures them); ranks beyond K keep the global order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from logosim.search.composite import CompositeParams
from logosim.search.local import LocalTable
from logosim.search.metrics import group_codes, summarize
from logosim.search.stage2 import rerank_candidates


def reranked_leave_one_out(
    vectors: np.ndarray,
    groups: Sequence[str | None],
    ids: Sequence[str],
    local: LocalTable,
    params: CompositeParams,
    query_mask: np.ndarray | None = None,
    k: int = 1000,
) -> dict[str, float | int]:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    codes = group_codes(groups)
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, int)
    eligible = (codes >= 0) & (counts[np.maximum(codes, 0)] >= 2)
    if query_mask is not None:
        eligible &= np.asarray(query_mask, dtype=bool)
    blocks, ok = local.gather(list(ids))
    ranks = []
    for q in np.flatnonzero(eligible):
        sims = x @ x[q]
        sims[q] = -np.inf
        order = np.argsort(-sims, kind="stable")[:-1]
        top = order[:k]
        qb = blocks[q : q + 1] if ok[q] else None
        scored = rerank_candidates(
            sims[top], params, query_blocks=qb, cand_blocks=blocks[top] if qb is not None else None,
            cand_ok=ok[top] if qb is not None else None,
        )  # fmt: skip
        order = np.concatenate([top[scored.order], order[k:]])
        ranks.append(np.flatnonzero(codes[order] == codes[q]) + 1)
    return summarize(ranks, len(x) - 1)
