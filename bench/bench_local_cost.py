"""What storing local descriptors costs the embed stage: end-to-end img/s with local on vs off.

The same dev-bench images go through ``Embedder.embed_records`` (the embed flow's path: read,
decode, normalise, network, and with local on the feature-map head and its projection) with
the default settings, alternating on/off for several rounds so drift on a shared machine hits
both alike. Issue 12's target: local on costs at most 10 % of the throughput. Beside img/s it
reports the process's CPU time per image (all threads: decode, network, local blocks), which
moves less than wall time when the shared machine's other tenants come and go.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_local_cost.py --images 1500

Writes ``bench/results/local_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

from bench_data import DEV_BENCH

from logosim.data.sources import SourceSpec, open_source
from logosim.embed.embedder import Embedder
from logosim.embed.params import EmbedParams

RESULTS = Path(__file__).parent / "results" / "local_cost.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEV_BENCH)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    spec = SourceSpec(path=str(args.source))
    embedders = {local: Embedder(EmbedParams(local=local)) for local in (False, True)}
    for embedder in embedders.values():  # warm-up on other rows: caches, compiled graphs
        embedder.embed_records(open_source(spec).records(args.images, args.images + 64))
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu_ms: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for local, embedder in embedders.items():
            cpu_before = _cpu_seconds()
            result = embedder.embed_records(
                open_source(spec).records(0, args.images), desc=f"local {'on' if local else 'off'}"
            )
            rates[local].append(result.throughput)
            cpu_ms[local].append(1000 * (_cpu_seconds() - cpu_before) / max(1, len(result.ids)))
            print(
                f"local {'on ' if local else 'off'}: {result.throughput:6.1f} img/s, "
                f"{cpu_ms[local][-1]:.2f} CPU ms an image",
                flush=True,
            )
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    paired = statistics.median(b / a for a, b in zip(rates[False], rates[True], strict=True))
    cpu_off, cpu_on = statistics.median(cpu_ms[False]), statistics.median(cpu_ms[True])
    figures = {
        "images": args.images,
        "rounds": args.rounds,
        "runtime": embedders[True].runtime.name,
        "img_per_s_local_off": [round(r, 1) for r in rates[False]],
        "img_per_s_local_on": [round(r, 1) for r in rates[True]],
        "median_off": round(off, 1),
        "median_on": round(on, 1),
        "cost_percent": round(100 * (1 - on / off), 1),
        # each round's on vs its own off (run back to back): steadier when the machine drifts
        "cost_percent_paired_median": round(100 * (1 - paired), 1),
        "cpu_ms_per_image_local_off": [round(c, 3) for c in cpu_ms[False]],
        "cpu_ms_per_image_local_on": [round(c, 3) for c in cpu_ms[True]],
        "cpu_cost_percent": round(100 * (cpu_on / cpu_off - 1), 1),
        "target_percent": 10,
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(figures, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
