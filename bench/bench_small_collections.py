"""Descriptors at every collection size, judged by out-of-sample queries (issue 19).

Collections of N logos are drawn from the dev bench (brand groups whole, plus distractors, in
the bench's proportions), split by the splits stage's own assignment (groups never cross),
the PCA variant is fitted on the train split only, and every grouped test-split image queries
all the other images of the collection. Test images are outside the fit, like any query,
held-out image or mark a nightly reindex adds: the case leave-one-out over fitted images hides.

Reads the raw embeddings of a store where the dev bench was embedded:

    logosim build --source ../shared/bench/logo_bench_dev.parquet --group-column group --store S
    python bench/bench_small_collections.py --store S

Prints one table per size (mean over seeds) and writes bench/results/small_collections.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.data.splits import SplitItem, SplitsParams, assign_splits, load_split_ids
from logosim.embed.pca import Descriptors, PCAParams, descriptor_health, fit_pca
from logosim.search.evaluate import source_groups
from logosim.search.metrics import leave_one_out

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "logo_bench_dev.parquet"
RESULTS = Path(__file__).resolve().parent / "results" / "small_collections.json"
KEYS = ("recall@1", "recall@10", "recall@100", "map")

# name → PCA settings for a train split of n images (None: plain GeM, L2 only, `--pca-dims 0`)
VARIANTS: dict[str, object] = {
    "gem (--pca-dims 0)": lambda n: None,
    "before: dims=n, no shrink": lambda n: PCAParams(shrinkage=0.0, max_dims_share=1.0),
    "no shrink, dims≤n/2": lambda n: PCAParams(shrinkage=0.0),
    "lw-auto, dims 512": lambda n: PCAParams(max_dims_share=1.0),
    "lw-auto, dims≤n/2 (default)": lambda n: PCAParams(),
    "lw-auto, dims≤n/4": lambda n: PCAParams(max_dims_share=0.25),
    "lw-auto, dims≤n/2, power 0.5": lambda n: PCAParams(whiten_power=0.5),
    "shrink 0.1": lambda n: PCAParams(shrinkage=0.1),
    "shrink 0.3": lambda n: PCAParams(shrinkage=0.3),
    "centre only (no whiten)": lambda n: PCAParams(whiten=False),
}


def load_embeddings(store: ArtifactStore) -> tuple[np.ndarray, np.ndarray]:
    ids, blocks = [], []
    for path in sorted(store.path("embeddings").glob("*.npz")):
        manifest = store.read_manifest(f"embeddings/{path.name}")
        arrays = store.read_arrays(manifest)
        ids.append(arrays["ids"].astype(str))
        blocks.append(arrays["embeddings"].astype(np.float32))
    return np.concatenate(ids), np.concatenate(blocks)


def draw_collection(
    groups: list[str], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The issue's folder: one rendition each of ``size // 3`` brands plus distractors
    (ungrouped logos) up to ``size``; and, outside it, one other rendition of each brand as
    its query. Returns (collection indices, query indices aligned with the first brands)."""
    groups_arr = np.array(groups)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g:
            members.setdefault(g, []).append(i)
    brands = rng.permutation(sorted(members))[: size // 3]
    pairs = [rng.permutation(members[b])[:2] for b in brands]
    indexed = [int(p[0]) for p in pairs]
    queries = np.array([int(p[1]) for p in pairs])
    distractors = rng.permutation(np.flatnonzero(groups_arr == ""))[: size - len(indexed)]
    return np.concatenate([indexed, distractors]).astype(int), queries


def external_ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1-based rank of gallery item i for query i (its brand's indexed rendition)."""
    scores = queries @ gallery.T
    target = scores[np.arange(len(queries)), np.arange(len(queries))]
    return 1 + (scores > target[:, None]).sum(axis=1)


def split_of(ids: np.ndarray, groups: list[str], seed: int) -> np.ndarray:
    items = [SplitItem(i, g or None, (), "none") for i, g in zip(ids, groups, strict=True)]
    assign_splits(items, SplitsParams(seed=seed))
    return np.array([item.split for item in items])


def _fit(params: PCAParams | None, ids, x, train) -> Descriptors:
    if params is None:
        return Descriptors(None)
    return Descriptors(fit_pca([(ids, x)], params, train_ids=train))


def external_protocol(all_ids, features, all_groups, size: int, seed: int) -> dict[str, dict]:
    """Queries from outside the collection (not fitted, not indexed), as in issue 19."""
    rng = np.random.default_rng(seed)
    pick, queries = draw_collection(all_groups, size, rng)
    ids, x = all_ids[pick], features[pick]
    split = split_of(ids, [""] * len(ids), seed)  # one rendition per brand: all singletons
    train = set(ids[split == "train"].tolist())
    out = {}
    for name, make in VARIANTS.items():
        describe = _fit(make(len(train)), ids, x, train)
        ranks = external_ranks(describe(features[queries]), describe(x))
        health = descriptor_health([(ids, x)], describe, train, sample=1000)
        top1 = (describe(features[queries]) @ describe(x).T).max(axis=1)
        out[name] = {
            "recall@1": float(np.mean(ranks <= 1)),
            "recall@10": float(np.mean(ranks <= 10)),
            "recall@100": float(np.mean(ranks <= 100)),
            "map": float(np.mean(1.0 / ranks)),
            "queries": len(ranks),
            "top1_score_median": float(np.median(top1)),
            "degenerate": health["degenerate"],
        }
    return out


def test_split_protocol(store, all_ids, features, all_groups) -> dict[str, dict]:
    """The whole bench, PCA on the store's train split, queries from its test split only."""
    split_ids = {name: load_split_ids(store, name) for name in ("train", "test")}
    split = np.array(
        [
            "train" if i in split_ids["train"] else "test" if i in split_ids["test"] else "val"
            for i in all_ids
        ]
    )
    train = set(all_ids[split == "train"].tolist())
    out = {}
    for name, make in VARIANTS.items():
        describe = _fit(make(len(train)), all_ids, features, train)
        vectors = describe(features)
        oos = leave_one_out(vectors, all_groups, query_mask=split == "test")
        loo = leave_one_out(vectors, all_groups)
        health = descriptor_health([(all_ids, features)], describe, train, sample=1000)
        out[name] = {k: oos[k] for k in (*KEYS, "queries")} | {
            "loo_recall@1": loo["recall@1"],
            "loo_map": loo["map"],
            "degenerate": health["degenerate"],
        }
    return out


def _mean(runs: list[dict[str, dict]]) -> dict[str, dict]:
    return {
        name: {
            key: float(np.mean([r[name][key] for r in runs]))
            if key != "degenerate"
            else int(sum(r[name][key] for r in runs))
            for key in runs[0][name]
        }
        for name in runs[0]
    }


def _print(title: str, table: dict[str, dict], extra: tuple[str, ...]) -> None:
    print(f"\n## {title}")
    cols = (*KEYS, "queries", *extra, "degenerate")
    print(f"{'variant':<28}" + "".join(f"{c:>13}" for c in cols))
    for name, row in table.items():
        print(f"{name:<28}" + "".join(f"{row[c]:13.3f}" for c in cols))


def run(store: ArtifactStore, source: str, sizes: list[int], seeds: int) -> dict:
    all_ids, features = load_embeddings(store)
    group_of = source_groups(SourceSpec(path=source, group_column="group"))
    all_groups = [group_of.get(i, "") for i in all_ids]
    results: dict = {"external": {}, "test_split": {}}
    for size in sizes:
        started = time.perf_counter()
        runs = [external_protocol(all_ids, features, all_groups, size, s) for s in range(seeds)]
        table = _mean(runs)
        results["external"][str(size)] = {"collections": seeds, "variants": table}
        _print(
            f"{size} logos, queries from outside (not fitted, not indexed); mean of {seeds} "
            f"collections, {time.perf_counter() - started:.0f} s",
            table,
            ("top1_score_median",),
        )
    table = _mean([test_split_protocol(store, all_ids, features, all_groups)])
    results["test_split"] = table
    _print(
        f"whole dev bench ({len(all_ids):,}): PCA on its train split, test-split queries",
        table,
        ("loo_recall@1", "loo_map"),
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="store with the dev bench's embeddings")
    parser.add_argument("--source", default=str(BENCH))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000, 7_000])
    parser.add_argument("--seeds", type=int, default=10, help="collections per size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(ArtifactStore(args.store), args.source, args.sizes, args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
