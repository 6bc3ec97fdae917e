"""Outline copies (issue 16, eleventh round): does a second look at the query find them?

An outline copy keeps a mark's contours as thin lines and none of its fill; the build's input
blur takes most of those lines away. Two second looks, scored against the build's gallery
vectors (similarity = the better of the two):

- ``sharp-max``: the query embedded without the blur as well;
- ``fill-max``: the query's ink, enclosed holes filled, drawn black on white (a silhouette);
  ``fill-twin`` also keeps a silhouette vector per gallery image; ``gatedR-*`` takes the
  second look only for queries whose silhouette is R times their ink (line drawings).

Shipped weights and projection, the build's trim framing and σ 2 blur, no text mask (it needs
a built store's OCR masks), whole gallery of 12,390 (bench + copies); queries from the val
split only, as ``figures_by_split.py`` picks them. Prints and writes JSON.

    flock /tmp/logosim-heavy.lock env PYTHONPATH=$PWD .venv/bin/python bench/probe_outline.py
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
from bench_blur import blurred_features
from bench_data import DEV_BENCH, print_and_write, rounded
from PIL import Image
from tqdm import tqdm

from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import SplitsParams, assign_splits, read_items
from logosim.embed.embedder import Embedder
from logosim.embed.normalize import to_model_input
from logosim.embed.params import DEFAULT_BLUR, EmbedParams
from logosim.embed.pca import PCAModel
from logosim.embed.weight_files import logo_projection_path
from logosim.search.metrics import group_codes, query_rows, ranks_from_scores, summarize

RESULTS = Path(__file__).parent / "results"
COPIES = Path(DEV_BENCH).with_name("logo_copy_dev_copies.parquet")
INK = 30  # max channel difference from the ground colour that counts as ink
EDGE = 4  # the outline edit draws the canvas edge as a line: cleared before filling
GATES = (1.5, 2.0, 3.0)


def silhouette(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The ink with its enclosed holes filled, black on white, and filled area / ink area."""
    image = image.copy()
    image[:EDGE], image[-EDGE:], image[:, :EDGE], image[:, -EDGE:] = 255, 255, 255, 255
    corners = np.stack([image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]])
    ground = np.median(corners, axis=0).astype(np.int16)
    ink = (np.abs(image.astype(np.int16) - ground).max(axis=2) > INK).astype(np.uint8)
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    h, w = closed.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)  # a clear ring, so the flood goes all round
    flood[1:-1, 1:-1] = closed
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2)
    solid = flood[1:-1, 1:-1] != 2
    out = np.full_like(image, 255)
    out[solid] = 0
    return out, float(solid.sum()) / max(1.0, float(ink.sum()))


def val_ids() -> set[str]:
    """The dev bench's val split, as the splits flow assigns it (default parameters)."""
    items = read_items(
        open_source(SourceSpec(path=DEV_BENCH, group_column="group")), SplitsParams()
    )
    assign_splits(items, SplitsParams())
    return {item.id for item in items if item.split == "val"}


def variants(base, sharp, fill, ratios, queries) -> dict[str, np.ndarray]:
    plain = base[queries] @ base.T
    out = {
        "base": plain,
        "sharp-max": np.maximum(plain, sharp[queries] @ base.T),
        "fill-max": np.maximum(plain, fill[queries] @ base.T),
        "fill-twin": np.maximum(plain, fill[queries] @ fill.T),
    }
    for gate in GATES:
        line_drawing = (ratios[queries] > gate)[:, None]
        for name in ("fill-max", "fill-twin"):
            out[f"gated{gate:g}-{name}"] = np.where(line_drawing, out[name], plain)
    return out


