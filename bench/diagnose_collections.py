"""Diagnosis for issue 16: when the top hit is wrong, is it from the query's own icon
collection (drawing style) more often than when it is right?

Reads a built dev-bench store (the index's live vectors, as evaluate scores them) and the
bench's ``collection`` column — for diagnosis only, never an input. Prints a table for all
grouped queries and for the test split's, plus R@1 per collection; writes
bench/results/collections_<name>.json.

    .venv/bin/python bench/diagnose_collections.py --store /tmp/devbench --name baseline
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_data import DEV_BENCH, print_and_write

from logosim.core.store import ArtifactStore
from logosim.data.splits import load_split_ids
from logosim.index.logo_index import LogoIndex
from logosim.search.evaluate import stored_vectors

RESULTS = Path(__file__).parent / "results"


def top_hits(vectors: np.ndarray, queries: np.ndarray, block: int = 512) -> np.ndarray:
    hits = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        q = queries[start : start + block]
        scores = vectors[q] @ vectors.T
        scores[np.arange(len(q)), q] = -np.inf
        hits[start : start + block] = scores.argmax(axis=1)
    return hits


def table(
    queries: np.ndarray, hits: np.ndarray, groups: np.ndarray, collections: np.ndarray
) -> dict:
    right = groups[hits] == groups[queries]
    same = collections[hits] == collections[queries]
    distractor = groups[hits] == ""
    wrong = ~right
    return {
        "queries": len(queries),
        "recall@1": round(float(right.mean()), 4),
        "right: top hit from the query's collection": round(float(same[right].mean()), 4),
        "wrong: top hit from the query's collection": round(float(same[wrong].mean()), 4),
        "wrong: top hit is a distractor (no group)": round(float(distractor[wrong].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--name", default="baseline")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    ids, vectors = stored_vectors(store, LogoIndex.load(store).manifest)
    bench = pq.read_table(DEV_BENCH, columns=["id", "group", "collection"])
    columns = [bench.column(c).to_pylist() for c in ("id", "group", "collection")]
    meta = {i: (g, c) for i, g, c in zip(*columns, strict=True)}
    groups = np.array([meta[i][0] or "" for i in ids], dtype=object)
    collections = np.array([meta[i][1] for i in ids], dtype=object)
    sizes = Counter(groups.tolist())
    grouped = np.array([g != "" and sizes[g] >= 2 for g in groups])
    test = load_split_ids(store, "test")
    in_test = np.array([i in test for i in ids])
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    report: dict = {}
    for name, mask in (("all grouped queries", grouped), ("test split", grouped & in_test)):
        queries = np.flatnonzero(mask)
        hits = top_hits(x, queries)
        report[name] = table(queries, hits, groups, collections)
        if name == "all grouped queries":
            right = groups[hits] == groups[queries]
            report["recall@1 by collection"] = {
                c: {"queries": int(m.sum()), "recall@1": round(float(right[m].mean()), 4)}
                for c in sorted(set(collections[queries]))
                if (m := collections[queries] == c).any()
            }
    print_and_write(report, RESULTS / f"collections_{args.name}.json")


if __name__ == "__main__":
    main()
