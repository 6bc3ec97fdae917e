"""OCR + masking throughput on this machine, and the text pre-filter against Tesseract.

Runs the real preprocess path (decode → [pre-filter] → Tesseract → mask → RLE) through the
OCR process pool on a sample of the dev benchmark, for several settings, and prints img/s.
Writes bench/results/preprocess.json.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_preprocess.py --sample 400
    … --sample 1000 --only "2 workers, psm 11 + prefilter" \
        "2 workers, psm 11 + prefilter + line fallback" --out bench/results/preprocess-lines.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
from bench_data import DEV_BENCH

from logosim.preprocess.ocr import OcrParams
from logosim.preprocess.ocr_pool import OcrPool
from logosim.preprocess.stage import OcrItem, PreprocessParams, analyse_image
from logosim.preprocess.text_mask import MaskFlag

RESULTS = Path(__file__).parent / "results" / "preprocess.json"

# Tesseract's page layout alone: the OCR these settings were first measured with.
PAGE_ONLY = {"line_fallback": False}

CONFIGS: dict[str, dict] = {
    "1 worker, psm 11, OpenMP default": {
        "workers": 1,
        "omp": None,
        "ocr": {**PAGE_ONLY, "prefilter": False},
    },
    "1 worker, psm 11, OMP_THREAD_LIMIT=1": {
        "workers": 1,
        "omp": "1",
        "ocr": {**PAGE_ONLY, "prefilter": False},
    },
    "2 workers, psm 11": {
        "workers": 2,
        "omp": "1",
        "ocr": {**PAGE_ONLY, "prefilter": False},
    },
    "2 workers, psm 11, max_side 160": {
        "workers": 2,
        "omp": "1",
        "ocr": {**PAGE_ONLY, "max_side": 160, "prefilter": False},
    },
    "2 workers, psm 6": {
        "workers": 2,
        "omp": "1",
        "ocr": {**PAGE_ONLY, "psm": 6, "prefilter": False},
    },
    "2 workers, psm 11 + prefilter": {
        "workers": 2,
        "omp": "1",
        "ocr": {**PAGE_ONLY, "prefilter": True},
    },
    # The default: rows the page layout read nothing in are read one at a time.
    "2 workers, psm 11 + prefilter + line fallback": {"workers": 2, "omp": "1", "ocr": {}},
}


def load_sample(n: int, seed: int = 0) -> list[OcrItem]:
    table = pq.read_table(DEV_BENCH, columns=["id", "image"])
    step = max(1, table.num_rows // n)  # spread over collections (file is ordered by them)
    rows = table.take(list(range(seed, table.num_rows, step))[:n]).to_pylist()
    return [OcrItem(r["id"], r["id"], r["image"], None) for r in rows]


def run(items: list[OcrItem], name: str, config: dict) -> tuple[dict, dict[str, MaskFlag]]:
    if config["omp"] is None:
        os.environ.pop("OMP_THREAD_LIMIT", None)
    params = PreprocessParams(workers=config["workers"], ocr=OcrParams(**config["ocr"]))
    pool = OcrPool(params.workers, timeout_s=params.ocr.timeout_s)
    if config["omp"] is None:  # the pool sets OMP_THREAD_LIMIT=1; undo it for this baseline
        import logosim.preprocess.ocr_pool as pool_module

        original = pool_module._init_worker
        pool_module._init_worker = _init_without_omp_limit
    try:
        with pool:
            list(pool.map(partial(analyse_image, params=params), items[:4]))  # spawn + warm
            started = time.perf_counter()
            results = list(pool.map(partial(analyse_image, params=params), items))
            seconds = time.perf_counter() - started
    finally:
        if config["omp"] is None:
            pool_module._init_worker = original
    flags = {r.id: r.flag for r in results}
    counts = {f.name.lower(): sum(v == f for v in flags.values()) for f in MaskFlag}
    row = {
        "config": name,
        "images": len(items),
        "seconds": round(seconds, 2),
        "img_per_s": round(len(items) / seconds, 2),
        "ms_per_img_per_core": round(1000 * seconds * params.workers / len(items), 1),
        "flags": {k: v for k, v in counts.items() if v},
    }
    print(f"{name:42s} {row['img_per_s']:7.2f} img/s  {row['flags']}", flush=True)
    return row, flags


def _init_without_omp_limit(tesseract_cmd: str) -> None:
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = tesseract_cmd


def prefilter_quality(reference: dict[str, MaskFlag], filtered: dict[str, MaskFlag]) -> dict:
    """Recall: of the images Tesseract finds words in, how many the pre-filter lets through."""
    has_text = {i for i, f in reference.items() if f in (MaskFlag.MASKED, MaskFlag.WORDMARK)}
    passed = {i for i, f in filtered.items() if f != MaskFlag.SKIPPED}
    kept = len(has_text & passed)
    return {
        "tesseract_text_images": len(has_text),
        "prefilter_passed": len(passed),
        "recall_vs_tesseract": round(kept / len(has_text), 3) if has_text else None,
        "precision_vs_tesseract": round(kept / len(passed), 3) if passed else None,
        "skipped_share": round(1 - len(passed) / len(filtered), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--only", nargs="*", default=None, help="Config names to run.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where the JSON goes.")
    args = parser.parse_args()
    items = load_sample(args.sample)
    print(f"{len(items)} dev-bench images, {os.cpu_count()} cores")
    rows, flags = [], {}
    for name, config in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        row, flags[name] = run(items, name, config)
        rows.append(row)
    report: dict = {"sample": len(items), "cores": os.cpu_count(), "runs": rows}
    base, pre = "2 workers, psm 11", "2 workers, psm 11 + prefilter"
    if base in flags and pre in flags:
        report["prefilter"] = prefilter_quality(flags[base], flags[pre])
        print("pre-filter vs Tesseract:", report["prefilter"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
