"""The query side of the exported model, without PyTorch.

``logosim export`` writes one ONNX graph (uint8 NHWC pixels → index vectors) with its
settings in the ONNX metadata (``logosim.*``). The service reads them with ``onnx`` alone
and runs the graph on OpenVINO (CPU, the fastest measured here) or ONNX Runtime (CUDA, or
where OpenVINO is missing). ``logosim.runtime`` has the same runners but imports torch.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger
from PIL import Image

from logosim.embed.normalize import to_array, to_model_input

META_PREFIX = "logosim."


class QueryModelError(RuntimeError):
    """The exported model is missing, unreadable or does not fit the index."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    image_size: int
    normalize: str
    dim: int
    has_pca: bool
    precision: str


def read_model_info(path: Path) -> ModelInfo:
    import onnx

    if not path.is_file():
        raise QueryModelError(
            f"no exported model at {path}: run `logosim export --store DIR` first"
        )
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise QueryModelError(f"{path}: not a readable ONNX model ({exc})") from exc
    meta = {p.key: p.value for p in proto.metadata_props}
    if f"{META_PREFIX}image_size" not in meta or f"{META_PREFIX}dim" not in meta:
        raise QueryModelError(f"{path}: no logosim metadata; export it with `logosim export`")
    return ModelInfo(
        path=path,
        image_size=int(meta[f"{META_PREFIX}image_size"]),
        normalize=meta.get(f"{META_PREFIX}normalize", "pad"),
        dim=int(meta[f"{META_PREFIX}dim"]),
        has_pca=meta.get(f"{META_PREFIX}pca", "False") == "True",
        precision=meta.get(f"{META_PREFIX}precision", "fp32"),
    )


def _cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


class QueryModel:
    """Decoded images → vectors (N, dim), on one compiled graph shared by all requests."""

    def __init__(self, path: Path, runtime: str = "auto", device: str = "cpu") -> None:
        self.info = read_model_info(path)
        self._lock = threading.Lock()
        use_openvino = runtime == "openvino" or (
            runtime == "auto" and device == "cpu" and importlib.util.find_spec("openvino")
        )
        if use_openvino:
            import openvino as ov

            core = ov.Core()
            config = {
                "INFERENCE_PRECISION_HINT": "f32",  # AMX would pick bf16: cosine 0.988
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": _cores(),
            }
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
            request = compiled.create_infer_request()
            self.runtime = "openvino"
            self._run = lambda batch: np.array(request.infer({0: batch})[0], dtype=np.float32)
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = _cores()
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            providers = ["CPUExecutionProvider"]
            if device == "cuda":
                providers.insert(0, "CUDAExecutionProvider")
            session = ort.InferenceSession(str(path), options, providers=providers)
            name = session.get_inputs()[0].name
            self.runtime = (
                "onnxruntime-" + session.get_providers()[0].replace("ExecutionProvider", "").lower()
            )
            self._run = lambda batch: session.run(None, {name: batch})[0].astype(np.float32)
        logger.info(f"query model {path.name}: {self.runtime}, {self.info.dim}-d output")

    @property
    def dim(self) -> int:
        return self.info.dim

    def pixels(self, image: Image.Image) -> np.ndarray:
        return to_array(to_model_input(image, self.info.image_size, self.info.normalize))  # type: ignore[arg-type]

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        batch = np.stack([self.pixels(im) for im in images])
        with self._lock:  # one compiled request: inference is serialised, decode is not
            return self._run(batch)
