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

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from logosim.embed.weight_files import require_torch

require_torch("a PyTorch runtime (eager, channels_last, bf16, fp16)")

import torch  # noqa: E402

from logosim.embed.graph_runtime import (  # noqa: E402, F401  (re-exported: old import paths)
    CPU_AUTO,
    CPU_FP32,
    ONNX_OPSET,
    OnnxRuntime,
    OpenVinoRuntime,
    Runtime,
    RuntimeUnavailableError,
    exported_runtime,
    graph_runtime,
    native_bf16,
    openvino_available,
    ort_session,
    physical_cores,
    resolve_device,
    resolve_runtime,
)
from logosim.embed.models import Backbone  # noqa: E402
from logosim.embed.params import DeviceName, RuntimeName  # noqa: E402


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
