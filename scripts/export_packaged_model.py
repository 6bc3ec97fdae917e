"""Regenerate the packaged default graph (logosim/embed/graphs/logo-local.onnx) from the
packaged logo weights (logosim/embed/weights/*.pt) and their local projection.

One command after the weights or the projection change (needs the train extra, PyTorch):

    python scripts/export_packaged_model.py

It exports the graph exactly as the embed stage does, writes it with its metadata, then
checks it against the PyTorch path on real demo logos (max abs difference of the raw
descriptors on ONNX Runtime and OpenVINO) and prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logosim.demo import DEMO_PARQUET
from logosim.embed.packaged import PACKAGED_GRAPH, write_packaged_graph


def compare(runtimes: list[str], images: int) -> dict[str, float | str]:
    """Max abs difference, packaged graph vs the PyTorch path's own export, per runtime; a
    runtime this machine cannot run (bf16 without native bf16) is skipped and says why."""
    import numpy as np
    from loguru import logger

    from logosim.data.sources import SourceSpec, open_source
    from logosim.embed.embedder import Embedder
    from logosim.embed.graph_runtime import RuntimeUnavailableError, resolve_runtime
    from logosim.embed.params import EmbedParams

    source = open_source(SourceSpec(path=str(DEMO_PARQUET)))
    figures: dict[str, float | str] = {}
    for runtime in runtimes:
        try:
            resolve_runtime(runtime, "cpu")  # type: ignore[arg-type]
        except RuntimeUnavailableError as error:
            logger.warning(f"not checking {runtime}: {error}")
            figures[f"{runtime}_skipped"] = str(error)
            continue
        for local in (True, False):
            params = EmbedParams(runtime=runtime, local=local)  # type: ignore[arg-type]
            results = [
                Embedder(params, packaged=p).embed_records(source.records(0, images))
                for p in (True, False)
            ]
            a, b = (np.concatenate(r.embeddings) for r in results)
            name = runtime if local else f"{runtime}_no_local"
            figures[f"{name}_max_abs_diff"] = float(np.abs(a - b).max())
            if local:
                la, lb = (r.local_blocks().astype(np.float32) for r in results)
                figures[f"{name}_local_max_abs_diff"] = float(np.abs(la - lb).max())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PACKAGED_GRAPH)
    parser.add_argument("--check-images", type=int, default=64, help="0: no check")
    parser.add_argument("--runtimes", nargs="+", default=["onnx", "openvino", "openvino_bf16"])
    args = parser.parse_args()
    graph = write_packaged_graph(args.out)
    report = {
        "path": str(args.out),
        "size_mb": round(args.out.stat().st_size / 2**20, 2),
        "weights_digest": graph.weights_digest,
        "projection": graph.projection_origin,
        "torch": graph.torch_version,
    }
    if args.check_images:
        report |= compare(args.runtimes, args.check_images)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
