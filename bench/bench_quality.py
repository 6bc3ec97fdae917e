"""Dev-bench quality runs: descriptor variants on top of one embedding pass.

Reads the embedding chunks, splits and groups of a store built by
``logosim evaluate --source /work/shared/bench/logo_bench_dev.parquet --group-column group
--store /tmp/devbench`` and measures leave-one-out metrics for:
  * PCA dims and whitening power (PCA always fitted on the train split only),
  * alpha-weighted database-side augmentation (DBA) / query expansion (alpha-QE), through
    the index's own ``augment_collection`` (exact neighbours, the exact-build code path),
  * re-ranking cues (colour histogram, layout map) mixed with the ANN score.

Mixed scores are exact: w_a·ann + w_c·colour + w_l·layout is the inner product of the
concatenated vectors [√w_a·v, √w_c·c, √w_l·l], so the same metric code applies.

    python bench/bench_quality.py --store /tmp/devbench [--rerank]
Writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import load_split_ids
from logosim.embed.pca import PCAParams, fit_pca, iter_embeddings, l2_normalize
from logosim.index.dba import augment_collection
from logosim.search.evaluate import source_groups
from logosim.search.metrics import leave_one_out
from logosim.search.rerank import cues

RESULTS = Path(__file__).parent / "results" / "quality.json"


def load_raw(store: ArtifactStore) -> tuple[list[str], np.ndarray]:
    files = sorted(store.path("embeddings").glob("*.npz"))
    manifests = [store.read_manifest(f.relative_to(store.root).as_posix()) for f in files]
    ids, blocks = [], []
    for chunk_ids, features in iter_embeddings(store, [m for m in manifests if m]):
        ids += chunk_ids.tolist()
        blocks.append(features)
    return ids, np.concatenate(blocks)


def pca_vectors(raw: np.ndarray, train: np.ndarray, params: PCAParams) -> np.ndarray:
    chunks = [(np.arange(len(train)).astype(str), train)]
    model = fit_pca(chunks, params, train_rows=len(train))
    return model.transform(raw)


def run(label: str, vectors: np.ndarray, groups: list[str], results: dict) -> None:
    started = time.perf_counter()
    m = leave_one_out(vectors, groups)
    results[label] = {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
    print(
        f"{label:<42} R@1 {m['recall@1']:.4f}  R@10 {m['recall@10']:.4f}  mAP {m['map']:.4f}  "
        f"NAR {m['nar']:.4f}  ({time.perf_counter() - started:.1f}s)",
        flush=True,
    )


def extra(raw: np.ndarray, train: np.ndarray, groups: list[str], results: dict) -> None:
    """Signed square root before PCA (power normalisation) and 768 dims with DBA."""

    def signed_sqrt(x):
        return np.sign(x) * np.sqrt(np.abs(x))

    for dims in (512, 768):
        v = pca_vectors(signed_sqrt(raw), signed_sqrt(train), PCAParams(dims=dims, power=1.0))
        run(f"sqrt → PCA{dims} whiten (train fit)", v, groups, results)
        run(f"sqrt → PCA{dims} + DBA n=2 alpha=3", augment_collection(v, 2, 3.0), groups, results)
    v = pca_vectors(raw, train, PCAParams(dims=768, power=1.0))
    run("PCA768 + DBA n=2 alpha=3", augment_collection(v, 2, 3.0), groups, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="/tmp/devbench")
    parser.add_argument("--source", default="/work/shared/bench/logo_bench_dev.parquet")
    parser.add_argument("--rerank", action="store_true", help="also measure re-rank cues")
    parser.add_argument("--extra", action="store_true", help="only the power-norm / 768 runs")
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    source = SourceSpec(path=args.source, group_column="group")
    ids, raw = load_raw(store)
    group_of = source_groups(source)
    groups = [group_of.get(i, "") for i in ids]
    train_ids = load_split_ids(store, "train")
    train = raw[np.fromiter((i in train_ids for i in ids), bool, len(ids))]
    print(f"{len(ids)} images, {len(train)} in the train split")
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}

    if args.extra:
        extra(raw, train, groups, results)
        RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))
        return
    run("raw GeM, L2 (no PCA)", l2_normalize(raw), groups, results)
    for dims, power in [(512, 1.0), (256, 1.0), (768, 1.0), (512, 0.5), (512, 0.75)]:
        v = pca_vectors(raw, train, PCAParams(dims=dims, whiten_power=power, power=1.0))
        run(f"PCA{dims} whiten^{power} (train fit)", v, groups, results)
    base = pca_vectors(raw, train, PCAParams(dims=512, power=1.0))
    for n, alpha in [(1, 1.0), (2, 3.0), (3, 3.0), (5, 3.0)]:
        run(
            f"PCA512 + DBA n={n} alpha={alpha}", augment_collection(base, n, alpha), groups, results
        )

    if args.rerank:
        images = {r.id: r.data for r in open_source(source).records()}
        colour, layout, _ = cues([decode_image(images[i]) for i in ids])
        for wc, wl in [(0.05, 0.0), (0.0, 0.05), (0.05, 0.05), (0.1, 0.1), (0.2, 0.0)]:
            mixed = np.concatenate([base, np.sqrt(wc) * colour, np.sqrt(wl) * layout], axis=1)
            run(f"PCA512 + rerank colour {wc} layout {wl}", mixed, groups, results)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
