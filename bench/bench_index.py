"""Index benchmark: build time, peak memory, QPS and recall@10/@100 against exact search.

Synthetic 512-d unit vectors drawn around clusters (logo descriptors are clustered, and
uniform noise makes HNSW look either too good or too bad). Each size runs in its own
process so peak RSS (ru_maxrss) belongs to that build alone.

    python bench/bench_index.py --sizes 10000 100000            # prints, writes JSON
    python bench/bench_index.py --sizes 1000000 --ef-construction 80

Results merge into bench/results/index.json (keyed by size and settings).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "index.json"
DIM = 512


def centres(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(max(n // 50, 10), dim)).astype(np.float32)


def clustered_block(centre: np.ndarray, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(centre), size=rows)
    block = centre[labels] + 0.7 * rng.normal(size=(rows, centre.shape[1])).astype(np.float32)
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def write_chunks(store, n: int, chunk: int) -> tuple[list, np.ndarray]:
    """Chunk files generated one at a time (the full matrix never exists in memory);
    returns their manifests and the first chunk (queries are drawn from it)."""
    centre = centres(n, DIM)
    manifests, first = [], None
    for k, start in enumerate(range(0, n, chunk)):
        part = clustered_block(centre, min(chunk, n - start), seed=1000 + k)
        first = part if first is None else first
        ids = np.array([f"v{i}" for i in range(start, start + len(part))])
        manifests.append(
            store.write_arrays(
                f"embeddings/bench-{k:05d}.npz",
                {"ids": ids, "embeddings": part, "rows": np.arange(len(part))},
                kind="embeddings",
                rows=len(part),
            )
        )
    return manifests, first


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(n: int, kind: str, m: int, ef_c: int, ef_s: list[int], queries: int, out) -> None:
    import faiss

    from logosim.core.store import ArtifactStore
    from logosim.index.build import build_index
    from logosim.index.exact import exact_topk, recall_vs_exact
    from logosim.index.logo_index import LogoIndex
    from logosim.index.params import IndexParams

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        store = ArtifactStore(tmp)
        manifests, first = write_chunks(store, n, chunk=16384)
        rng = np.random.default_rng(1)
        q = first[rng.choice(len(first), min(queries, len(first)), replace=False)]
        q = q + 0.05 * rng.normal(size=q.shape).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        queries = len(q)
        del first  # the build streams from the chunk files, as in production
        before = rss_mb()
        params = IndexParams(
            exact_below=n + 1 if kind == "exact" else 0,
            m=m,
            ef_construction=ef_c,
            ef_search=max(ef_s),
            recall_sample=0,
            dba_neighbours=0,  # the ANN structure alone (DBA adds a kNN pass over the build)
        )
        started = time.perf_counter()
        manifest = build_index(store, manifests, None, params)
        build_s = time.perf_counter() - started
        build_rss = rss_mb()
        blocks = (store.read_arrays(mf)["embeddings"] for mf in manifests)
        _, exact = exact_topk(q, blocks, 100)
        index = LogoIndex.load(store)
        rows = []
        for ef in ef_s if kind == "hnsw" else [0]:
            started = time.perf_counter()
            result = index.search(q, 100, ef_search=ef or None)
            qps = queries / (time.perf_counter() - started)
            pos = np.array([[index.table.position[i] for i in ids] for ids in result.ids])
            recall = recall_vs_exact(pos, exact)
            rows.append({"ef_search": ef or None, "qps": round(qps, 1), **recall})
        out.put(
            {
                "n": n,
                "dim": DIM,
                "type": manifest.meta["type"],
                "m": m if kind == "hnsw" else None,
                "ef_construction": ef_c if kind == "hnsw" else None,
                "build_seconds": round(build_s, 2),
                "index_mb": round(manifest.size / 2**20, 1),
                "rss_before_build_mb": round(before, 1),
                "peak_rss_mb": round(build_rss, 1),
                "faiss_threads": faiss.omp_get_max_threads(),
                "search": rows,
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--kinds", nargs="+", default=["exact", "hnsw"])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    ctx = mp.get_context("spawn")
    for n in args.sizes:
        for kind in args.kinds:
            queue = ctx.Queue()
            proc = ctx.Process(
                target=run_one,
                args=(n, kind, args.m, args.ef_construction, args.ef_search, args.queries, queue),
            )
            proc.start()
            row = queue.get()
            proc.join()
            print(json.dumps(row))
            key = f"{kind}-{n}" + (
                f"-m{args.m}-efc{args.ef_construction}" if kind == "hnsw" else ""
            )
            results[key] = row
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
