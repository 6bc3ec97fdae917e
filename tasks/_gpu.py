"""GPU etiquette: a GPU step holds a slot of the Prefect global concurrency limit ``gpu``.

Two flow runs on one machine would otherwise both load a model onto the same GPU and run it
out of memory. Create the limit once per server with as many slots as GPUs (``logosim serve``
does it; or ``prefect gcl create gpu --limit 1``). Slots are leases that expire (300 s
without renewal), so a killed process cannot hold the GPU forever. On CPU no slot is taken:
CPU runs share cores, not device memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

GPU_LIMIT = "gpu"


@contextlib.contextmanager
def gpu_slot(device: str, *, timeout_seconds: float | None = None) -> Iterator[None]:
    """Hold one ``gpu`` slot while the block runs, when ``device`` is a CUDA device."""
    if not device.startswith("cuda"):
        yield
        return
    with concurrency(GPU_LIMIT, occupy=1, timeout_seconds=timeout_seconds):
        yield


def ensure_gpu_limit(slots: int) -> bool:
    """Create the ``gpu`` limit with ``slots`` slots unless it exists; True when created."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
            return False
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=max(1, slots))
            )
            return True
