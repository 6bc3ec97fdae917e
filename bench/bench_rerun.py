"""A no-change rerun of a large source: how long a build takes when every stage is cached.

Makes a ~100K-image Parquet source from the dev bench repeated with jitter (each copy's JPEG
gets a few distinct bytes after its end-of-image marker: decoders ignore them, digests do
not), builds it once (``--first``), then times a second ``logosim build`` of the same source
in a fresh process (Prefect start included) and profiles the rerun in process (cProfile,
the top functions by cumulative time).

    python bench/bench_rerun.py --make /tmp/speed-100k.parquet --rows 100000
    flock /tmp/logosim-heavy.lock python bench/bench_rerun.py --source … --store … --first
    flock /tmp/logosim-heavy.lock python bench/bench_rerun.py --source … --store … --rerun

Writes ``bench/results/rerun.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_data import DEV_BENCH

RESULTS = Path(__file__).parent / "results" / "rerun.json"


def make_source(out: Path, rows: int, seed: int = 0) -> None:
    table = pq.read_table(DEV_BENCH, columns=["id", "image"])
    ids, images = table["id"].to_pylist(), table["image"].to_pylist()
    rng = np.random.default_rng(seed)
    writer = None
    done, copy = 0, 0
    while done < rows:
        n = min(len(ids), rows - done)
        jitter = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
        batch = pa.table(
            {
                "id": [f"{ids[i]}#{copy}" for i in range(n)],
                "image": [images[i] + jitter[i].tobytes() for i in range(n)],
            }
        )
        writer = writer or pq.ParquetWriter(out, batch.schema)
        writer.write_table(batch, row_group_size=2048)
        done, copy = done + n, copy + 1
    writer.close()
    print(f"wrote {out}: {rows} rows ({copy} jittered copies of the dev bench)")


def cli_build(source: Path, store: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "build",
            "--source",
            str(source),
            "--store",
            str(store),
        ],
        check=True,
        env=env,
    )
    return time.perf_counter() - started


def profile_rerun(source: Path, store: Path) -> tuple[float, list[str]]:
    from flows.build import BuildParams, build_flow
    from logosim.data.sources import SourceSpec

    params = BuildParams(source=SourceSpec(path=str(source)), store=str(store))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    build_flow(params)
    profiler.disable()
    seconds = time.perf_counter() - started
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    return seconds, text.getvalue().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--make", type=Path, help="write the jittered source here and stop")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--first", action="store_true", help="the first (full) build, timed")
    parser.add_argument("--rerun", action="store_true", help="the no-change rerun, timed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.make:
        make_source(args.make, args.rows)
        return
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = pq.ParquetFile(args.source).metadata.num_rows
    entry = results.setdefault(f"{rows}", {"source": str(args.source), "rows": rows})
    if args.first:
        entry["first_build_seconds"] = round(cli_build(args.source, args.store, env), 1)
        print(f"first build: {entry['first_build_seconds']} s")
    if args.rerun:
        entry["rerun_cli_seconds"] = round(cli_build(args.source, args.store, env), 1)
        print(f"no-change rerun (CLI, fresh process): {entry['rerun_cli_seconds']} s")
        seconds, top = profile_rerun(args.source, args.store)
        entry["rerun_in_process_seconds"] = round(seconds, 1)
        entry["profile_top"] = [line for line in top if line.strip()][:60]
        print(f"no-change rerun (in process, profiled): {seconds:.1f} s")
        print("\n".join(top[:60]))
    entry["measured"] = time.strftime("%Y-%m-%d %H:%M")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
