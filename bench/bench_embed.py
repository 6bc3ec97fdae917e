"""Embedding throughput end to end (Parquet read + decode + normalise + network) per CPU option.

For each runtime (fp32 eager, channels-last, bf16 autocast, ONNX Runtime, OpenVINO fp32 and
bf16) it embeds the same dev-bench images through ``Embedder.embed_records`` — the code path
of the embed flow — and reports img/s, min/mean cosine against fp32 eager, and where a chunk's
time goes: inference (main thread), decode + prepare (thread-seconds in the reader pool,
overlapped with inference) and writing the chunk file. Model-only throughput (a fixed batch,
no decoding) is printed beside it. ``--decode`` adds decoding alone: dev-bench 224² JPEGs,
the same logos as 1024² JPEGs with and without the reduced-size (draft) decode, and as PNG.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_embed.py --images 1500 --decode

Writes ``bench/results/embed.json``. Which option ``runtime='auto'`` uses on CPU is decided
by retrieval parity (notes/issue-17-speed.md), not by cosine alone.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_data import DEV_BENCH
from PIL import Image

from logosim.core.monitor import peak_rss_mb
from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.embedder import Embedder
from logosim.embed.params import EmbedParams
from logosim.embed.runtime import physical_cores

RESULTS = Path(__file__).parent / "results" / "embed.json"
OPTIONS = ("eager", "channels_last", "bf16", "onnx", "openvino", "openvino_bf16")
COSINE_FLOOR = 0.999


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(cosines(a, b).min())


def write_seconds(result, dim: int) -> float:
    """What the chunk writer costs for this result: the same arrays, atomically, in a store."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        started = time.perf_counter()
        ArtifactStore(tmp).write_arrays(
            "embeddings/bench.npz",
            {
                "ids": np.asarray(result.ids, dtype=np.str_),
                "embeddings": result.matrix(dim),
                "rows": np.asarray(result.rows, dtype=np.int64),
            },
            kind="embeddings",
            rows=len(result.ids),
        )
        return time.perf_counter() - started


def rate(items: list, work) -> float:
    started = time.perf_counter()
    for item in items:
        work(item)
    return len(items) / (time.perf_counter() - started)


def decode_figures(source: Path, images: int) -> dict:
    """Decoding alone, one thread: the dev bench's bytes, and the same logos re-encoded."""
    datas = [r.data for r in open_source(SourceSpec(path=str(source))).records(0, images)]
    big, png = [], []
    for data in datas[:300]:
        image = decode_image(data)
        out = io.BytesIO()
        image.resize((1024, 1024), Image.Resampling.BICUBIC).save(out, "JPEG", quality=90)
        big.append(out.getvalue())
        out = io.BytesIO()
        image.save(out, "PNG")
        png.append(out.getvalue())
    figures = {
        "jpeg_224_img_per_s": rate(datas, decode_image),
        "png_224_img_per_s": rate(png, decode_image),
        "jpeg_1024_full_img_per_s": rate(big, decode_image),
        "jpeg_1024_draft_img_per_s": rate(big, lambda d: decode_image(d, draft_longest=224)),
    }
    figures = {k: round(v, 1) for k, v in figures.items()}
    # does the draft decode change the descriptor? (1024² copies, fp32 OpenVINO)
    embedder = Embedder(EmbedParams(runtime="openvino"))
    full = embedder.embed_images([decode_image(d) for d in big])
    draft = embedder.embed_images([decode_image(d, draft_longest=224) for d in big])
    cos = cosines(full, draft)
    figures["draft_vs_full_min_cosine"] = round(float(cos.min()), 5)
    figures["draft_vs_full_mean_cosine"] = round(float(cos.mean()), 5)
    print(f"decode alone (1 thread): {figures}", flush=True)
    return figures


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


def run(
    source: Path, images: int, batch_size: int, workers: int, options: list[str], decode: bool
) -> dict:
    spec = SourceSpec(path=str(source))
    reference: np.ndarray | None = None
    rows = []
    for option in options:
        embedder = Embedder(EmbedParams(runtime=option, batch_size=batch_size, workers=workers))
        # Warm-up on other rows so every option starts with caches and primitives built.
        embedder.embed_records(open_source(spec).records(images, images + 2 * embedder.batch_size))
        result = embedder.embed_records(open_source(spec).records(0, images), desc=option)
        vectors = result.matrix(embedder.dim)
        if reference is None:  # the first option is the reference (eager: fp32 PyTorch)
            reference = vectors
        cos = cosines(vectors, reference)
        write_s = write_seconds(result, embedder.dim)
        row = {
            "runtime": embedder.runtime.name,
            "images": len(result.ids),
            "batch_size": embedder.batch_size,
            "seconds": round(result.seconds, 2),
            "img_per_s_end_to_end": round(result.throughput, 1),
            "img_per_s_with_write": round(len(result.ids) / (result.seconds + write_s), 1),
            "img_per_s_model_only": round(model_only(embedder), 1),
            "min_cosine_vs_eager": round(float(cos.min()), 6),
            "mean_cosine_vs_eager": round(float(cos.mean()), 6),
            "chunk_seconds": {
                "wall": round(result.seconds, 2),
                "inference": round(result.infer_s, 2),
                "decode_prepare_thread_s": round(result.prepare_thread_s, 2),
                "write": round(write_s, 3),
            },
        }
        rows.append(row)
        print(
            f"{option:>14}: {row['img_per_s_end_to_end']:6.1f} img/s end to end, "
            f"{row['img_per_s_model_only']:6.1f} model only, "
            f"min/mean cosine {row['min_cosine_vs_eager']:.4f}/{row['mean_cosine_vs_eager']:.5f}, "
            f"chunk {row['chunk_seconds']}",
            flush=True,
        )
        del embedder
    eligible = [r for r in rows if r["min_cosine_vs_eager"] >= COSINE_FLOOR]
    best = max(eligible, key=lambda r: r["img_per_s_end_to_end"])
    print(f"fastest with cosine ≥ {COSINE_FLOOR}: {best['runtime']}")
    fastest = max(rows, key=lambda r: r["img_per_s_end_to_end"])
    print(f"fastest: {fastest['runtime']} {fastest['img_per_s_end_to_end']} img/s (target 400)")
    return {
        "source": str(source),
        "images": images,
        "workers": workers or physical_cores(),
        "cores": physical_cores(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cosine_floor": COSINE_FLOOR,
        "cosine_reference": options[0],
        "results": rows,
        "fastest_eligible": best["runtime"],
        "fastest": fastest["runtime"],
        "decode": decode_figures(source, images) if decode else None,
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEV_BENCH)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the embedder's default")
    parser.add_argument("--workers", type=int, default=0, help="decode threads, 0 = cores")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    parser.add_argument("--decode", action="store_true", help="also decoding alone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.source, args.images, args.batch_size, args.workers, args.options, args.decode)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
