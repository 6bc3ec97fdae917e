"""Dev-bench retrieval with and without text masking, and pad-vs-crop normalisation.

Library-level (no Prefect): OCR masks for the chosen images through the OCR pool, then
three embedding passes with the default model — pad (no mask), pad + text mask, crop (no
mask) — each scored leave-one-out on raw GeM descriptors (L2, exact cosine search).
``--distractors N`` keeps every grouped image plus N ungrouped ones (all: the full bench).
Writes bench/results/text_mask.json.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_text_mask.py --distractors 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

from bench_data import DEV_BENCH

from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.embedder import Embedder
from logosim.embed.params import EmbedParams
from logosim.embed.pca import l2_normalize
from logosim.preprocess.mask_store import ImageMask, masked_prepare, write_mask_chunk
from logosim.preprocess.ocr_pool import Failure, OcrPool
from logosim.preprocess.stage import OcrItem, PreprocessParams, analyse_image
from logosim.preprocess.text_mask import MaskFlag, MaskParams
from logosim.search.metrics import leave_one_out

RESULTS = Path(__file__).parent / "results" / "text_mask.json"


def chosen_records(distractors: int) -> list[LogoRecord]:
    records, kept = [], 0
    for record in open_source(SourceSpec(path=DEV_BENCH, group_column="group")).records():
        if record.group:
            records.append(record)
        elif distractors < 0 or kept < distractors:
            records.append(record)
            kept += 1
    return records


def ocr_masks(records: list[LogoRecord], params: PreprocessParams, store: ArtifactStore):
    items = [OcrItem(r.id, r.ref, r.data, r.text) for r in records]
    started = time.perf_counter()
    masks = []
    with OcrPool(params.workers, timeout_s=params.ocr.timeout_s) as pool:
        for result in pool.map(partial(analyse_image, params=params), items):
            if isinstance(result, Failure):
                masks.append(ImageMask(result.item.id, MaskFlag.FAILED))
            else:
                masks.append(ImageMask(result.id, result.flag, result.shape, result.runs))
    seconds = time.perf_counter() - started
    manifest = write_mask_chunk(store, "masks/bench.npz", masks, versions={})
    print(f"OCR: {len(items)} images in {seconds:.0f} s ({len(items) / seconds:.1f} img/s)")
    print(f"flags: {manifest.meta['flags']}", flush=True)
    return manifest, seconds


def score(records: list[LogoRecord], normalize: str, prepare=None) -> dict:
    embedder = Embedder(EmbedParams(normalize=normalize))
    copies = [
        LogoRecord(r.id, r.ref, r.row, r.data, r.sha256, r.text, group=r.group) for r in records
    ]
    result = embedder.embed_records(copies, prepare=prepare, total=len(copies))
    groups = {r.id: r.group for r in records}
    vectors = l2_normalize(result.matrix(embedder.dim))
    metrics = leave_one_out(vectors, [groups[i] for i in result.ids])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distractors", type=int, default=-1, help="-1: all of them.")
    args = parser.parse_args()
    records = chosen_records(args.distractors)
    print(f"{len(records)} images ({sum(1 for r in records if r.group)} grouped)")
    params = PreprocessParams()
    with tempfile.TemporaryDirectory() as folder:
        store = ArtifactStore(folder)
        manifest, ocr_seconds = ocr_masks(records, params, store)
        prepare = masked_prepare(store, [manifest], MaskParams())
        report = {
            "images": len(records),
            "ocr_img_per_s": round(len(records) / ocr_seconds, 2),
            "flags": manifest.meta["flags"],
            "pad, no mask": score(records, "pad"),
            "pad, text mask": score(records, "pad", prepare),
            "crop, no mask": score(records, "crop"),
        }
    for name in ("pad, no mask", "pad, text mask", "crop, no mask"):
        print(f"{name:16s} {report[name]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
