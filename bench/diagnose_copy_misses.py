"""Diagnosis for issue 16: when a copy-set query's top hit is wrong, what is it?

The copy set asks two things: find the original from its edited copy (copy → original) and
the copy from its original (original → copy), among all 12,390 images. A wrong top hit is
one of:

- ``sibling``: another image of the source's own brand group in the bench (often the same
  mark from another icon collection, drawn alike) — or a copy of one;
- ``another copy``: an edited copy of a different source (the edit's look found, not the mark);
- ``same collection``: an unrelated mark from the source's icon collection (drawing style);
- ``other``.

It also scores the copy set with the items of a miss kind left out of the gallery — the
source's brand siblings, other sources' copies, or both — next to the official figure (the
official one sets the target; the others say how much of the gap each kind is). Reads a
built copy-set store's live vectors (as evaluate scores them) and, for the split figures, a
dev-bench store's splits. ``group`` and ``collection`` are read for diagnosis only. Prints and
writes bench/results/copy_misses_<name>.json, and a picture of examples under ``--pictures``.

    .venv/bin/python bench/diagnose_copy_misses.py --store C --splits-from S --name v3-blur
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_data import COPY_SET, DEV_BENCH, print_and_write, rounded
from figures_by_split import live_vectors
from PIL import Image, ImageDraw

from logosim.core.store import ArtifactStore
from logosim.data.splits import load_split_ids
from logosim.embed.normalize import to_model_input
from logosim.search.metrics import group_codes, ranks_from_scores, summarize

RESULTS = Path(__file__).parent / "results"
KINDS = ("right", "sibling", "another copy", "same collection", "other")
KEYS = ("recall@1", "recall@10", "map", "nar", "queries")
THUMB = 112
PIXELS = 32  # near-duplicate check: trimmed, this many pixels a side
DUPLICATE_CORRELATION = 0.95  # two drawings this alike by pixels count as one


def standardised_thumbnail(image: bytes) -> np.ndarray:
    """The mark trimmed and padded to PIXELS², colour, zero mean and unit norm."""
    square = to_model_input(Image.open(io.BytesIO(image)).convert("RGB"), PIXELS, "trim")
    pixels = np.asarray(square, np.float32).ravel()
    pixels -= pixels.mean()
    return pixels / (np.linalg.norm(pixels) + 1e-6)


class CopySet:
    """The copy set's rows in store order, with each row's source and the source's brand."""

    def __init__(self, ids: Sequence[str], copy_set: str) -> None:
        rows = pq.read_table(copy_set, columns=["id", "group", "edit", "image"]).to_pylist()
        bench = pq.read_table(DEV_BENCH, columns=["id", "group", "collection"]).to_pylist()
        brand_of = {r["id"]: r["group"] or "" for r in bench}
        collection_of = {r["id"]: r["collection"] or "" for r in bench}
        edit_of = {r["id"]: r["edit"] or "" for r in rows}
        group_of = {r["id"]: r["group"] or "" for r in rows}
        self.images: dict[str, bytes] = {r["id"]: r["image"] for r in rows}
        self.ids = list(ids)
        self.edit = [edit_of[i] for i in ids]
        # A copy's group is its source's id; a bench image is its own source.
        self.source = np.array([group_of[i] if edit_of[i] else i for i in ids])
        self.brand = np.array([brand_of.get(s, "") for s in self.source])
        self.collection = [collection_of.get(s, "") for s in self.source]
        self.group = np.array([group_of[i] for i in ids])
        self.edited = np.array([bool(e) for e in self.edit])
        sources = {group_of[r["id"]] for r in rows if r["edit"]}
        self.queries = np.array([k for k, g in enumerate(self.group) if g in sources])
        row = {image: k for k, image in enumerate(self.ids)}
        self.source_row = np.array([row[s] for s in self.source])
        self.duplicate = self._near_duplicates()

    def _near_duplicates(self) -> dict[int, set[int]]:
        """Per query row: the bench images (rows) drawn like its source, by pixels alone:
        trimmed to the mark, colour, PIXELS a side, standardised, correlation ≥
        DUPLICATE_CORRELATION (chosen by eye on pairs in bands of correlation)."""
        bench = np.flatnonzero(~self.edited)
        thumbs = np.stack([standardised_thumbnail(self.images[self.ids[k]]) for k in bench])
        position = {k: j for j, k in enumerate(bench)}
        wanted = sorted({position[self.source_row[q]] for q in self.queries})
        close = thumbs[wanted] @ thumbs.T >= DUPLICATE_CORRELATION
        like = {
            bench[wanted[j]]: {bench[c] for c in np.flatnonzero(row)} for j, row in enumerate(close)
        }
        return {q: like[self.source_row[q]] - {self.source_row[q]} for q in self.queries}

    def duplicates(self, queries: np.ndarray) -> np.ndarray:
        """Mask (queries × items): near-duplicates of the query's source, and their copies."""
        mask = np.zeros((len(queries), len(self.ids)), dtype=bool)
        for i, q in enumerate(queries):
            mask[i] = np.isin(self.source_row, list(self.duplicate[q]))
        return mask

    def edits(self, row: int) -> set[str]:
        return {e for e in self.edit[row].split("+") if e}

    def kind(self, query: int, hit: int) -> str:
        if self.group[hit] == self.group[query]:
            return "right"
        if self.brand[query] and self.brand[hit] == self.brand[query]:
            return "sibling"
        if self.edit[hit]:
            return "another copy"
        if self.collection[hit] == self.collection[query]:
            return "same collection"
        return "other"

    def siblings(self, queries: np.ndarray) -> np.ndarray:
        """Mask (queries × items): the query source's brand siblings and their copies."""
        brands = self.brand[queries][:, None]
        return (
            (brands != "")
            & (self.brand[None, :] == brands)
            & (self.source[None, :] != self.source[queries][:, None])
        )

    def other_copies(self, queries: np.ndarray) -> np.ndarray:
        """Mask (queries × items): edited copies of other sources."""
        return self.edited[None, :] & (self.group[None, :] != self.group[queries][:, None])


