"""Fit and ship the local-descriptor reduction for a backbone's weights (issue 12).

Local descriptors (7×7 patches and 1+4+9 regions of the last feature map) are reduced to
64-d inside the network graph, by a PCA fitted once on train-split images and shipped in
the package as ``logosim/embed/local_projection_<weights digest>.npz`` (embed chunks run
before a build's own PCA stage, so a per-build fit would need a second network pass).
A backbone without a shipped file gets a seeded random projection (logged). One command:

    .venv/bin/python scripts/fit_local_projection.py --splits-from /tmp/devbench --weights logo

``--splits-from``: a store built from the dev bench (``logosim build --source BENCH
--group-column group --store DIR``); only its **train** split is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.splits import load_split_ids
from logosim.embed.local_features import PROJECTION_FILE, fit_projection
from logosim.embed.models import load_backbone
from logosim.embed.normalize import to_chw, to_model_input
from logosim.embed.params import DEFAULT_MODEL, DEFAULT_WEIGHTS

DEV_BENCH = "/work/shared/bench/logo_bench_dev.parquet"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "logosim" / "embed"


def train_images(source: str, store: Path, count: int, seed: int) -> list[bytes]:
    """``count`` images of the train split, drawn with ``seed`` (ids are only matched)."""
    train = load_split_ids(ArtifactStore(store), "train")
    table = pq.read_table(source, columns=["id", "image"])
    rows = [i for i, key in enumerate(table.column("id").to_pylist()) if key in train]
    chosen = np.sort(np.random.default_rng(seed).choice(rows, min(count, len(rows)), False))
    images = table.column("image")
    return [images[int(i)].as_py() for i in chosen]


@torch.inference_mode()
def feature_maps(images: list[bytes], model: str, weights: str, size: int) -> tuple:
    backbone = load_backbone(model, weights)
    maps = []
    for start in tqdm(range(0, len(images), 32), desc="feature maps", unit="batch"):
        batch = [
            to_chw(to_model_input(decode_image(data), size, "pad"), backbone.mean, backbone.std)
            for data in images[start : start + 32]
        ]
        x = torch.from_numpy(np.stack(batch))
        maps.append(backbone.module.features.forward_features(x).float().numpy())
    return np.concatenate(maps), backbone.weights_digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEV_BENCH)
    parser.add_argument("--splits-from", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images = train_images(args.source, args.splits_from, args.images, args.seed)
    maps, digest = feature_maps(images, args.model, args.weights, args.image_size)
    origin = f"{len(images)} train-split images of {Path(args.source).name} ({args.weights})"
    projection = fit_projection(maps, origin)
    out = PACKAGE_DIR / PROJECTION_FILE.format(digest=digest.replace(":", "-")[:23])
    np.savez(out, **projection.arrays())
    print(f"{out} ({out.stat().st_size / 2**20:.2f} MiB): fitted on {origin}")


if __name__ == "__main__":
    main()
