"""What many tests build for themselves: demo subsets, embedding chunk files, lock-ups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from logosim.core.store import ArtifactStore, Manifest
from logosim.demo import DEMO_PARQUET


def demo_rows(grouped: int, others: int, skip_others: int = 0) -> pa.Table:
    """The first ``grouped`` demo logos that have a known-similar group (so splits and
    evaluation have pairs), then ``others`` distractors (after skipping ``skip_others``)."""
    table = pq.read_table(DEMO_PARQUET)
    has_group = pc.not_equal(table["group"], "")
    return pa.concat_tables(
        [
            table.filter(has_group).slice(0, grouped),
            table.filter(pc.invert(has_group)).slice(skip_others, others),
        ]
    )


def write_demo_subset(path: Path, grouped: int, others: int) -> Path:
    pq.write_table(demo_rows(grouped, others), path)
    return path


def write_rows_chunk(store: ArtifactStore, rows: list[dict], features: np.ndarray) -> Manifest:
    """One embedding chunk holding ``features`` under the ids of ``rows``."""
    return store.write_arrays(
        "embeddings/test.npz",
        {
            "ids": np.array([r["id"] for r in rows]),
            "embeddings": features,
            "rows": np.arange(len(rows)),
        },
        kind="embeddings",
        rows=len(rows),
    )


def write_embedding_chunks(
    store: ArtifactStore, features: np.ndarray, size: int, prefix: str = "e"
) -> list[Manifest]:
    """``features`` as embedding chunk files of ``size`` rows, ids ``<prefix><row>``."""
    manifests = []
    for n, start in enumerate(range(0, len(features), size)):
        part = features[start : start + size]
        ids = np.array([f"{prefix}{i}" for i in range(start, start + len(part))])
        manifests.append(
            store.write_arrays(
                f"embeddings/{prefix}-{n}.npz",
                {"ids": ids, "embeddings": part, "rows": np.arange(start, start + len(part))},
                kind="embeddings",
                rows=len(part),
            )
        )
    return manifests


LOCKUP_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def beside_word(mark: Image.Image, word: str = "Nordwik", height: int = 224) -> Image.Image:
    """A lock-up as registers file it: the mark in the left square of a 2:1 canvas, a word
    element set in a plain face at the right."""
    mark = mark.convert("RGB")
    mark.thumbnail((int(height * 0.8), int(height * 0.8)))
    canvas = Image.new("RGB", (2 * height, height), "white")
    canvas.paste(mark, ((height - mark.width) // 2, (height - mark.height) // 2))
    font = ImageFont.truetype(LOCKUP_FONT, height // 7)
    draw = ImageDraw.Draw(canvas)
    top, bottom = draw.textbbox((0, 0), word, font=font)[1::2]
    draw.text(
        (height + height // 8, (height - (bottom - top)) // 2 - top), word, font=font, fill="black"
    )
    return canvas
