"""Issue 16, fifteenth round: do other input sizes, or a multi-scale descriptor, find more?

Two levers from the issue's list that had not been measured on the current build (trim
framing, text masking, σ 2 input blur, the shipped learned whitening):

- **input size**: the shipped network embeds at 224 px; a 128-px-trained model found copies
  better at 160–192 px in the fourth round, before the blur existed;
- **multi-scale descriptors**: each image embedded at several sizes, the L2-normalised pooled
  features averaged (Radenović et al.), on both sides — twice or three times the embedding.

Every image of the copy set (which holds the whole bench) is prepared as the build prepared it
(the store's text masks), framed at each size with the blur scaled to the same share of the
side (σ 2 at 224), embedded, projected with the store's projection (fitted at 224: a handicap
for other sizes, named in the notes) and scored leave-one-out without α-DBA, per split, for
both tasks as ``probe_hubness.py`` scores them. ``group``/``edit`` are labels only.

    PYTHONPATH=$PWD:$PWD/bench .venv/bin/python bench/probe_multiscale.py --store C \\
        --splits-from S [--sizes 160,192,224,256,288]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_blur import masked_images
from bench_data import COPY_SET, print_and_write, rounded
from probe_hubness import copy_set_tasks, split_masks, split_members
from tqdm import tqdm

from logosim.core.store import ArtifactStore
from logosim.embed.embedder import Embedder
from logosim.embed.normalize import to_array, to_model_input
from logosim.embed.params import DEFAULT_BLUR, EmbedParams
from logosim.embed.pca import Descriptors
from logosim.search.metrics import leave_one_out

RESULTS = Path(__file__).parent / "results"
KEYS = ("recall@1", "recall@10", "map", "nar", "queries")
BATCH = 64
BASE = 224


def unit_features(images: list, size: int) -> np.ndarray:
    """L2-normalised pooled features at ``size`` px, blurred as the build blurs at 224."""
    params = EmbedParams(image_size=size, blur=DEFAULT_BLUR * size / BASE, local=False)
    embedder = Embedder(params)
    blocks = []
    for start in tqdm(range(0, len(images), BATCH), desc=f"{size} px", mininterval=30):
        part = images[start : start + BATCH]
        inputs = [to_array(to_model_input(im, size, params.normalize, params.blur)) for im in part]
        blocks.append(embedder.embed_pixels(inputs))
    features = np.concatenate(blocks).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="A built copy-set store (text-masked).")
    parser.add_argument("--splits-from", required=True)
    parser.add_argument("--sizes", default="160,192,224,256,288")
    parser.add_argument("--combos", default="192+224,224+256,224+288,160+224+288,192+224+256")
    parser.add_argument("--splits", default="val,test,all")
    parser.add_argument("--name", default="v3-blur")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    rows = pq.read_table(COPY_SET, columns=["id", "image"]).to_pylist()
    ids = [r["id"] for r in rows]
    describe = Descriptors.load(store, store.load_verified("pca/pca.npz"))
    images = masked_images(store, rows)
    features = {size: unit_features(images, size) for size in map(int, args.sizes.split(","))}
    del images

    members = split_members(args.splits_from, args.splits)
    tasks = {
        task: (task_rows, groups, split_masks(members, keys))
        for task, (task_rows, groups, keys) in copy_set_tasks(ids).items()
    }
    variants = {str(size): [size] for size in features}
    variants |= {combo: [int(s) for s in combo.split("+")] for combo in args.combos.split(",")}
    report: dict = {"store": args.store, "projection": "the store's (fitted at 224)"}
    for name, sizes in variants.items():
        if not set(sizes) <= set(features):
            continue
        x = describe(np.mean([features[s] for s in sizes], axis=0)).astype(np.float32)
        entry = report.setdefault(name, {})
        for task, (task_rows, groups, masks) in tasks.items():
            for split, mask in masks.items():
                figures = leave_one_out(x[task_rows], groups, mask)
                entry[f"{task} {split}"] = rounded(figures, KEYS)
    print_and_write(report, RESULTS / f"multiscale_{args.name}.json")


if __name__ == "__main__":
    main()
