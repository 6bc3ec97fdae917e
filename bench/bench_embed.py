"""Embedding throughput end to end (Parquet read + decode + normalise + network) per CPU option.

For each runtime (fp32 eager, channels-last, bf16 autocast, ONNX Runtime) it embeds the same
dev-bench images through ``Embedder.embed_records`` — the code path of the embed flow — and
reports img/s and the minimum cosine against fp32 eager. Model-only throughput (a fixed
batch, no decoding) is printed beside it to show what the input pipeline costs.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_embed.py --images 1500

Writes ``bench/results/embed.json``. The fastest option with min cosine ≥ 0.999 is what
``runtime='auto'`` uses on CPU (``logosim.embed.runtime.CPU_AUTO``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from logosim.core.monitor import peak_rss_mb
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.embedder import Embedder
from logosim.embed.params import EmbedParams
from logosim.embed.runtime import physical_cores

DEV_BENCH = Path("/work/shared/bench/logo_bench_dev.parquet")
RESULTS = Path(__file__).parent / "results" / "embed.json"
OPTIONS = ("eager", "channels_last", "bf16", "onnx", "openvino")
COSINE_FLOOR = 0.999


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def model_only(embedder: Embedder, seconds: float = 5.0) -> float:
    batch = np.random.default_rng(0).standard_normal(
        (embedder.batch_size, 3, embedder.params.image_size, embedder.params.image_size),
        dtype=np.float32,
    )
    embedder.runtime(batch)  # warm-up: allocations, oneDNN primitive cache
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.runtime(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def run(source: Path, images: int, batch_size: int, workers: int, options: list[str]) -> dict:
    spec = SourceSpec(path=str(source))
    reference: np.ndarray | None = None
    rows = []
    for option in options:
        embedder = Embedder(EmbedParams(runtime=option, batch_size=batch_size, workers=workers))
        # Warm-up on other rows so every option starts with caches and primitives built.
        embedder.embed_records(open_source(spec).records(images, images + 2 * embedder.batch_size))
        result = embedder.embed_records(open_source(spec).records(0, images), desc=option)
        vectors = result.matrix(embedder.dim)
        if reference is None:
            if option != "eager":
                raise SystemExit("the first option must be 'eager' (the reference)")
            reference = vectors
        row = {
            "runtime": option,
            "images": len(result.ids),
            "batch_size": embedder.batch_size,
            "seconds": round(result.seconds, 2),
            "img_per_s_end_to_end": round(result.throughput, 1),
            "img_per_s_model_only": round(model_only(embedder), 1),
            "min_cosine_vs_eager": round(min_cosine(vectors, reference), 6),
        }
        rows.append(row)
        print(
            f"{option:>14}: {row['img_per_s_end_to_end']:6.1f} img/s end to end, "
            f"{row['img_per_s_model_only']:6.1f} model only, "
            f"min cosine {row['min_cosine_vs_eager']:.6f}",
            flush=True,
        )
        del embedder
    eligible = [r for r in rows if r["min_cosine_vs_eager"] >= COSINE_FLOOR]
    best = max(eligible, key=lambda r: r["img_per_s_end_to_end"])
    print(f"fastest with cosine ≥ {COSINE_FLOOR}: {best['runtime']}")
    return {
        "source": str(source),
        "images": images,
        "workers": workers or physical_cores(),
        "cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cosine_floor": COSINE_FLOOR,
        "results": rows,
        "fastest_eligible": best["runtime"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEV_BENCH)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the embedder's default")
    parser.add_argument("--workers", type=int, default=0, help="decode threads, 0 = cores")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.source, args.images, args.batch_size, args.workers, args.options)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
