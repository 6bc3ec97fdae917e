"""Resource figures for log lines and manifests: CPU %, RSS, and the GPU when there is one.

GPU figures come from NVML (``pynvml``) when it is installed and a GPU answers; otherwise
they are simply absent, never an error.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import psutil


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _nvml_handle(index: int = 0) -> Any | None:
    with contextlib.suppress(Exception):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynvml's own deprecation notice
            import pynvml
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    return None


@dataclass
class ResourceMonitor:
    """Call :meth:`sample` at the end of a unit of work; CPU % covers the time since the last."""

    process: psutil.Process = field(default_factory=psutil.Process)
    gpu: Any | None = field(default=None)
    _gpu_checked: bool = False

    def __post_init__(self) -> None:
        self.process.cpu_percent(None)  # first call only starts the interval

    def _gpu(self) -> Any | None:
        if not self._gpu_checked:
            self.gpu, self._gpu_checked = _nvml_handle(), True
        return self.gpu

    def sample(self) -> dict[str, float]:
        figures = {
            "cpu_percent": round(self.process.cpu_percent(None), 1),
            "rss_mb": round(self.process.memory_info().rss / 2**20, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        handle = self._gpu()
        if handle is not None:
            with contextlib.suppress(Exception):
                import pynvml

                util = pynvml.nvmlDeviceGetUtilizationRates(handle)
                mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
                figures["gpu_util_percent"] = float(util.gpu)
                figures["gpu_mem_mb"] = round(mem.used / 2**20, 1)
        return figures


def describe(figures: dict[str, float]) -> str:
    """A short human line: ``CPU 187% RSS 512 MiB (peak 640) GPU 93% 2100 MiB``."""
    text = (
        f"CPU {figures['cpu_percent']:.0f}% RSS {figures['rss_mb']:.0f} MiB "
        f"(peak {figures['peak_rss_mb']:.0f})"
    )
    if "gpu_util_percent" in figures:
        text += f" GPU {figures['gpu_util_percent']:.0f}% {figures['gpu_mem_mb']:.0f} MiB"
    return text
