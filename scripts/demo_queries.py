"""Write a few demo logos as query files, altered the way marks are in real registers.

Each query is a member of a known-similar group, turned grayscale and shrunk onto a larger
white canvas, so a good search finds the other renditions of the brand, not just a copy.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image, ImageOps

from logosim.data.decode import decode_image
from logosim.demo import DEMO_PARQUET


def altered(data: bytes) -> Image.Image:
    image = ImageOps.grayscale(decode_image(data)).convert("RGB")
    canvas = Image.new("RGB", (int(image.width * 1.3), int(image.height * 1.3)), "white")
    canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
    return canvas


def main(out: Path, count: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = pq.read_table(DEMO_PARQUET, columns=["id", "group", "image"]).to_pylist()
    grouped = [row for row in rows if row["group"]]
    step = max(len(grouped) // count, 1)
    for row in grouped[::step][:count]:
        path = out / (row["id"].replace("/", "__") + ".png")
        buffer = io.BytesIO()
        altered(row["image"]).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue())
        print(f"query {path}  (group {row['group']!r})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
