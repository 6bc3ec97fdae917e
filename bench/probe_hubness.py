"""Issue 16, fourteenth round: does a hubness correction of the score find more copies?

In a high-dimensional space some items ("hubs") sit close to very many others and crowd the
top of every list; the copy-set misses (bench/diagnose_copy_misses.py) look like that — an
original's own icon collection, or other copies with the same edit. The standard correction
(CSLS, Conneau et al. 2018) ranks gallery item g for query q by

    s(q, g) - beta * r(g),    r(g) = mean of g's k highest similarities to the collection

(a query-only term does not change its ranking). r(g) is computed with the query left out of
the collection, as a search with an outside query sees it: where q is among g's k nearest, it
is swapped for g's (k+1)-th. A second store (``--second-store``, the same images embedded by
other weights) is scored as a score average of the two descriptors, to see how far an ensemble
goes with and without the correction. Also reports the k-occurrence skewness (how many lists
each item appears in; 0 = no hubs) of the collection.

Reads built stores' live vectors (as evaluate scores them): the copy-set store holds the
whole bench as well, so the brand task is scored on its bench rows (gallery = bench) and the
copy task on all rows. ``group``/``edit`` are labels only. Prints and writes
bench/results/hubness_<name>.json.

    PYTHONPATH=$PWD:$PWD/bench .venv/bin/python bench/probe_hubness.py --store C \
        --splits-from S --name v3-blur [--second-store C2] [--settings 100:1,50:1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_data import COPY_SET, DEV_BENCH, print_and_write, rounded
from figures_by_split import _columns, live_vectors
from scipy.stats import skew

from logosim.core.store import ArtifactStore
from logosim.data.splits import load_split_ids
from logosim.search.metrics import group_codes, query_rows, ranks_from_scores, summarize

RESULTS = Path(__file__).parent / "results"
KEYS = ("recall@1", "recall@10", "map", "nar", "queries")
BLOCK = 512


class Neighbours:
    """Each item's ``depth`` nearest other items (similarities, descending) and, for each
    item, the lists it appears in (to leave a query out of r)."""

    def __init__(self, x: np.ndarray, depth: int) -> None:
        n = len(x)
        self.sims = np.empty((n, depth), np.float32)
        self.rows = np.empty((n, depth), np.int64)
        for start in range(0, n, BLOCK):
            scores = x[start : start + BLOCK] @ x.T
            part = np.arange(len(scores))
            scores[part, start + part] = -np.inf
            top = np.argpartition(-scores, depth, axis=1)[:, :depth]
            sims = np.take_along_axis(scores, top, 1)
            order = np.argsort(-sims, axis=1)
            self.sims[start : start + BLOCK] = np.take_along_axis(sims, order, 1)
            self.rows[start : start + BLOCK] = np.take_along_axis(top, order, 1)
        flat = np.argsort(self.rows.ravel(), kind="stable")
        starts = np.searchsorted(self.rows.ravel()[flat], np.arange(n + 1))
        self._lists = [flat[starts[j] : starts[j + 1]] for j in range(n)]

    def appearances(self, item: int, k: int) -> np.ndarray:
        """The gallery rows whose k nearest include ``item``."""
        entries = self._lists[item]
        return (entries // self.sims.shape[1])[entries % self.sims.shape[1] < k]

    def skewness(self, k: int) -> float:
        return float(skew(np.bincount(self.rows[:, :k].ravel(), minlength=len(self.rows))))


def corrected_ranks(
    x: np.ndarray, groups: list, mask: np.ndarray | None, near: Neighbours, k: int, beta: float
) -> dict:
    """The benchmark's figures, ranking by s(q, g) - beta * r(g) with q left out of r(g)."""
    codes = group_codes(groups)
    queries = query_rows(codes, mask)
    r_sum = near.sims[:, :k].sum(axis=1)
    kth_next = near.sims[:, k]
    ranks = []
    for start in range(0, len(queries), BLOCK):
        block = queries[start : start + BLOCK]
        scores = x[block] @ x.T
        if beta:
            r = np.broadcast_to(r_sum, scores.shape).copy()
            for row, query in enumerate(block):
                lists = near.appearances(query, k)
                r[row, lists] += kth_next[lists] - scores[row, lists]
            scores -= beta * r / k
        ranks.extend(ranks_from_scores(scores, block, codes))
    return rounded(summarize(ranks, len(x) - 1), KEYS)


