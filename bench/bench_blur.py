"""Input blur sweep (issue 16, tenth round): which Gaussian σ on the network input finds marks
and copies best, with a built store's masks and projection held fixed?

Every image of the store's source is prepared as the build prepared it (stored text mask,
the build's framing), blurred by each σ, embedded, projected with the store's ``pca/pca.npz``
and scored leave-one-out (no α-DBA) on one split's queries, as ``figures_by_split.py`` picks
them (bench: queries from the split's groups; copy set: copies and originals of the split's
sources). Prints and writes JSON.

    flock /tmp/logosim-heavy.lock env PYTHONPATH=$PWD .venv/bin/python bench/bench_blur.py \\
        --store /tmp/t16/stores/v3-lwh-bench --kind bench --sigmas 0,1,1.5,2,2.5,3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_data import COPY_SET, DEV_BENCH, print_and_write, rounded
from tqdm import tqdm

from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.splits import load_split_ids
from logosim.embed.embedder import Embedder
from logosim.embed.normalize import to_model_input
from logosim.embed.params import EmbedParams
from logosim.embed.pca import Descriptors
from logosim.preprocess.mask_store import MaskReader, masked_prepare
from logosim.preprocess.text_mask import MaskParams
from logosim.search.metrics import group_codes, query_rows, ranks_from_scores, summarize

RESULTS = Path(__file__).parent / "results"
BATCH = 64


def masked_images(store: ArtifactStore, rows: list[dict]) -> list:
    """Each image decoded with its stored text mask painted in, not yet framed."""
    prepare = masked_prepare(store, MaskReader.of_store(store).manifests, MaskParams())
    return [
        prepare(LogoRecord(id=row["id"], ref=row["id"], row=0), decode_image(row["image"]))
        for row in tqdm(rows, desc="decode", unit="img", mininterval=30)
    ]


def framed_inputs(store: ArtifactStore, rows: list[dict], embedder: Embedder) -> list:
    """Each image with its stored text mask applied and framed as the build framed it."""
    return [
        to_model_input(image, embedder.image_size, embedder.normalize)
        for image in masked_images(store, rows)
    ]


def blurred_features(embedder: Embedder, inputs: list, sigma: float) -> np.ndarray:
    """Network features of the framed squares blurred by ``sigma`` (not framed again)."""
    blocks = []
    for start in tqdm(range(0, len(inputs), BATCH), desc=f"σ {sigma:g}", mininterval=30):
        part = inputs[start : start + BATCH]
        blurred = [to_model_input(x, embedder.image_size, "pad", sigma) for x in part]
        blocks.append(embedder.embed_pixels([np.asarray(x, dtype=np.uint8) for x in blurred]))
    return np.concatenate(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="A built store (text-masked).")
    parser.add_argument("--kind", choices=("bench", "copy"), required=True)
    parser.add_argument("--sigmas", default="0,1,1.5,2,2.5,3")
    parser.add_argument("--split", default="val")
    parser.add_argument("--splits-from", default="/tmp/devbench")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    rows = pq.read_table(DEV_BENCH if args.kind == "bench" else COPY_SET).to_pylist()
    ids = [r["id"] for r in rows]
    groups = [r["group"] or None for r in rows]
    codes = group_codes(groups)
    members = load_split_ids(ArtifactStore(args.splits_from), args.split)
    keys = ids if args.kind == "bench" else groups  # copy-set queries belong by their source
    queries = query_rows(codes, np.array([key in members for key in keys]))
    describe = Descriptors.load(store, store.load_verified("pca/pca.npz"))
    # blur 0 here: the sweep applies its own σ to the framed squares
    embedder = Embedder(EmbedParams(blur=0))
    inputs = framed_inputs(store, rows, embedder)
    report: dict = {"store": args.store, "split": args.split, "queries": len(queries)}
    for sigma in (float(s) for s in args.sigmas.split(",")):
        vectors = describe(blurred_features(embedder, inputs, sigma)).astype(np.float32)
        scores = vectors[queries] @ vectors.T
        figures = summarize(ranks_from_scores(scores, queries, codes), len(ids) - 1)
        report[f"sigma {sigma:g}"] = rounded(figures, ("recall@1", "recall@10", "map", "nar"))
    print_and_write(report, RESULTS / f"blur-{args.kind}-{args.split}.json")


if __name__ == "__main__":
    main()
