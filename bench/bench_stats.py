"""Benchmark the stats stage's library path: images/s and peak memory on a source.

Usage: .venv/bin/python bench/bench_stats.py [--source PATH] [--out bench/results/stats.json]
Prints the figures and writes them as JSON. No Prefect: this measures the per-chunk work.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

from bench_data import DEV_BENCH

from logosim.data.chunks import plan_chunks
from logosim.data.sources import open_source
from logosim.data.stats import ImageStats, StatsParams, records_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEV_BENCH)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--out", default="bench/results/stats.json")
    args = parser.parse_args()

    source = open_source(args.source)
    params = StatsParams(checkpoint_every=args.checkpoint_every)
    start = time.perf_counter()
    chunks = plan_chunks(source, params.checkpoint_every)
    planned = time.perf_counter()
    total = ImageStats()
    for chunk in chunks:
        stats, _ = records_stats(source.records(chunk.start, chunk.stop), params)
        total = total.merge(stats)
    done = time.perf_counter()
    figures = {
        "source": args.source,
        "images": total.images,
        "corrupt": total.corrupt_total,
        "chunks": len(chunks),
        "plan_s": round(planned - start, 2),
        "stats_s": round(done - planned, 2),
        "images_per_s": round(total.images / (done - planned), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    for key, value in figures.items():
        print(f"{key:>14}: {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
