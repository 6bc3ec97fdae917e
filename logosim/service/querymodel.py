"""The query side of the exported model, without PyTorch.

``logosim export`` writes one ONNX graph (uint8 NHWC pixels → index vectors) with its
settings in the ONNX metadata (``logosim.*``). The service reads them with ``onnx`` alone
and runs the graph on OpenVINO (CPU, the fastest measured here) or ONNX Runtime (CUDA, or
where OpenVINO is missing). ``logosim.runtime`` has the same runners but imports torch.

The graph may also give the query's **local descriptors** for stage-2 re-ranking (issue 12),
which the service then assembles into the blocks of ``logosim.embed.local_features``:
- a second output of ``(N, (h·w + R)·64)`` or ``(N, h·w + R, 64)``: the in-graph local head's
  projected patches then regions (what the embed stage's ``-map`` graphs append);
- a second output of ``(N, C, h, w)``: the raw last feature map, projected here with the
  shipped projection of the weights named in ``logosim.weights_digest``;
- or one output wider than ``logosim.dim``: the vector with the head's output appended.
Without any of them the query has no local descriptors: the spatial term is absent (the
colour histogram is still computed from the pixels).
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
from logosim.embed.params import BLUR_UNRECORDED

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
    outputs: tuple[tuple[int, ...], ...] = ()  # each graph output's shape (0 = dynamic)
    weights_digest: str | None = None  # identifies the local projection of a raw map output
    blur: float = BLUR_UNRECORDED


@dataclass
class QueryEmbedding:
    """A batch of queries: vectors (N, dim), and local blocks (N, slots, 64) fp16 whose
    patch/region slots are filled only when ``spatial`` (the colour slot always is)."""

    vectors: np.ndarray
    blocks: np.ndarray
    spatial: bool


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
    outputs = tuple(
        tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in proto.graph.output
    )
    if f"{META_PREFIX}image_size" not in meta or f"{META_PREFIX}dim" not in meta:
        raise QueryModelError(f"{path}: no logosim metadata; export it with `logosim export`")
    return ModelInfo(
        path=path,
        image_size=int(meta[f"{META_PREFIX}image_size"]),
        normalize=meta.get(f"{META_PREFIX}normalize", "pad"),
        dim=int(meta[f"{META_PREFIX}dim"]),
        has_pca=meta.get(f"{META_PREFIX}pca", "False") == "True",
        precision=meta.get(f"{META_PREFIX}precision", "fp32"),
        outputs=outputs,
        weights_digest=meta.get(f"{META_PREFIX}weights_digest"),
        blur=float(meta.get(f"{META_PREFIX}blur", BLUR_UNRECORDED)),
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

            def run(batch: np.ndarray) -> list[np.ndarray]:
                found = request.infer({0: batch})
                return [np.array(found[i], dtype=np.float32) for i in range(len(found))]

            self._run = run
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
            self._run = lambda batch: [
                np.asarray(o, dtype=np.float32) for o in session.run(None, {name: batch})
            ]
        self._projection = None
        self.local = self._local_kind()
        logger.info(
            f"query model {path.name}: {self.runtime}, {self.info.dim}-d output, "
            f"local descriptors: {self.local or 'none (spatial term absent)'}"
        )

    def _local_kind(self) -> str | None:
        """'head' (projected patches + regions), 'map' (raw feature map) or None."""
        outputs = self.info.outputs
        if len(outputs) >= 2:
            rank = len(outputs[1])
            if rank == 4:
                if not self.info.weights_digest:
                    logger.warning(
                        "the query model's feature map comes with no logosim.weights_digest: "
                        "its local projection is unknown, so the spatial term is absent"
                    )
                    return None
                return "map"
            return "head" if rank in (2, 3) else None
        wide = len(outputs) == 1 and len(outputs[0]) == 2 and outputs[0][1] > self.info.dim
        return "appended" if wide else None

    @property
    def dim(self) -> int:
        return self.info.dim

    def pixels(self, image: Image.Image) -> np.ndarray:
        info = self.info
        return to_array(to_model_input(image, info.image_size, info.normalize, info.blur))  # type: ignore[arg-type]

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed(images).vectors

    def embed(self, images: Sequence[Image.Image]) -> QueryEmbedding:
        """Vectors and local blocks (colour always; patches and regions when the graph has
        the outputs for them)."""
        from logosim.embed.local_features import assemble_blocks

        batch = np.stack([self.pixels(im) for im in images])
        with self._lock:  # one compiled request: inference is serialised, decode is not
            outputs = self._run(batch)
        vectors = outputs[0][:, : self.dim]
        local = self._local_parts(outputs, batch)
        grid, parts = (local[0], local[1:]) if local is not None else ((7, 7), ())
        blocks = assemble_blocks(batch, grid, *parts)
        return QueryEmbedding(np.ascontiguousarray(vectors), blocks, local is not None)

    def _local_parts(self, outputs: list[np.ndarray], batch: np.ndarray):
        """(grid, patches (N, h·w, 64), regions (N, R, 64)) from the graph, or None."""
        from logosim.embed.local_features import (
            LOCAL_DIM,
            load_projection,
            project_maps,
            region_masks,
        )

        if self.local is None:
            return None
        n = len(batch)
        if self.local == "map":
            maps = outputs[1]
            if self._projection is None:
                self._projection = load_projection(self.info.weights_digest or "", maps.shape[1])
            return (maps.shape[2], maps.shape[3]), *project_maps(maps, self._projection)
        raw = outputs[1] if self.local == "head" else outputs[0][:, self.dim :]
        raw = raw.reshape(n, -1)
        if raw.shape[1] == 0 or raw.shape[1] % LOCAL_DIM:
            return None
        slots = raw.shape[1] // LOCAL_DIM
        for side in range(1, 33):  # h·w patches + R regions, a square grid
            regions = len(region_masks(side, side))
            if side * side + regions == slots:
                local = raw.reshape(n, slots, LOCAL_DIM)
                return (side, side), local[:, : side * side], local[:, side * side :]
        return None
