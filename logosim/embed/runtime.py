"""How a batch goes through the backbone: device, precision and engine.

Options (all produce the same descriptors up to rounding; ``bench/bench_embed.py`` measures
speed and cosine against fp32 eager):
- ``eager``: PyTorch fp32, the reference.
- ``channels_last``: PyTorch fp32 with NHWC memory layout (faster convolutions on CPU).
- ``bf16``: PyTorch bfloat16 autocast, channels-last (CPU with AVX-512 bf16).
- ``onnx``: the backbone+pooling exported to ONNX once per model version and run with
  ONNX Runtime, one intra-op thread per physical core.
- ``openvino``: the same ONNX graph compiled by OpenVINO's CPU plugin (fp32, one stream,
  one thread per physical core).
- ``openvino_bf16``: the same with OpenVINO's bf16 inference precision, on CPUs that do bf16
  natively (AVX512_BF16 or AMX; OpenVINO reports it as the ``BF16`` capability).
- ``fp16``: CUDA only, float16 autocast, channels-last.
``auto`` picks ``fp16`` on CUDA and on CPU ``openvino_bf16`` where bf16 is native, else
``openvino`` (ONNX Runtime where OpenVINO is not installed).
"""

from __future__ import annotations

import importlib.util
import io
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from loguru import logger

from logosim.embed.models import Backbone
from logosim.embed.params import DeviceName, RuntimeName

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


def resolve_device(device: DeviceName) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
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
        if device == "cuda":
            return "fp16"
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


class TorchRuntime:
    """PyTorch inference, optionally channels-last and under autocast."""

    def __init__(
        self,
        module: Backbone,
        device: str,
        *,
        name: str = "eager",
        channels_last: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.name, self.device = name, device
        self.channels_last, self.autocast = channels_last, autocast
        self.module = module.to(device)
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        if self.device == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast is not None:
            with torch.autocast(device_type=self.device, dtype=self.autocast):
                out = self.module(x)
        else:
            out = self.module(x)
        return out.float().cpu().numpy()


def export_onnx(module: Backbone, size: int) -> bytes:
    """The backbone+pooling as an ONNX graph with a dynamic batch axis."""
    buffer = io.BytesIO()
    example = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        module.cpu().eval(),
        (example,),
        buffer,
        input_names=["images"],
        output_names=["embeddings"],
        dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,  # the TorchScript exporter needs no onnxscript and handles timm models
    )
    return buffer.getvalue()


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
        return self.session.run(None, {self.input_name: batch})[0].astype(np.float32, copy=False)


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
            out = self._request.infer({0: batch})[0]
            return np.array(out, dtype=np.float32)  # a copy: the request reuses its buffer


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


def build_runtime(
    name: RuntimeName,
    device: DeviceName,
    module: Backbone,
    *,
    onnx_model: Callable[[], bytes | Path] | None = None,
    size: int = 224,
) -> Runtime:
    """Make the runtime ``name`` on ``device``; ``onnx_model`` supplies a (cached) export."""
    dev = resolve_device(device)
    concrete = resolve_runtime(name, dev)
    if dev == "cpu":
        torch.set_num_threads(physical_cores())
    if concrete == "eager":
        return TorchRuntime(module, dev, name="eager")
    if concrete == "channels_last":
        return TorchRuntime(module, dev, name="channels_last", channels_last=True)
    if concrete == "bf16":
        return TorchRuntime(module, dev, name="bf16", channels_last=True, autocast=torch.bfloat16)
    if concrete == "fp16":
        return TorchRuntime(module, dev, name="fp16", channels_last=True, autocast=torch.float16)
    if concrete in ("onnx", "openvino", "openvino_bf16"):
        if concrete.startswith("openvino") and dev != "cpu":  # before the export: seconds
            raise RuntimeUnavailableError(f"runtime {concrete!r} runs on the CPU only")
        model = onnx_model() if onnx_model is not None else export_onnx(module, size)
        runtime = graph_runtime(concrete, name, model, dev)
        return runtime or TorchRuntime(module, dev, name="channels_last", channels_last=True)
    raise ValueError(f"unknown runtime {name!r}")