def copy_set_tasks(ids: list[str], copy_set: str = COPY_SET) -> dict[str, tuple]:
    """The two tasks a copy-set store's rows ``ids`` are scored on, each as (its rows, their
    groups, the split key of each row): ``copies`` on every row (a copy belongs to its source's
    split), ``bench`` on the bench rows with their brand groups (gallery = bench)."""
    labels = _columns(copy_set, ("group", "edit"))
    copy_groups = [labels["group"][i] or None for i in ids]
    bench_rows = np.flatnonzero([not labels["edit"][i] for i in ids])
    brand = _columns(DEV_BENCH, ("group",))["group"]
    bench_ids = [ids[i] for i in bench_rows]
    return {
        "copies": (np.arange(len(ids)), copy_groups, copy_groups),
        "bench": (bench_rows, [brand[i] or None for i in bench_ids], bench_ids),
    }


def split_members(splits_from: str, splits: str) -> dict[str, set[str] | None]:
    """The ids of each of the comma-separated ``splits`` (None for ``all``)."""
    store = ArtifactStore(splits_from)
    return {s: None if s == "all" else load_split_ids(store, s) for s in splits.split(",")}


def split_masks(members: dict[str, set[str] | None], keys: list) -> dict[str, np.ndarray | None]:
    """For each split, which rows (by their split key) belong to it; None for ``all``."""
    return {
        split: None if ids is None else np.array([k in ids for k in keys])
        for split, ids in members.items()
    }


def vectors_in_order(path: str, order: list[str]) -> np.ndarray:
    """A store's live vectors in the row order ``order`` (the same images, other weights)."""
    ids, vectors = live_vectors(ArtifactStore(path))
    row = {image: i for i, image in enumerate(ids)}
    return vectors[[row[i] for i in order]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="A built copy-set store.")
    parser.add_argument("--second-store", help="The copy set built with other weights.")
    parser.add_argument("--splits-from", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--settings", default="100:1,50:1", help="k:beta pairs to score.")
    parser.add_argument("--splits", default="val,test,all")
    parser.add_argument("--copy-set", default=COPY_SET)
    args = parser.parse_args()
    settings = [(int(k), float(b)) for k, b in (s.split(":") for s in args.settings.split(","))]

    ids, x = live_vectors(ArtifactStore(args.store))
    if args.second_store:  # a score average: the two unit descriptors side by side
        x = np.hstack([x, vectors_in_order(args.second_store, ids)]) / np.float32(np.sqrt(2))
    depth = max(k for k, _ in settings) + 1
    report: dict = {"store": args.store, "second store": args.second_store, "settings": {}}
    members = split_members(args.splits_from, args.splits)
    for task, (rows, groups, keys) in copy_set_tasks(ids, args.copy_set).items():
        vectors = x[rows]
        masks = split_masks(members, keys)
        near = Neighbours(vectors, depth)
        report[f"{task} k-occurrence skewness (k=10)"] = round(near.skewness(10), 3)
        for k, beta in [(0, 0.0), *settings]:
            entry = report["settings"].setdefault("plain" if not beta else f"k{k} beta{beta:g}", {})
            for split, mask in masks.items():
                entry[f"{task} {split}"] = corrected_ranks(vectors, groups, mask, near, k, beta)
    print_and_write(report, RESULTS / f"hubness_{args.name}.json")


if __name__ == "__main__":
    main()