class ProbeSet:
    """The dev bench and its copies as one gallery of 12,390, with each image's group in the
    copy task (a copy belongs to its source) and in the brand task."""

    def __init__(self) -> None:
        bench = pq.read_table(DEV_BENCH, columns=["id", "group", "image"]).to_pylist()
        copies = pq.read_table(COPIES).to_pylist()
        sources = {c["group"] for c in copies}
        self.rows = bench + copies
        self.bench_size = len(bench)
        self.ids = [r["id"] for r in self.rows]
        self.edits = [""] * len(bench) + [c["edit"] for c in copies]
        self.by_copy = [r["id"] if r["id"] in sources else "" for r in bench] + [
            c["group"] for c in copies
        ]
        self.by_brand = [r["group"] or "" for r in bench] + [""] * len(copies)

    def decoded(self) -> Iterator[np.ndarray]:
        for row in tqdm(self.rows, desc="decode", mininterval=30):
            yield np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB"))

    def score(self, variants: Callable[[np.ndarray], dict[str, np.ndarray]], report: dict) -> None:
        """Each variant's figures for the val split's copy and brand queries, into ``report``
        (``variants`` maps query rows to named score matrices against the whole gallery)."""
        members = val_ids()
        ids = self.ids
        kinds: dict[str, tuple[list[str], Callable[[int], str]]] = {
            "copies": (self.by_copy, lambda i: self.by_copy[i] or ids[i]),
            "bench": (self.by_brand, lambda i: ids[i]),
        }
        for kind, (groups, owner) in kinds.items():
            codes = group_codes(groups)
            queries = query_rows(codes, np.array([owner(i) in members for i in range(len(ids))]))
            outline = np.array(["outline" in self.edits[q] for q in queries])
            report[f"{kind} queries"] = len(queries)
            for name, scores in variants(queries).items():
                ranks = ranks_from_scores(scores.copy(), queries, codes)
                keys = ("recall@1", "recall@10", "map", "nar")
                entry = rounded(summarize(ranks, len(ids) - 1), keys)
                if outline.any():
                    first = np.array([r[0] for r in ranks])
                    entry["outline R@1"] = round(float(np.mean(first[outline] <= 1)), 4)
                    entry["outline R@100"] = round(float(np.mean(first[outline] <= 100)), 4)
                report[f"{kind} {name}"] = entry


def framer(embedder: Embedder) -> Callable[[np.ndarray], Image.Image]:
    """The build's framing (trim or pad to the network's square), without the blur."""

    def framed(image: np.ndarray) -> Image.Image:
        return to_model_input(Image.fromarray(image), embedder.image_size, embedder.normalize)

    return framed


def main() -> None:
    data = ProbeSet()
    embedder = Embedder(EmbedParams(blur=0))  # the blur is applied here, after framing
    framed = framer(embedder)
    squares, fills, ratios = [], [], []
    for raw in data.decoded():
        solid, ratio = silhouette(raw)
        squares.append(framed(raw))
        fills.append(framed(solid))
        ratios.append(ratio)
    ratios_arr = np.array(ratios)
    with np.load(logo_projection_path(), allow_pickle=False) as npz:
        project = PCAModel.from_arrays(dict(npz)).transform
    base = project(blurred_features(embedder, squares, DEFAULT_BLUR))
    sharp = project(blurred_features(embedder, squares, 0.0))
    fill = project(blurred_features(embedder, fills, DEFAULT_BLUR))

    report: dict = {"split": "val", "ink": INK}
    data.score(lambda queries: variants(base, sharp, fill, ratios_arr, queries), report)
    copy_rows = np.array([bool(e) for e in data.edits])
    outline_rows = np.array(["outline" in e for e in data.edits])
    report["silhouette / ink quartiles"] = {
        "outline copies": np.percentile(ratios_arr[outline_rows], [25, 50, 75]).round(2).tolist(),
        "other copies": np.percentile(ratios_arr[copy_rows & ~outline_rows], [25, 50, 75])
        .round(2)
        .tolist(),
        "bench": np.percentile(ratios_arr[: data.bench_size], [25, 50, 75]).round(2).tolist(),
    }
    print_and_write(report, RESULTS / "outline-probe-val.json")


if __name__ == "__main__":
    main()
