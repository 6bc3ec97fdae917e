"""Share of images ``trim_small`` would trim (mark box < 60 % of the longer side): 1,000
sampled from the dev bench and 1,000 from the dev copy set (issue 16, second round).

    PYTHONPATH=$PWD .venv/bin/python bench/trim_small_share.py
"""

from __future__ import annotations

import random
from collections import Counter

import pyarrow.parquet as pq

from logosim.data.decode import decode_image
from logosim.embed.normalize import TRIM_SMALL_BELOW, content_box

FILES = ("/work/shared/bench/logo_bench_dev.parquet", "/tmp/bench/copy_dev.parquet")
SAMPLE = 1000


def main() -> None:
    for path in FILES:
        table = pq.read_table(path)
        has_edit = "edit" in table.column_names
        trimmed: Counter[str] = Counter()
        for i in random.Random(0).sample(range(table.num_rows), SAMPLE):
            image = decode_image(table["image"][i].as_py())
            found = content_box(image)
            if found is None:
                continue
            (left, top, right, bottom), _ = found
            if max(right - left, bottom - top) < TRIM_SMALL_BELOW * max(image.size):
                trimmed[table["edit"][i].as_py() if has_edit else ""] += 1
        print(f"{path}: {sum(trimmed.values()) / SAMPLE:.3f} trimmed", dict(trimmed))


if __name__ == "__main__":
    main()
