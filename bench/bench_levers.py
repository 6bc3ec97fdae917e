"""Inference-time levers for issue 16, each through the real pipeline (build: embed →
train-split PCA → α-DBA/QE index; evaluate: leave-one-out) on the dev bench's test split and
on the dev copy-detection set. One store per setting and source under ``--stores``.
Merges its figures into bench/results/levers.json.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_levers.py trim --normalize trim
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench_data import COPY_SET, DEV_BENCH, rounded

import flows  # noqa: F401  (Prefect defaults before Prefect is imported)
from flows.build import BuildParams
from flows.evaluate import evaluate_flow
from logosim.data.sources import SourceSpec
from logosim.embed.params import EmbedParams

RESULTS = Path(__file__).parent / "results" / "levers.json"
KEYS = ("recall@1", "recall@10", "recall@100", "map", "nar", "queries")


def run(name: str, source: str, store: Path, embed: EmbedParams) -> tuple[dict, float]:
    params = BuildParams(
        source=SourceSpec(path=source, group_column="group"), store=str(store), embed=embed
    )
    started = time.perf_counter()
    metrics = evaluate_flow(params)
    return metrics, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="Name of the setting in levers.json.")
    parser.add_argument("--normalize", default="pad")
    parser.add_argument("--model", default=EmbedParams().model)
    parser.add_argument("--weights", default=EmbedParams().weights)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--stores", type=Path, default=Path("/tmp/tuned-stores"))
    parser.add_argument("--skip-copies", action="store_true")
    args = parser.parse_args()
    embed = EmbedParams(
        model=args.model,
        weights=args.weights,
        image_size=args.image_size,
        normalize=args.normalize,
    )
    entry: dict = {
        "embed": embed.model_dump(include={"model", "weights", "image_size", "normalize"})
    }
    bench, seconds = run(args.name, DEV_BENCH, args.stores / f"{args.name}-bench", embed)
    entry["test_split"] = rounded(bench.get("test_split", {}), KEYS)
    entry["all_queries"] = rounded(bench, KEYS)
    entry["bench_seconds"] = round(seconds, 1)
    if not args.skip_copies:
        copies, seconds = run(args.name, COPY_SET, args.stores / f"{args.name}-copy", embed)
        entry["copies"] = rounded(copies, KEYS)
        entry["copy_seconds"] = round(seconds, 1)
    print(json.dumps(entry, indent=1))
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report[args.name] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
