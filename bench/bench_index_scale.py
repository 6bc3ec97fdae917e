"""Register-scale index options side by side: build time, size, recall@100, top-1000 latency.

The vectors are those of the 1M API benchmark store (``bench/bench_api.py --make-synthetic``:
the dev bench's 10,890 real descriptors + 989,110 unit vectors scattered around them), read
from its exact index. Queries are real dev-bench descriptors (in the index: the self match
counts on both sides). For each option it builds the index from scratch, then sweeps the
search effort (efSearch / nprobe) and reports recall@100 of a top-1,000 search against exact
search and single-query p50/p99, and the lowest effort reaching recall@100 ≥ 0.95.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_index_scale.py \\
        --vectors /tmp/api-1m/index/index.faiss --options ivf_flat ivf_sq8_refine

An existing HNSW file (``--hnsw-file``) is measured without rebuilding (its build time is the
one recorded when it was built). Results merge into ``bench/results/index_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import faiss
import numpy as np

from logosim.index.exact import exact_topk, recall_vs_exact

RESULTS = Path(__file__).parent / "results" / "index_scale.json"
CANDIDATES = 1000
TARGET = 0.95


def load_vectors(path: Path, limit: int) -> np.ndarray:
    """The stored vectors of an exact (IDMap2 + Flat) index file."""
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    inner = faiss.downcast_index(index.index)
    n = min(limit, inner.ntotal)
    return inner.reconstruct_n(0, n)


def nlist_for(n: int) -> int:
    """About 4·√n inverted lists, a power of two (1M → 4096)."""
    return int(2 ** round(np.log2(4 * np.sqrt(n))))


def make(option: str, dim: int, n: int) -> faiss.Index:
    nlist = nlist_for(n)
    if option == "hnsw_m16_efc40":
        index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        return index
    if option == "hnsw_m32_efc200":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        return index
    factory = {
        "ivf_flat": f"IVF{nlist}_HNSW32,Flat",
        "ivf_sq8_refine": f"IVF{nlist}_HNSW32,SQ8,RFlat",
        "ivf_pq64_refine": f"IVF{nlist}_HNSW32,PQ64x8,RFlat",
    }[option]
    return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)


def train_sample(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return vectors[np.sort(rng.choice(len(vectors), size=min(n, len(vectors)), replace=False))]


def build(option: str, vectors: np.ndarray, train_points: int) -> tuple[faiss.Index, dict]:
    index = make(option, vectors.shape[1], len(vectors))
    timings = {}
    started = time.perf_counter()
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.max_points_per_centroid = max(1, train_points // ivf.nlist)
        index.train(train_sample(vectors, train_points))
        timings["train_seconds"] = round(time.perf_counter() - started, 1)
    for start in range(0, len(vectors), 65536):
        index.add(vectors[start : start + 65536])
    timings["build_seconds"] = round(time.perf_counter() - started, 1)
    return index, timings


def index_bytes(index: faiss.Index) -> int:
    return len(faiss.serialize_index(index))


def efforts(option: str) -> list[int]:
    if option.startswith("hnsw"):
        return [1000, 1500, 2000, 3000]
    return [16, 32, 64, 128, 256, 512, 1024]


def set_effort(index: faiss.Index, option: str, effort: int) -> None:
    if option.startswith("hnsw"):
        faiss.downcast_index(index).hnsw.efSearch = effort
        return
    faiss.extract_index_ivf(index).nprobe = effort
    if option.endswith("refine"):
        faiss.downcast_index(index).k_factor = 1.0  # re-score exactly the 1,000 candidates


def sweep(option: str, index: faiss.Index, queries: np.ndarray, exact: np.ndarray) -> list[dict]:
    rows = []
    for effort in efforts(option):
        set_effort(index, option, effort)
        _, found = index.search(queries, CANDIDATES)  # batch: recall
        latencies = []
        for q in queries[:200]:  # one query at a time, as the API asks
            started = time.perf_counter()
            index.search(q[None], CANDIDATES)
            latencies.append((time.perf_counter() - started) * 1000)
        recall = recall_vs_exact(found, exact, ks=(10, 100))
        rows.append(
            {
                "effort": effort,
                **{k: round(v, 4) for k, v in recall.items()},
                "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            }
        )
        print(f"  {option} effort {effort}: {rows[-1]}", flush=True)
        if recall["recall@100"] >= 0.995:
            break
    return rows


def first_reaching(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["recall@100"] >= TARGET), None)


def library_build(vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray) -> dict:
    """``logosim.index.build_index`` with default settings (kind auto, α-DBA on) over the
    vectors written as 16,384-row embedding chunks in a temporary store: the build the flow
    runs, timed, with the memory it adds on top of this process's copy of the vectors."""
    import tempfile

    import psutil

    from logosim.core.store import ArtifactStore
    from logosim.index.build import build_index
    from logosim.index.logo_index import LogoIndex
    from logosim.index.params import IndexParams

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        store = ArtifactStore(tmp)
        manifests = []
        for k, start in enumerate(range(0, len(vectors), 16384)):
            part = vectors[start : start + 16384]
            arrays = {
                "ids": np.array([f"v{i}" for i in range(start, start + len(part))]),
                "embeddings": part,
                "rows": np.arange(len(part)),
            }
            manifests.append(
                store.write_arrays(
                    f"embeddings/bench-{k:05d}.npz", arrays, kind="embeddings", rows=len(part)
                )
            )
        before = psutil.Process().memory_info().rss
        peak = [before]
        import threading

        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], psutil.Process().memory_info().rss)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        manifest = build_index(store, manifests, None, IndexParams(recall_sample=300))
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        index = LogoIndex.load(store, mmap=True)
        latencies = []
        for q in queries[:200]:
            begun = time.perf_counter()
            index.search(q[None], CANDIDATES)
            latencies.append((time.perf_counter() - begun) * 1000)
        return {
            "type": manifest.meta["type"],
            "seconds": round(seconds, 1),
            "plain_seconds": manifest.meta["build_seconds"],
            "dba": manifest.meta["dba"],
            "recall_vs_exact_stored": manifest.meta["recall_vs_exact"],
            "index_mb": round(manifest.size / 2**20, 1),
            "build_added_rss_mb": round((peak[0] - before) / 2**20),
            "search_top1000_p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "search_top1000_p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "nprobe": index.params.nprobe,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=Path, default=Path("/tmp/api-1m/index/index.faiss"))
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--train-points", type=int, default=131072)
    parser.add_argument("--options", nargs="*", default=["ivf_flat", "ivf_sq8_refine"])
    parser.add_argument("--hnsw-file", type=Path, default=None, help="measure, not rebuild")
    parser.add_argument("--hnsw-build-seconds", type=float, default=None)
    parser.add_argument("--library-build", action="store_true", help="build_index, defaults")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    vectors = load_vectors(args.vectors, args.size)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(10_890, size=args.queries, replace=False)]  # real ones
    started = time.perf_counter()
    _, exact = exact_topk(
        queries, (vectors[s : s + 65536] for s in range(0, len(vectors), 65536)), 100
    )
    print(f"{len(vectors)} vectors, exact top-100 of {len(queries)} queries in "
          f"{time.perf_counter() - started:.1f}s, {faiss.omp_get_max_threads()} threads", flush=True)  # fmt: skip
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = []
    if args.hnsw_file:
        mapped = faiss.read_index(str(args.hnsw_file))  # keep: it owns the inner graph
        index = faiss.downcast_index(mapped.index)
        option = "hnsw_file"
        rows = sweep("hnsw", index, queries, exact)
        runs.append({"option": f"hnsw M{index.hnsw.nb_neighbors(1)} (recorded build)",
                     "file": str(args.hnsw_file), "build_seconds": args.hnsw_build_seconds,
                     "index_mb": round(args.hnsw_file.stat().st_size / 2**20, 1),
                     "search": rows, "at_target": first_reaching(rows)})  # fmt: skip
        del index, mapped
    for option in args.options:
        index, timings = build(option, vectors, args.train_points)
        size = index_bytes(index)
        print(f"{option}: {timings}, {size / 2**20:.0f} MiB", flush=True)
        rows = sweep(option, index, queries, exact)
        runs.append({"option": option, **timings, "index_mb": round(size / 2**20, 1),
                     "nlist": nlist_for(len(vectors)) if option.startswith("ivf") else None,
                     "search": rows, "at_target": first_reaching(rows)})  # fmt: skip
        del index
    if args.library_build:
        row = library_build(vectors, queries, exact)
        print(f"library build (auto, α-DBA on): {row}", flush=True)
        runs.append({"option": "library_build_auto", **row})
    for run in runs:
        results[f"{run['option']}-{len(vectors)}"] = {
            **run,
            "n": len(vectors),
            "queries": len(queries),
            "candidates": CANDIDATES,
            "threads": faiss.omp_get_max_threads(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "measured": time.strftime("%Y-%m-%d %H:%M"),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