# Galleries the diagnosis scores: the official one, and with items of a miss kind left out.
GALLERIES = {
    "official": lambda data, q: None,
    "siblings left out": CopySet.siblings,
    "other copies left out": CopySet.other_copies,
    "both left out": lambda data, q: data.siblings(q) | data.other_copies(q),
    "pixel near-duplicates left out": CopySet.duplicates,
}


def score(x: np.ndarray, data: CopySet, queries: np.ndarray) -> tuple[np.ndarray, dict]:
    """Top hits, and the figures of ``queries`` against each of ``GALLERIES``."""
    codes = group_codes(data.group)
    hits, ranks = [], {name: [] for name in GALLERIES}
    for start in range(0, len(queries), 512):
        q = queries[start : start + 512]
        scores = x[q] @ x.T
        scores[np.arange(len(q)), q] = -np.inf
        hits.append(scores.argmax(axis=1))
        for name, left_out in GALLERIES.items():
            mine = scores.copy()
            mask = left_out(data, q)
            if mask is not None:
                mine[mask] = -1e9  # after every other item, before the query itself
            ranks[name].extend(ranks_from_scores(mine, q, codes))
    # The gallery size stays the official one: left-out items rank last, past every answer.
    figures = {name: rounded(summarize(r, len(x) - 1), KEYS) for name, r in ranks.items()}
    return np.concatenate(hits), figures


def share(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 4) if flags else None


