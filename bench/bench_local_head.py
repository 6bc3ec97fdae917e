"""What the local-descriptor head costs inside the network: the packaged graph with and without
its head, model only, on OpenVINO, with OpenVINO's own per-node timings.

End-to-end figures (``bench_local_cost.py``) move by ±10 % between rounds on a shared 2-core
machine; the per-node times say which of the head's operations cost what, and those move much
less. Graphs given with ``--graph`` (e.g. an older packaged graph from git) are timed in the
same rounds:

    git show cdd8afd:logosim/embed/graphs/logo-local.onnx > /tmp/old.onnx
    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_local_head.py --graph /tmp/old.onnx

Writes ``bench/results/local_head.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
from bench_data import DEV_BENCH

from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.normalize import to_chw, to_model_input
from logosim.embed.packaged import headless, read_packaged

RESULTS = Path(__file__).parent / "results" / "local_head.json"


def head_node(name: str) -> bool:
    """OpenVINO names the head's nodes (and the layout reorders it adds) after them."""
    return "local_head" in name or name == "embeddings"


def main() -> None:
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEV_BENCH)
    parser.add_argument("--graph", type=Path, action="append", default=[])
    parser.add_argument("--precision", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.5, help="per graph and round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    packaged = read_packaged()
    assert packaged is not None, "no packaged graph"
    records = open_source(SourceSpec(path=str(args.source))).records(0, args.batch)
    batch = np.stack(
        [
            to_chw(to_model_input(decode_image(r.data), 224), packaged.mean, packaged.std)
            for r in records
        ]
    )
    graphs: dict[str, bytes | str] = {"off": headless(packaged), "on": str(packaged.path)}
    graphs |= {f"on:{p.name}": str(p) for p in args.graph}
    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": args.precision,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": 2,
        "PERF_COUNT": True,
    }
    requests = {
        k: core.compile_model(core.read_model(g), "CPU", config).create_infer_request()
        for k, g in graphs.items()
    }
    rates: dict[str, list[float]] = {k: [] for k in graphs}
    head_us: dict[str, Counter] = {k: Counter() for k in graphs}
    calls = Counter()
    for _ in range(args.rounds):
        for name, request in requests.items():
            request.infer({0: batch})
            done, begun = 0, time.perf_counter()
            while time.perf_counter() - begun < args.seconds:
                request.infer({0: batch})
                done += 1
                calls[name] += 1
                for p in request.profiling_info:
                    if p.status == p.Status.EXECUTED and head_node(p.node_name):
                        head_us[name][f"{p.node_name} ({p.exec_type})"] += (
                            p.real_time.total_seconds() * 1e6
                        )
            rates[name].append(args.batch * done / (time.perf_counter() - begun))
    off = statistics.median(rates["off"])
    figures: dict = {"batch": args.batch, "precision": args.precision, "rounds": args.rounds}
    for name in graphs:
        median = statistics.median(rates[name])
        per_batch = {k: v / calls[name] for k, v in head_us[name].most_common()}
        figures[name] = {
            "img_per_s": [round(r, 1) for r in rates[name]],
            "median_img_per_s": round(median, 1),
            "cost_percent": round(100 * (1 - median / off), 1),
            "head_ms_per_batch": round(sum(per_batch.values()) / 1000, 3),
            "head_nodes_us_per_batch": {k: round(v, 1) for k, v in list(per_batch.items())[:12]},
        }
        print(
            f"{name:24s} {median:6.1f} img/s  cost {figures[name]['cost_percent']:5.1f} %  "
            f"head nodes {figures[name]['head_ms_per_batch']:.2f} ms a batch",
            flush=True,
        )
    figures["measured"] = time.strftime("%Y-%m-%d %H:%M")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
