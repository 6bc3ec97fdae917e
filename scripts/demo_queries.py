"""Write a few demo logos (members of known-similar groups) as PNG query files."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

from logosim.demo import DEMO_PARQUET


def main(out: Path, count: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(DEMO_PARQUET, columns=["id", "group", "image"]).to_pylist()
    grouped = [row for row in table if row["group"]]
    step = max(len(grouped) // count, 1)
    for row in grouped[::step][:count]:
        name = row["id"].replace("/", "__") + ".png"
        (out / name).write_bytes(row["image"])
        print(f"query {out / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
