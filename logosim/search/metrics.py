"""Retrieval quality: leave-one-out R@K, mAP, NAR and P@10; recall@K on labelled pairs.

Definitions follow the dev benchmark's README: every image with a group (that has another
member) is a query, the gallery is every other image, the relevant items are the other
members of its group. Ranks are 1-based over the gallery; ties are broken by position.
Similarities are computed exactly, in blocks of queries, so memory stays ~``block_cells``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

METRIC_KEYS = (
    "recall@1",
    "recall@10",
    "recall@100",
    "map",
    "nar",
    "precision@10",
    "queries",
    "gallery",
)


def group_codes(groups: Sequence[str | None]) -> np.ndarray:
    """Integer code per item; -1 for no group ("" or None)."""
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(g, len(codes)) if g else -1 for g in groups], dtype=np.int64)


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def query_rows(codes: np.ndarray, query_mask: np.ndarray | None = None) -> np.ndarray:
    """Rows that are queries: grouped items with another member (and in ``query_mask``)."""
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, int)
    eligible = (codes >= 0) & (counts[np.maximum(codes, 0)] >= 2)
    if query_mask is not None:
        eligible &= np.asarray(query_mask, dtype=bool)
    return np.flatnonzero(eligible)


def ranks_from_scores(scores: np.ndarray, queries: np.ndarray, codes: np.ndarray) -> list:
    """Sorted 1-based ranks of each query's relevant items, from its row of ``scores``
    against every item (``scores`` is overwritten: a query is not in its own gallery)."""
    scores[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :-1]  # self sorts last: drop it
    relevant = codes[order] == codes[queries][:, None]
    rows, cols = np.nonzero(relevant)
    return np.split(cols + 1, np.searchsorted(rows, np.arange(1, len(queries))))


def relevant_ranks(
    vectors: np.ndarray,
    groups: Sequence[str | None],
    block_cells: int = 1 << 23,
    query_mask: np.ndarray | None = None,
    twin: np.ndarray | None = None,
) -> tuple[list[np.ndarray], int]:
    """For each query, the sorted 1-based ranks of its relevant items; and the gallery size.

    Queries are the grouped items with another member, restricted to ``query_mask`` when
    given (e.g. only images the PCA never saw: the out-of-sample protocol). With ``twin``
    (a second descriptor per item, same rows), a pair's similarity is the best of the four
    descriptor pairings.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    y = None if twin is None else np.ascontiguousarray(twin, dtype=np.float32)
    codes = group_codes(groups)
    n_items = len(x)
    queries = query_rows(codes, query_mask)
    ranks: list[np.ndarray] = []
    block = max(1, block_cells // max(n_items, 1))
    for part in _blocks(len(queries), block):
        q = queries[part]
        scores = x[q] @ x.T
        if y is not None:
            for a, b in ((x, y), (y, x), (y, y)):
                np.maximum(scores, a[q] @ b.T, out=scores)
        ranks.extend(ranks_from_scores(scores, q, codes))
    return ranks, n_items - 1


def summarize(ranks: list[np.ndarray], gallery: int) -> dict[str, float | int]:
    """The benchmark's figures from the ranks of relevant items per query."""
    if not ranks:
        return dict.fromkeys(METRIC_KEYS, 0) | {"queries": 0, "gallery": gallery}
    first = np.array([r[0] for r in ranks])
    ap = [float(np.mean(np.arange(1, len(r) + 1) / r)) for r in ranks]
    nar = [(float(r.sum()) - len(r) * (len(r) + 1) / 2) / (len(r) * gallery) for r in ranks]
    p10 = [float((r <= 10).sum()) / 10 for r in ranks]
    return {
        "recall@1": float(np.mean(first <= 1)),
        "recall@10": float(np.mean(first <= 10)),
        "recall@100": float(np.mean(first <= 100)),
        "map": float(np.mean(ap)),
        "nar": float(np.mean(nar)),
        "precision@10": float(np.mean(p10)),
        "queries": len(ranks),
        "gallery": gallery,
    }


def leave_one_out(
    vectors: np.ndarray,
    groups: Sequence[str | None],
    query_mask: np.ndarray | None = None,
    twin: np.ndarray | None = None,
) -> dict[str, float | int]:
    """R@1/@10/@100, mAP, NAR, P@10 with every grouped image (in ``query_mask``, when
    given) as a query against all other images (exact search; ``twin``: see
    ``relevant_ranks``)."""
    ranks, gallery = relevant_ranks(vectors, groups, query_mask=query_mask, twin=twin)
    return summarize(ranks, gallery)


def pair_recall(
    vectors: np.ndarray,
    ids: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    ks: Sequence[int] = (1, 10, 100),
    block_cells: int = 1 << 23,
) -> dict[str, float | int]:
    """Recall@K on known-similar pairs: b is in a's top K (gallery = all but a), both ways."""
    position = {value: i for i, value in enumerate(ids)}
    directed = [
        (position[a], position[b]) for a, b in pairs if a in position and b in position and a != b
    ]
    directed += [(b, a) for a, b in directed]
    if not directed:
        return {f"pair_recall@{k}": 0.0 for k in ks} | {"pairs": 0}
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    qa, qb = np.array(directed).T
    ranks = np.empty(len(qa), dtype=np.int64)
    for part in _blocks(len(qa), max(1, block_cells // len(x))):
        scores = x[qa[part]] @ x.T
        target = scores[np.arange(len(scores)), qb[part]]
        scores[np.arange(len(scores)), qa[part]] = -np.inf
        ranks[part] = 1 + (scores > target[:, None]).sum(axis=1)
    return {f"pair_recall@{k}": float(np.mean(ranks <= k)) for k in ks} | {
        "pairs": len(directed) // 2
    }
