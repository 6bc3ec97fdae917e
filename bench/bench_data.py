"""Where the bench scripts find the dev data, and how they round figures (one place for all).

The dev bench ships in ../shared/bench; the copy set is assembled from it by
``python ../shared/bench/assemble_copies.py /tmp/bench/copy_dev.parquet``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

DEV_BENCH = "/work/shared/bench/logo_bench_dev.parquet"
COPY_SET = "/tmp/bench/copy_dev.parquet"


def rounded(metrics: dict, keys: Iterable[str] | None = None) -> dict:
    """Floats to 4 decimals, for JSON a person reads; ``keys`` keeps only those metrics."""
    wanted = None if keys is None else set(keys)
    return {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in metrics.items()
        if wanted is None or k in wanted
    }


def print_and_write(report: dict, out: Path) -> None:
    """Show a report's JSON and keep it under bench/results (the figures the notes cite)."""
    print(json.dumps(report, indent=1))
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
