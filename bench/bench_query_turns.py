"""Query-side quarter turns (issue 16): is a query searched in four orientations better?

Each query of one split is embedded as the searcher would (its words painted out when the
build masked text, the build's framing, PCA, query expansion) at 0°, 90°, 180° and 270°; a
gallery image's score is the best of the four. Leave-one-out against the store's live index
vectors, as ``figures_by_split.py`` scores them (bench: queries from the split's groups;
copy set: copies and originals of the split's sources). Prints and writes JSON.

    flock /tmp/logosim-heavy.lock env PYTHONPATH=$PWD .venv/bin/python \\
        bench/bench_query_turns.py --store /tmp/t16/stores/v3-mtl2-copy --kind copy --split val
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_data import COPY_SET, DEV_BENCH, print_and_write, rounded
from tqdm import tqdm

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.splits import load_split_ids
from logosim.index.logo_index import LogoIndex
from logosim.search.evaluate import stored_vectors
from logosim.search.metrics import group_codes, query_rows, ranks_from_scores, summarize
from logosim.search.searcher import Searcher

TURNS = (0, 90, 180, 270)
RESULTS = Path(__file__).parent / "results"


def turned_vectors(searcher: Searcher, images: list, batch: int = 32) -> dict[int, np.ndarray]:
    out: dict[int, list[np.ndarray]] = {turn: [] for turn in TURNS}
    for start in tqdm(range(0, len(images), batch), unit="batch", desc="queries"):
        part = [decode_image(data) for data in images[start : start + batch]]
        for turn in TURNS:
            turned = [im.rotate(turn, expand=True, fillcolor="white") for im in part]
            features = searcher.embedder.embed_images(searcher.as_indexed(turned))
            out[turn].append(searcher.index.expand(searcher.describe(features)))
    return {turn: np.concatenate(v).astype(np.float32) for turn, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--kind", choices=("bench", "copy"), required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--splits-from", default="/tmp/devbench")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    table = pq.read_table(DEV_BENCH if args.kind == "bench" else COPY_SET).to_pylist()
    by_id = {row["id"]: row for row in table}
    ids, gallery = stored_vectors(store, LogoIndex.load(store).manifest)
    gallery = np.ascontiguousarray(gallery, np.float32)
    groups = [by_id[i]["group"] or None for i in ids]
    codes = group_codes(groups)
    members = load_split_ids(ArtifactStore(args.splits_from), args.split)
    # Bench queries belong to a split by image, copy-set queries by their source (the group).
    keys = ids if args.kind == "bench" else groups
    queries = query_rows(codes, np.array([key in members for key in keys]))
    turned = turned_vectors(Searcher(store), [by_id[ids[q]]["image"] for q in queries])

    def figures(scores: np.ndarray) -> dict:
        return rounded(summarize(ranks_from_scores(scores, queries, codes), len(ids) - 1))

    report = {
        "queries": len(queries),
        "as indexed": figures(gallery[queries] @ gallery.T),
        "query as searched": figures(turned[0] @ gallery.T),
        "best of four turns": figures(np.maximum.reduce([v @ gallery.T for v in turned.values()])),
    }
    print_and_write(report, RESULTS / f"query-turns-{args.kind}-{args.split}.json")


if __name__ == "__main__":
    main()
