"""Search service load test on 127.0.0.1: readiness time, p50/p99 latency and throughput at
1, 4 and 16 concurrent clients, zero errors expected, and the server's resident memory.

Starts ``logosim api`` on a free loopback port over STORE, waits for /readyz, then each
client level sends real logos (JPEG bytes from the source) for ``--requests`` requests or
``--seconds`` seconds, whichever comes first. End to end per request: upload → decode →
embed (exported model) → α-QE → ANN → (re-rank) → JSON.

    python bench/bench_api.py --store /tmp/api-devbench \\
        --queries /work/shared/bench/logo_bench_dev.parquet --label devbench

A synthetic register of N marks for the same service (the dev bench's real vectors plus
clustered unit vectors around them, an exact index, the dev store's PCA and exported model):

    python bench/bench_api.py --store /tmp/api-1m --make-synthetic 1000000 \
        --from-store /tmp/api-devbench --queries /work/shared/bench/logo_bench_dev.parquet --label synthetic-1m

Results merge into bench/results/api.json under ``--label``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow.parquet as pq

RESULTS = Path(__file__).parent / "results" / "api.json"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's logosim, not whichever is installed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(store: str, port: int, extra: list[str]) -> tuple[subprocess.Popen, float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGOSIM_API_")}
    env["LOGOSIM_API_RATE_PER_MINUTE"] = "1000000"  # a load test, not a rate-limit test
    env["LOGOSIM_API_RATE_BURST"] = "100000"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "api", "--store", store, "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while time.monotonic() - started < 300:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if r.status_code == 200:
                return proc, time.monotonic() - started, r.json()
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}")
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("the service was not ready within 300 s")


def level(
    url: str, images: list[bytes], clients: int, requests: int, seconds: float, form: dict
) -> dict:
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                image = images[(i + offset) % len(images)]
                t0 = time.perf_counter()
                r = http.post(
                    "/v1/search", files={"image": ("q.jpg", image, "image/jpeg")}, data=form
                )
                took = time.perf_counter() - t0
                with lock:
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        latencies.append(took * 1e3)
                        server_ms.append(r.json()["took_ms"])

    threads = [threading.Thread(target=client, args=(k * 7919,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies)
    return {
        "clients": clients,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "mean_ms": round(float(lat.mean()), 1) if len(lat) else None,
        "server_p50_ms": round(float(np.percentile(server_ms, 50)), 1) if server_ms else None,
        "throughput_rps": round(len(latencies) / wall, 1),
        "seconds": round(wall, 1),
    }


def make_synthetic(
    store_dir: str, rows: int, from_store: str, hnsw: tuple[int, int] | None, seed: int = 0
) -> None:
    """An index of ``rows`` vectors (exact, or HNSW with (M, efConstruction)): the real ones
    of ``from_store`` first, then clustered noise around them; a Parquet source with ids
    only (no images); its catalog is built here, so the benchmark measures a warm start."""
    import shutil

    import faiss
    import pyarrow as pa

    from logosim.core.store import ArtifactStore
    from logosim.index import _save
    from logosim.index.ids import IdTable
    from logosim.index.logo_index import LogoIndex
    from logosim.index.params import INDEX_FILE

    src = ArtifactStore(from_store)
    real = LogoIndex.load(src)
    out = Path(store_dir)
    out.mkdir(parents=True, exist_ok=True)
    for rel in ("export", "pca"):
        shutil.copytree(src.path(rel), out / rel, dirs_exist_ok=True)
    store = ArtifactStore(out)
    ids, vectors = [], []
    for block_ids, block in real.live_vectors():
        ids += block_ids
        vectors.append(block)
    base = np.concatenate(vectors)
    if hnsw:
        graph = faiss.IndexHNSWFlat(base.shape[1], hnsw[0], faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = hnsw[1]
        index = faiss.IndexIDMap2(graph)
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(base.shape[1]))
    table = IdTable()
    index.add_with_ids(base, table.append(ids))
    rng = np.random.default_rng(seed)
    while len(table.ids) < rows:
        n = min(65536, rows - len(table.ids))
        centre = base[rng.integers(len(base), size=n)]
        block = centre + 0.05 * rng.normal(size=centre.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        start = len(table.ids)
        index.add_with_ids(block, table.append(f"synthetic/{i}" for i in range(start, start + n)))
    source = out / "marks.parquet"
    pq.write_table(
        pa.table({"id": table.ids, "image": pa.array([b""] * len(table.ids), pa.binary())}), source
    )
    meta = dict(src.read_manifest(INDEX_FILE).meta)
    meta["source"] = {"path": str(source), "format": "parquet"}
    if hnsw:
        meta["params"] = {**meta["params"], "m": hnsw[0], "ef_construction": hnsw[1]}
    manifest = _save(store, index, table, meta)
    from logosim.data.sources import SourceSpec
    from logosim.service.catalog import Catalog

    Catalog.load(store, SourceSpec.model_validate(meta["source"]), manifest.sha256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--queries", required=True, help="Parquet with an 'image' column.")
    parser.add_argument("--label", default="devbench")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=400, help="Per level, at most.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Per level, at most.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--make-synthetic", type=int, default=0, help="Build STORE first.")
    parser.add_argument("--from-store", help="The store whose vectors seed --make-synthetic.")
    parser.add_argument(
        "--hnsw", type=int, nargs=2, metavar=("M", "EFC"), help="--make-synthetic: an HNSW graph."
    )
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="To `logosim api`.")
    args = parser.parse_args()

    if args.make_synthetic:
        t0 = time.perf_counter()
        make_synthetic(args.store, args.make_synthetic, args.from_store, args.hnsw)
        print(f"synthetic store: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    table = pq.read_table(args.queries, columns=["image"]).slice(0, 500)
    images = [v if isinstance(v, bytes) else v["bytes"] for v in table.column("image").to_pylist()]
    port = free_port()
    proc, ready_s, ready = start(args.store, port, args.extra)
    url = f"http://127.0.0.1:{port}"
    form = {"k": str(args.k), "rerank": "true" if args.rerank else "false"}
    try:
        level(url, images, 1, args.warmup, 60, form)  # first calls: lazy pages, caches
        levels = [level(url, images, c, args.requests, args.seconds, form) for c in args.clients]
        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        memory = [p.memory_full_info() for p in procs]  # pss: shared pages split between them
    finally:
        proc.terminate()
        proc.wait(30)
    result = {
        "store": args.store,
        "index_size": ready["index_size"],
        "backend": ready["backend"],
        "runtime": ready["runtime"],
        "rerank": args.rerank,
        "k": args.k,
        "ready_s_from_process_start": round(ready_s, 2),
        "ready_after_s_in_process": ready["ready_after_s"],
        "index_load_ms": ready["load_ms"],
        "processes": len(procs),
        "rss_mb": round(sum(m.rss for m in memory) / 2**20, 1),
        "pss_mb": round(sum(m.pss for m in memory) / 2**20, 1),
        "cpu_cores": os.cpu_count(),
        "levels": levels,
        "measured": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    print(json.dumps(result, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[args.label + ("-rerank" if args.rerank else "")] = result
    RESULTS.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
