"""The graph runtimes, without PyTorch: ONNX graphs on OpenVINO (CPU, fp32 or bf16) or ONNX
Runtime, the ``auto`` choice among them, and the runtime of an exported model.

``logosim.embed.runtime`` adds the PyTorch options (eager, channels-last, autocast) and the
export of a backbone to ONNX; everything here runs in a lean install (no ``train`` extra).
A graph with several outputs (an export's index vectors and its local descriptors) comes
back as one matrix, the outputs side by side in graph order.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from loguru import logger

from logosim.embed.params import DeviceName, RuntimeName
from logosim.embed.weight_files import torch_available

# Measured by bench/bench_embed.py on 2 cores (bench/results/embed.json; notes/issue-17-speed.md):
# OpenVINO bf16 is the fastest CPU option at retrieval parity with fp32 (dev bench R@1 and mAP
# within 0.005, copy set R@1 within 0.01); where bf16 is not native it falls back to OpenVINO
# fp32 (the fastest with min cosine ≥ 0.999), ahead of ONNX Runtime.
CPU_AUTO: RuntimeName = "openvino_bf16"
CPU_FP32: RuntimeName = "openvino"
ONNX_OPSET = 17


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime cannot run here (no CUDA, no onnxruntime)."""


class Runtime(Protocol):
    name: str
    device: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 batch → (N, D) float32 descriptors."""
        ...


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def _no_gpu_device_node() -> bool:
    """Linux without an NVIDIA device node (/dev/nvidia0…, WSL2's /dev/dxg) has no CUDA:
    answered without importing torch (~2 s) on the CPU machines that embed most."""
    return sys.platform.startswith("linux") and not (
        glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")
    )


def cuda_available() -> bool:
    """CUDA through PyTorch where it is installed, else through ONNX Runtime's providers
    (a lean install has no torch; its graphs run on ONNX Runtime there)."""
    if _no_gpu_device_node():
        return False
    if torch_available():
        import torch

        return torch.cuda.is_available()
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        return False


def resolve_device(device: DeviceName) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RuntimeUnavailableError("device 'cuda' requested but no CUDA device is available")
    return device


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512_BF16 or AMX): elsewhere
    it would emulate bf16, slower than fp32."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # not installed, or a plugin that cannot answer: no bf16
        return False


def resolve_runtime(name: RuntimeName, device: str) -> RuntimeName:
    """The concrete option for ``auto``; refuses combinations that cannot work."""
    if name == "auto":
        if device == "cuda":  # a lean install (no torch) runs its graphs on ONNX Runtime
            return "fp16" if torch_available() else "onnx"
        if not openvino_available():
            return "onnx"
        return CPU_AUTO if native_bf16() else CPU_FP32
    if name == "openvino_bf16" and not native_bf16():
        raise RuntimeUnavailableError(
            "runtime 'openvino_bf16' needs a CPU with native bf16 (AVX512_BF16 or AMX) "
            "and openvino; use 'openvino'"
        )
    if name == "fp16" and device != "cuda":
        raise RuntimeUnavailableError("runtime 'fp16' needs CUDA; on CPU use 'bf16' or 'onnx'")
    return name


def side_by_side(outputs: list[np.ndarray]) -> np.ndarray:
    """A graph's outputs as one float32 (N, D1 + D2 + …) matrix (a copy)."""
    if len(outputs) == 1:
        return np.array(outputs[0], dtype=np.float32)
    return np.concatenate([np.asarray(o, dtype=np.float32).reshape(len(o), -1) for o in outputs], 1)


def ort_session(model: bytes | Path, device: str = "cpu", threads: int | None = None) -> Any:
    """An ONNX Runtime session: intra-op threads = physical cores (more only adds
    contention), no spin-waiting (measured on 2 cores, 1,200 dev-bench images end to end:
    102 → 112 img/s, because idle ORT threads no longer steal the decode threads' cores)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeUnavailableError("runtime 'onnx' needs: pip install onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=providers)


class OnnxRuntime:
    """A backbone (or a whole exported model) run by ONNX Runtime."""

    name = "onnx"

    def __init__(self, model: bytes | Path, device: str = "cpu", threads: int | None = None):
        self.session = ort_session(model, device, threads)
        self.device = device
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {self.input_name: batch})
        return side_by_side(outputs)


class OpenVinoRuntime:
    """A backbone (or a whole exported model) compiled by OpenVINO for the CPU.

    The inference precision is set, never left to the plugin (which picks bf16 on AMX CPUs):
    ``f32``, or ``bf16`` (descriptors move by min cosine ~0.99 but retrieval stays at parity,
    notes/issue-17-speed.md). One stream with one thread per physical core: the decode
    threads need the rest.
    """

    device = "cpu"

    def __init__(
        self, model: bytes | Path, threads: int | None = None, precision: str = "f32"
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise RuntimeUnavailableError("runtime 'openvino' needs: pip install openvino") from exc
        core = ov.Core()
        graph = core.read_model(model if isinstance(model, bytes) else str(model))
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or physical_cores(),
        }
        self.name = "openvino_bf16" if precision == "bf16" else "openvino"
        self.compiled = core.compile_model(graph, "CPU", config)
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request; searches may come from threads

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._request.infer({0: batch})
            # a copy (the request reuses its buffers), outputs in the graph's order
            return side_by_side([result[out] for out in self.compiled.outputs])


def graph_runtime(
    concrete: RuntimeName, requested: RuntimeName, model: bytes | Path, device: str
) -> Runtime | None:
    """OpenVINO or ONNX Runtime over an ONNX graph. For ``auto`` a runtime that cannot
    start falls back along the measured order (openvino_bf16 → openvino → onnx) rather than
    failing on a bad install; None when none starts."""
    if concrete.startswith("openvino") and device != "cpu":
        raise RuntimeUnavailableError(f"runtime {concrete!r} runs on the CPU only")
    order = ("openvino_bf16", "openvino", "onnx")
    for option in order[order.index(concrete) :]:
        try:
            if option == "onnx":
                return OnnxRuntime(model, device)
            return OpenVinoRuntime(model, precision="bf16" if option == "openvino_bf16" else "f32")
        except RuntimeUnavailableError as exc:
            if requested != "auto":
                raise
            logger.warning(f"{exc}; falling back")
    return None


def exported_runtime(name: RuntimeName, device: DeviceName, model: Path) -> Runtime:
    """The runtime for a file written by ``logosim export`` (an ONNX graph)."""
    if name not in ("auto", "onnx", "openvino", "openvino_bf16"):
        raise ValueError(
            f"runtime {name!r} cannot run an exported model: use 'onnx', 'openvino' "
            "or 'openvino_bf16'"
        )
    dev = resolve_device(device)
    concrete = "onnx" if dev == "cuda" and name == "auto" else resolve_runtime(name, dev)
    if name == "auto" and concrete == "openvino_bf16":
        # an exported graph may hold the PCA whitening, which scales up low-variance
        # directions: bf16 parity was measured for the backbone only, so fp32 here
        concrete = CPU_FP32
    runtime = graph_runtime(concrete, name, model, dev)
    if runtime is None:
        raise RuntimeUnavailableError("an exported model needs: pip install openvino onnxruntime")
    return runtime