def breakdown(data: CopySet, queries: np.ndarray, hits: np.ndarray) -> dict:
    """Share of each top-hit kind, per direction and per edit (copy queries)."""
    out: dict = {}
    kinds = [data.kind(q, h) for q, h in zip(queries, hits, strict=True)]
    for direction, wanted in (("copy → original", True), ("original → copy", False)):
        mine = [k for q, k in zip(queries, kinds, strict=True) if bool(data.edit[q]) == wanted]
        counts = Counter(mine)
        out[direction] = {k: round(counts[k] / max(1, len(mine)), 4) for k in KINDS} | {
            "queries": len(mine)
        }
    misses = [
        (k, data.source_row[h] in data.duplicate[q])
        for q, h, k in zip(queries, hits, kinds, strict=True)
        if k != "right"
    ]
    out["wrong top hit is a pixel near-duplicate of the source"] = {
        kind: share([twin for k, twin in misses if k == kind]) for kind in KINDS[1:]
    } | {"all": share([twin for _, twin in misses])}
    pairs = [(q, h) for q, h, k in zip(queries, hits, kinds, strict=True) if k == "another copy"]
    shared = [bool(data.edits(q) & data.edits(h)) for q, h in pairs if data.edit[q]]
    out["another copy: shares an edit with the copy query"] = share(shared)
    edits = sorted({e for q in queries for e in data.edits(q)})
    out["copy → original by edit"] = {}
    for edit in edits:
        mine = [k for q, k in zip(queries, kinds, strict=True) if edit in data.edits(q)]
        counts = Counter(mine)
        out["copy → original by edit"][edit] = {
            k: round(counts[k] / len(mine), 3) for k in KINDS
        } | {"queries": len(mine)}
    return out


def picture(data: CopySet, queries: np.ndarray, hits: np.ndarray, out: Path) -> None:
    """Rows of query | wrong top hit | the right answer, four per miss kind."""
    rng = np.random.default_rng(0)
    rows: list[tuple[str, int, int]] = []
    for kind in KINDS[1:]:
        found = [(q, h) for q, h in zip(queries, hits, strict=True) if data.kind(q, h) == kind]
        for i in rng.choice(len(found), size=min(4, len(found)), replace=False):
            rows.append((kind, *found[i]))
    width, height = 3 * (THUMB + 8), len(rows) * (THUMB + 16)
    canvas = Image.new("RGB", (width, height + 16), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), "query | wrong top hit | right answer", fill="black")
    for r, (kind, q, h) in enumerate(rows):
        answer = next(k for k, g in enumerate(data.group) if g == data.group[q] and k != q)
        y = 16 + r * (THUMB + 16)
        for c, k in enumerate((q, h, answer)):
            thumb = Image.open(io.BytesIO(data.images[data.ids[k]])).convert("RGB")
            thumb.thumbnail((THUMB, THUMB))
            canvas.paste(thumb, (c * (THUMB + 8), y))
        label = f"{kind}; query edit: {data.edit[q] or 'none (original)'}"
        draw.text((4, y + THUMB + 2), label, fill="black")
    canvas.save(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="A built copy-set store.")
    parser.add_argument("--splits-from", help="A built dev-bench store (figures per split).")
    parser.add_argument("--copy-set", default=COPY_SET)
    parser.add_argument("--name", required=True)
    parser.add_argument("--pictures", type=Path, help="Folder for the examples' picture.")
    args = parser.parse_args()
    ids, x = live_vectors(ArtifactStore(args.store))
    data = CopySet(ids, args.copy_set)
    report: dict = {"store": args.store}
    splits = {"all": data.queries}
    if args.splits_from:
        for split in ("val", "test"):
            members = load_split_ids(ArtifactStore(args.splits_from), split)
            splits[split] = np.array([q for q in data.queries if data.source[q] in members])
    for split, queries in splits.items():
        hits, figures = score(x, data, queries)
        report[split] = figures | {
            "top hits": breakdown(data, queries, hits),
            "source has a pixel near-duplicate": share([bool(data.duplicate[q]) for q in queries]),
        }
        if split == "all" and args.pictures:
            args.pictures.mkdir(parents=True, exist_ok=True)
            picture(data, queries, hits, args.pictures / f"copy_misses_{args.name}.png")
    print_and_write(report, RESULTS / f"copy_misses_{args.name}.json")


if __name__ == "__main__":
    main()
