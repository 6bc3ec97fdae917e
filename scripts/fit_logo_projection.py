"""Fit the learned whitening shipped with the logo weights (issue 16), in one command.

    flock /tmp/logosim-heavy.lock .venv/bin/python scripts/fit_logo_projection.py \\
        --store /tmp/logo-projection

1. Builds the dev bench into ``--store`` with the default pipeline (text masking, trim;
   cached per chunk: a rerun skips what is done) and a collection-fitted PCA; only its raw
   embeddings and its splits are used here.
2. Embeds one register-edit view of every train-split image (the training recipe's edits,
   ``scripts/train_logo_model.py``; seed ``--seed``).
3. Fits learned whitening (``logosim/embed/learned_whitening.py``) on the train split's
   brand-group pairs and image↔view pairs, rotated toward each image's five nearest marks of
   other brands, and writes it, with the weights' sha256, to
   ``logosim/embed/weights/lite0-logo-v3-projection.npz``. Val and test images are not used.

About 8 min on 2 CPU cores (build ~4.5 min, views ~1.5 min, fit ~1 min).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from tqdm import tqdm
from train_logo_model import DEV_BENCH, REGISTER_EDITS

import flows  # noqa: F401  (Prefect defaults before Prefect is imported)
from flows.build import BuildParams, build_flow
from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import load_split_ids
from logosim.embed.embedder import Embedder
from logosim.embed.learned_whitening import LearnedWhiteningParams, fit_learned_whitening
from logosim.embed.params import EmbedParams
from logosim.embed.pca import PCAParams, iter_embeddings
from logosim.embed.weight_files import file_digest, logo_projection_path, logo_weights_path
from logosim.train.augment import AugmentParams, LogoAugment

VIEW_BATCH = 64


def train_features(store: str, manifests: list, train: set[str]) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for chunk_ids, features in iter_embeddings(ArtifactStore(store), manifests):
        keep = np.isin(chunk_ids, list(train))
        ids.extend(chunk_ids[keep].tolist())
        blocks.append(features[keep])
    return ids, np.concatenate(blocks)


def register_views(source: SourceSpec, rows: dict[str, int], seed: int) -> np.ndarray:
    """One register-edit view of each image in ``rows`` (id → feature row), embedded as the
    build embeds (default weights, trim); returned in ``rows`` order."""
    augment = LogoAugment(AugmentParams(p_grayscale=0.3, **REGISTER_EDITS))
    embedder = Embedder(EmbedParams())
    rng = random.Random(seed)
    views = np.zeros((len(rows), embedder.dim), np.float32)
    batch: list = []
    places: list[int] = []

    def flush() -> None:
        views[places] = embedder.embed_images(batch)
        batch.clear()
        places.clear()

    with tqdm(total=len(rows), desc="register-edit views", unit="img") as bar:
        for record in open_source(source).records():
            if record.id not in rows:
                continue
            batch.append(augment(decode_image(record.data), rng))
            places.append(rows[record.id])
            if len(batch) == VIEW_BATCH:
                flush()
            bar.update(1)
        if batch:
            flush()
    return views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEV_BENCH)
    parser.add_argument("--store", required=True, help="Build folder for the dev bench.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the register-edit views.")
    parser.add_argument("--out", type=Path, default=logo_projection_path())
    args = parser.parse_args()
    source = SourceSpec(path=args.source, group_column="group")
    built = build_flow(
        BuildParams(source=source, store=args.store, pca=PCAParams(projection="collection"))
    )
    store = ArtifactStore(args.store)
    ids, features = train_features(args.store, built.embeddings, load_split_ids(store, "train"))
    groups = {r.id: r.group or "" for r in open_source(source).records(with_bytes=False)}
    views = register_views(source, {i: row for row, i in enumerate(ids)}, args.seed)
    params = LearnedWhiteningParams()
    model = fit_learned_whitening(
        features, [groups[i] for i in ids], views, np.arange(len(ids)), params
    )
    partial = args.out.with_suffix(".partial.npz")
    np.savez(
        partial,
        **model.arrays(),
        train_rows=np.int64(len(ids)),
        group_pairs=np.int64(model.fit["group_pairs"]),
        weights_sha256=np.array(file_digest(logo_weights_path())),
        blur=np.float64(EmbedParams().blur),  # the input blur the features were embedded with
        params=np.array(params.model_dump_json()),
    )
    partial.replace(args.out)
    print(f"{len(ids)} train images, {model.fit['group_pairs']} group pairs -> {args.out}")


if __name__ == "__main__":
    main()
