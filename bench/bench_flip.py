"""Flip-invariant descriptors (issue 16), a probe on raw descriptors through the baseline's
PCA (train-split fit, whitened 512-d), no α-DBA/QE: the same pipeline minus the last stage,
so compare rows with each other, not with the evaluate figures.

Reuses the pad/Lite0 embeddings of a built dev-bench store (``--store``), embeds the copy
set's 1,500 edited copies, and every image mirrored. Variants: ``plain``; ``mean`` (image and
mirror averaged before PCA, on both sides: a flip-invariant index, 2× embedding time);
``query max`` (each query scored as the max of itself and its mirror against the plain
gallery: 2× query time only). Writes bench/results/flip.json.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_flip.py --store /tmp/devbench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_data import COPY_SET, DEV_BENCH
from PIL import Image, ImageOps

from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import load_split_ids
from logosim.embed.embedder import Embedder
from logosim.embed.params import WHEEL_WEIGHTS, EmbedParams, Prepare
from logosim.embed.pca import PCA_FILE, Descriptors, iter_embeddings, l2_normalize
from logosim.search.metrics import group_codes, summarize

RESULTS = Path(__file__).parent / "results" / "flip.json"


def mirrored(record: LogoRecord, image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def embed(records: list[LogoRecord], prepare: Prepare | None = None) -> dict[str, np.ndarray]:
    embedder = Embedder(EmbedParams(weights=WHEEL_WEIGHTS))  # the baseline store's model
    result = embedder.embed_records(records, prepare=prepare, total=len(records))
    return dict(zip(result.ids, result.matrix(embedder.dim), strict=True))


def ranks_of(scores: np.ndarray, codes: np.ndarray, queries: np.ndarray) -> list[np.ndarray]:
    """Sorted 1-based ranks of each query's relevant items (the query itself excluded)."""
    scores[np.arange(len(queries)), queries] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :-1]
    relevant = codes[order] == codes[queries][:, None]
    return [np.flatnonzero(row) + 1 for row in relevant]


def evaluate(
    plain: np.ndarray, flipped: np.ndarray, groups: list[str], query_mask: np.ndarray
) -> dict[str, dict]:
    codes = group_codes(groups)
    counts = np.bincount(codes[codes >= 0])
    eligible = (codes >= 0) & (counts[np.maximum(codes, 0)] >= 2) & query_mask
    queries = np.flatnonzero(eligible)
    mean = l2_normalize(plain + flipped)
    out = {}
    for name, gallery, query_sets in (
        ("plain", plain, (plain,)),
        ("mean (index and query)", mean, (mean,)),
        ("query max over mirror", plain, (plain, flipped)),
    ):
        ranks: list[np.ndarray] = []
        for start in range(0, len(queries), 256):
            q = queries[start : start + 256]
            scores = np.max([qs[q] @ gallery.T for qs in query_sets], axis=0)
            ranks.extend(ranks_of(scores, codes, q))
        metrics = summarize(ranks, len(plain) - 1)
        out[name] = {k: round(float(v), 4) for k, v in metrics.items() if k != "precision@10"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="A built dev-bench store.")
    parser.add_argument("--limit", type=int, help="Smoke test: the first N copy-set rows.")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    raw = {}
    chunks = sorted(args.store.glob("embeddings/*.npz"))
    manifests = [store.read_manifest(p.relative_to(args.store)) for p in chunks]
    for ids, features in iter_embeddings(store, [m for m in manifests if m is not None]):
        raw.update(zip(ids.tolist(), features, strict=True))
    describe = Descriptors.load(store, store.load_verified(PCA_FILE))

    def copy_records() -> list[LogoRecord]:  # fresh each time: embedding drops the bytes
        rows = list(open_source(SourceSpec(path=COPY_SET, group_column="group")).records())
        return rows[: args.limit // 2] + rows[-args.limit // 2 :] if args.limit else rows

    records = copy_records()
    groups = {r.id: r.group or "" for r in records}
    started = time.perf_counter()
    raw.update(embed([r for r in records if r.id not in raw]))
    flipped = embed(copy_records(), mirrored)
    seconds = time.perf_counter() - started
    ids = [r.id for r in records]
    plain_x = describe(np.stack([raw[i] for i in ids]))
    flip_x = describe(np.stack([flipped[i] for i in ids]))
    copy_ids = np.array(["#copy" in i for i in ids])
    bench = open_source(SourceSpec(path=DEV_BENCH, group_column="group"))
    bench_groups = {r.id: r.group or "" for r in bench.records(with_bytes=False)}
    test = load_split_ids(store, "test")
    # dev bench: its own images only (copies are not in its gallery), test-split queries
    keep = np.flatnonzero(~copy_ids)
    report = {
        "embed_seconds": round(seconds, 1),
        "test_split": evaluate(
            plain_x[keep],
            flip_x[keep],
            [bench_groups[ids[i]] for i in keep],
            np.array([ids[i] in test for i in keep]),
        ),
        "copies": evaluate(plain_x, flip_x, [groups[i] for i in ids], np.ones(len(ids), bool)),
    }
    print(json.dumps(report, indent=1))
    if not args.limit:
        RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
