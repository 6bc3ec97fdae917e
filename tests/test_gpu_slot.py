"""GPU etiquette: CUDA steps take turns on the `gpu` concurrency limit; CPU steps don't wait."""

from __future__ import annotations

import threading
import time

from prefect.client.orchestration import get_client

from tasks._gpu import GPU_LIMIT, ensure_gpu_limit, gpu_slot


def _hold(device: str, seconds: float, spans: list, barrier: threading.Barrier) -> None:
    barrier.wait()
    with gpu_slot(device, timeout_seconds=60):
        start = time.monotonic()
        time.sleep(seconds)
        spans.append((device, start, time.monotonic()))


def _run_together(devices: list[str], seconds: float = 1.5) -> list:
    spans: list = []
    barrier = threading.Barrier(len(devices))
    threads = [threading.Thread(target=_hold, args=(d, seconds, spans, barrier)) for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(spans, key=lambda span: span[1])


def test_cuda_steps_take_turns_and_cpu_steps_do_not_wait(prefect_server):
    assert ensure_gpu_limit(1) is True
    assert ensure_gpu_limit(1) is False  # idempotent: an existing limit is left as it is
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(GPU_LIMIT).limit == 1

    (first, second) = _run_together(["cuda:0", "cuda:0"])
    assert second[1] >= first[2] - 0.05  # the second GPU step started after the first ended

    spans = _run_together(["cuda:0", "cpu"])
    (cuda,) = [s for s in spans if s[0] == "cuda:0"]
    (cpu,) = [s for s in spans if s[0] == "cpu"]
    assert cpu[1] < cuda[2] and cuda[1] < cpu[2]  # they overlapped: CPU took no slot

    with get_client(sync_client=True) as client:  # every slot was given back
        assert client.read_global_concurrency_limit_by_name(GPU_LIMIT).active_slots == 0
