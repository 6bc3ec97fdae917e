"""Cluster benchmark: quality on the dev bench per method and setting, and time and peak
memory at scale.

    # quality: ARI / NMI / purity over the grouped images, for a grid of settings
    python bench/bench_cluster.py quality --store /tmp/cluster-devbench \\
        --source ../shared/bench/logo_bench_dev.parquet

    # scale: the dev bench's vectors ×R with jitter (each size in its own process, so
    # ru_maxrss is that run's peak)
    python bench/bench_cluster.py scale --store /tmp/cluster-devbench \\
        --source ../shared/bench/logo_bench_dev.parquet --sizes 25000 50000 100000

Results merge into bench/results/cluster.json. The store must hold a build of the source
(``logosim build --source ... --group-column group --store ...``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).parent / "results" / "cluster.json"

GRID: list[tuple[str, dict]] = [
    ("default: hdbscan, umap 10-d, 5 neighbours", {}),
    ("hdbscan, umap 10-d, 15 neighbours", {"neighbours": 15}),
    ("hdbscan, umap 10-d, 3 neighbours", {"neighbours": 3}),
    ("hdbscan, umap 16-d, 5 neighbours", {"umap_dims": 16}),
    ("hdbscan, umap 2-d, 5 neighbours", {"umap_dims": 2}),
    ("hdbscan leaf, umap 10-d", {"selection": "leaf"}),
    ("hdbscan min_cluster_size 3", {"min_cluster_size": 3}),
    ("hdbscan on the 512-d descriptors", {"space": "descriptors"}),
    ("kmeans k=920 (true groups), umap 10-d", {"method": "kmeans", "k": 920}),
    ("kmeans k by silhouette, umap 10-d", {"method": "kmeans"}),
    (
        "kmeans k=920 on the 512-d descriptors",
        {"method": "kmeans", "k": 920, "space": "descriptors"},
    ),
]


def load(store_root: str, source: str):
    from logosim.cluster.vectors import load_vectors, read_metadata
    from logosim.core.store import ArtifactStore
    from logosim.data.sources import SourceSpec

    store = ArtifactStore(store_root)
    manifests = sorted((store.root / "embeddings").glob("*.npz.manifest.json"))
    embeddings = [
        store.read_manifest(p.relative_to(store.root).as_posix()[:-14]) for p in manifests
    ]
    pca = store.read_manifest("pca/pca.npz")
    vectors = load_vectors(store, embeddings, pca)
    meta = read_metadata(SourceSpec(path=source, group_column="group"))
    return store, embeddings, vectors, meta


def reference(store, embeddings, groups: dict[str, str]) -> dict:
    """The issue's reference: KMeans with the true number of groups on the raw (L2) GeM
    vectors of the grouped images only."""
    from sklearn.cluster import KMeans

    from logosim.cluster.quality import group_scores
    from logosim.embed.pca import iter_embeddings, l2_normalize

    ids, blocks = [], []
    for chunk_ids, features in iter_embeddings(store, embeddings):
        keep = np.array([bool(groups.get(i)) for i in chunk_ids], dtype=bool)
        ids += chunk_ids[keep].tolist()
        blocks.append(l2_normalize(features[keep]))
    x = np.concatenate(blocks)
    k = len(set(groups.values()))
    started = time.perf_counter()
    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(x)
    scores = group_scores(labels, [groups[i] for i in ids])
    return {
        "setting": f"reference: kmeans k={k} on raw GeM, grouped images only",
        **scores,
        "clusters": k,
        "seconds": round(time.perf_counter() - started, 1),
    }


def quality(args: argparse.Namespace) -> dict:
    from logosim.cluster.params import ClusterParams
    from logosim.cluster.run import cluster_vectors

    store, embeddings, vectors, meta = load(args.store, args.source)
    rows = [reference(store, embeddings, meta.groups)]
    print(rows[0], flush=True)
    for label, settings in GRID:
        params = ClusterParams(**settings)
        _, summary = cluster_vectors(vectors, params, meta.groups)
        for method, figures in summary["methods"].items():
            row = {
                "setting": label,
                "method": method,
                **{
                    k: figures.get(k)
                    for k in (
                        "ari",
                        "nmi",
                        "purity",
                        "clusters",
                        "largest",
                        "noise_share",
                        "silhouette",
                    )
                },
                "k": figures["settings"].get("k"),
                "seconds_total": summary["seconds"]["total"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"images": len(vectors.ids), "grouped": len(meta.groups), "rows": rows}


def _scale_one(store_root: str, source: str, size: int, queue) -> None:
    from logosim.cluster.params import ClusterParams
    from logosim.cluster.run import cluster_vectors
    from logosim.cluster.vectors import Vectors
    from logosim.embed.pca import l2_normalize

    _, _, vectors, _ = load(store_root, source)
    rng = np.random.default_rng(0)
    reps = -(-size // len(vectors.ids))
    x = np.concatenate(
        [vectors.x]
        + [
            l2_normalize(vectors.x + 0.02 * rng.normal(size=vectors.x.shape).astype(np.float32))
            for _ in range(reps - 1)
        ]
    )[:size]
    ids = [f"{r}:{i}" for r in range(reps) for i in vectors.ids][:size]
    del vectors
    started = time.perf_counter()
    _, summary = cluster_vectors(Vectors(ids, x), ClusterParams(method="hdbscan"))
    figures = summary["methods"]["hdbscan"]
    queue.put(
        {
            "size": size,
            "umap_init": ClusterParams().init_for(size),
            "seconds": round(time.perf_counter() - started, 1),
            "stages": summary["seconds"],
            "clusters": figures["clusters"],
            "noise_share": round(figures["noise_share"], 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "input_mib": round(x.nbytes / 2**20),
        }
    )


def scale(args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    rows = []
    for size in args.sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=_scale_one, args=(args.store, args.source, size, queue))
        proc.start()
        row = queue.get()
        proc.join()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["quality", "scale"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    args = parser.parse_args()
    result = quality(args) if args.mode == "quality" else scale(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[args.mode] = result | {"date": time.strftime("%Y-%m-%d"), "cpus": mp.cpu_count()}
    RESULTS.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
