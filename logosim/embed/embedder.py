"""The embed stage in clip-retrieval's shape: reader → mapper (this module) → writer, tied by
the runner (``reader.py``, ``embedder.py``, ``writer.py``, ``runner.py``).

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
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from loguru import logger
from PIL import Image
from tqdm import tqdm

from logosim.core.failures import ImageFailure
from logosim.core.progress import ProgressChannel
from logosim.core.records import LogoRecord
from logosim.core.settings import get_settings
from logosim.core.store import ArtifactStore
from logosim.embed.graph_runtime import (
    Runtime,
    exported_runtime,
    graph_runtime,
    resolve_device,
    resolve_runtime,
)
from logosim.embed.normalize import to_array, to_chw, to_model_input
from logosim.embed.packaged import PackagedGraph, headless, packaged_for
from logosim.embed.params import CPU_BATCH, CUDA_BATCH, EmbedParams, Prepare
from logosim.embed.reader import Encode, ImagePipeline, Prepared, prepared_records
from logosim.embed.weight_files import require_torch

if TYPE_CHECKING:
    from logosim.embed.local_features import LocalProjection
    from logosim.embed.models import LoadedBackbone

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
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # only loaded where a torch runtime ran
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    from_ort = type(exc).__module__.startswith("onnxruntime")
    if isinstance(exc, RuntimeError) or from_ort:
        message = str(exc).lower()
        return any(marker in message for marker in _OOM_MARKERS)
    return False


def free_memory(device: str) -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if device == "cuda" and torch is not None and torch.cuda.is_available():
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


# -- mapper ----------------------------------------------------------------------------------
@dataclass
class EmbedResult:
    ids: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    local: list[np.ndarray] = field(default_factory=list)  # (n, slots, 64) fp16 blocks
    errors: list[ImageFailure] = field(default_factory=list)
    seconds: float = 0.0
    # where the time went: decode + prepare + normalise, summed over the reader's threads
    # (they overlap with inference), and inference (+ batch stacking) in this thread
    prepare_thread_s: float = 0.0
    infer_s: float = 0.0

    def matrix(self, dim: int) -> np.ndarray:
        if not self.embeddings:
            return np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(self.embeddings).astype(np.float32, copy=False)

    def local_blocks(self) -> np.ndarray | None:
        """The local descriptor blocks (``logosim.embed.local_features``), if computed."""
        if not self.local:
            return None
        return np.concatenate(self.local)

    @property
    def throughput(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else 0.0


# Runtimes that run an ONNX graph: the packaged default model serves them without torch.
GRAPH_RUNTIMES = ("onnx", "openvino", "openvino_bf16")


def torch_backbone(params: EmbedParams) -> tuple[LoadedBackbone, LocalProjection | None]:
    """The PyTorch backbone of ``params``, with the in-graph local head when local
    descriptors are asked for (timm CNNs; not CLIP towers)."""
    from logosim.embed.models import load_backbone

    loaded = load_backbone(params.model, params.weights, params.pooling, params.gem_p)
    if not (params.local and not params.model.startswith("open_clip:")):
        return loaded, None
    from logosim.embed.local_features import load_projection
    from logosim.embed.local_head import LocalHead

    projection = load_projection(loaded.weights_digest, loaded.dim)
    # the backbone's stride is 32 and its stride-2 layers round up (TF 'same' padding and
    # k3/p1 convs alike): a 260-px input gives a 9×9 map, not 8×8
    side = max(1, -(-params.image_size // 32))
    # before the runtime exports the graph: the head is part of it
    loaded.module.local_head = LocalHead(projection, (side, side))
    return loaded, projection


class Embedder:
    """A loaded network + runtime; embeds PIL images, pixel arrays or source records.

    The network is, by what ``params`` ask for: an exported model (``onnx_model``, whose
    output is already the index vector); the packaged default graph (``weights='logo'`` on
    a graph runtime: no PyTorch needed, ``logosim.embed.packaged``); or a timm backbone
    loaded with PyTorch (raw pooled features; PCA follows in its own stage). ``store``,
    when given, caches a PyTorch backbone's ONNX export under ``onnx/`` by model version.
    ``packaged=False`` forces the PyTorch path (to check the packaged graph against it).
    """

    def __init__(
        self,
        params: EmbedParams | None = None,
        store: ArtifactStore | None = None,
        *,
        packaged: bool = True,
    ):
        self.params = params or EmbedParams()
        self.store = store
        self.exported = self.params.exported()
        self.image_size, self.normalize, self.blur = self.params.input_geometry()
        self.backbone: LoadedBackbone | None = None
        self.local = False  # local descriptors (issue 12)
        self.projection_origin = ""
        self.grid: tuple[int, int] = (7, 7)
        self.mean: tuple[float, ...] = (0.5, 0.5, 0.5)
        self.std: tuple[float, ...] = (0.5, 0.5, 0.5)
        graph = packaged_for(self.params) if packaged and self.exported is None else None
        if self.exported is not None:
            self._init_exported()
        elif graph is not None and self._graph_runtime_asked():
            self._init_packaged(graph)
        else:
            require_torch(
                f"embedding with weights {self.params.weights!r} on runtime "
                f"{self.params.runtime!r} (a plain install embeds with the packaged "
                "default weights 'logo' on the onnx/openvino runtimes, or --onnx-model)"
            )
            self._init_torch()
        # Lowered for good after an OOM. On 2 CPU cores ONNX Runtime peaked at batch 16
        # (120 img/s vs 115 at 32 and 100 at 64); a GPU wants large batches.
        auto = CUDA_BATCH if self.runtime.device == "cuda" else CPU_BATCH
        self.batch_size = self.params.batch_size or auto

    def _graph_runtime_asked(self) -> bool:
        dev = resolve_device(self.params.device)
        return resolve_runtime(self.params.runtime, dev) in GRAPH_RUNTIMES

    def _init_exported(self) -> None:
        exported = self.exported
        assert exported is not None
        self.runtime: Runtime = exported_runtime(
            self.params.runtime, self.params.device, exported.path
        )
        self._dim = exported.dim
        self.encode: Encode = to_array  # the graph scales uint8 pixels itself
        # an export with the local output (``logosim export`` since issue 17)
        self.local = self.params.local and exported.local_grid is not None
        if self.local:
            assert exported.local_grid is not None
            self.grid = exported.local_grid
            self.projection_origin = exported.projection_origin

    def _init_packaged(self, graph: PackagedGraph) -> None:
        dev = resolve_device(self.params.device)
        concrete = resolve_runtime(self.params.runtime, dev)
        self.local = self.params.local
        model = graph.path if self.local else headless(graph)
        runtime = graph_runtime(concrete, self.params.runtime, model, dev)
        if runtime is None:
            raise RuntimeError("no graph runtime starts here: pip install openvino onnxruntime")
        self.runtime = runtime
        self._dim = graph.dim
        self.grid, self.mean, self.std = graph.grid, graph.mean, graph.std
        self.projection_origin = graph.projection_origin
        self.encode = partial(to_chw, mean=self.mean, std=self.std)
        logger.debug(f"embedding with the packaged graph {graph.path.name} ({runtime.name})")

    def _init_torch(self) -> None:
        from logosim.embed.runtime import build_runtime

        self.backbone, projection = torch_backbone(self.params)
        self.local = projection is not None
        if projection is not None:
            assert self.backbone.module.local_head is not None
            self.grid = self.backbone.module.local_head.grid
            self.projection_origin = projection.origin
        self.mean, self.std = self.backbone.mean, self.backbone.std
        self.runtime = build_runtime(
            self.params.runtime,
            self.params.device,
            self.backbone.module,
            onnx_model=self._onnx_model,
            size=self.params.image_size,
        )
        self._dim = self.backbone.dim
        self.encode = partial(to_chw, mean=self.mean, std=self.std)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def device(self) -> str:
        return self.runtime.device

    def _onnx_model(self) -> bytes | Path:
        import torch

        from logosim.embed.runtime import export_onnx

        assert self.backbone is not None
        if self.store is None:
            return export_onnx(self.backbone.module, self.params.image_size)
        with_map = "-map" if self.local else ""  # the graph also outputs the feature map
        rel = f"onnx/{self.params.model_version()[:24]}{with_map}-torch{torch.__version__}.onnx"
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
        return self.embed_inputs_local(inputs)[0]

    def embed_inputs_local(
        self, inputs: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled features and, when ``self.local``, the local descriptor blocks."""
        out: list[np.ndarray] = []
        blocks: list[np.ndarray] = []
        offset = 0
        while offset < len(inputs):
            count = min(self.batch_size, len(inputs) - offset)
            batch = np.stack(inputs[offset : offset + count])
            try:
                raw = self.runtime(batch)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._back_off(exc)
                continue
            if self.local:
                raw, local = self._local(raw, batch)
                blocks.append(local)
            else:  # an exported graph's local output, not asked for
                raw = raw[:, : self.dim]
            out.append(raw)
            offset += count
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32), None
        features = np.concatenate(out).astype(np.float32, copy=False)
        return features, (np.concatenate(blocks) if blocks else None)

    def _local(self, raw: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split the graph's output (pooled | projected patches | regions) and add the
        colour histogram and ink weights from the input pixels: the blocks of
        ``logosim.embed.local_features``."""
        from logosim.embed.local_features import (
            LOCAL_DIM,
            Layout,
            assemble_blocks,
            pixels_from_input,
        )

        layout = Layout(self.grid)
        n, dim = len(raw), self.dim
        # one fp16 conversion, then plain copies (converting into the strided slots is slower)
        local = raw[:, dim:].astype(np.float16).reshape(n, -1, LOCAL_DIM)
        step = max(1, batch.shape[-1] // 56)  # colour_and_ink's own sampling, done first
        thumb = batch[:, ::step, ::step] if batch.dtype == np.uint8 else batch[..., ::step, ::step]
        pixels = pixels_from_input(thumb, self.mean, self.std)
        blocks = assemble_blocks(
            pixels, self.grid, local[:, : layout.patches], local[:, layout.patches :]
        )
        return raw[:, :dim], blocks

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """Embed HWC uint8 images already at model size (``normalize.to_array`` output)."""
        if self.exported is not None:
            return self.embed_inputs(pixels)
        return self.embed_inputs([self.encode(p) for p in pixels])

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Descriptors (N, D) of already decoded images (e.g. search queries)."""
        return self.embed_images_local(images)[0]

    def embed_images_local(
        self, images: Sequence[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Descriptors and local blocks (None without local descriptors) of decoded images."""
        return self.embed_inputs_local(
            [
                self.encode(to_model_input(im, self.image_size, self.normalize, self.blur))
                for im in images
            ]
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
            blur=self.blur,
        )
        workers = self.params.workers or _default_workers()
        result = EmbedResult()
        pending: list[Prepared] = []
        spent: list[float] = []  # list.append is atomic under the GIL: no lock needed

        def timed(record: LogoRecord) -> tuple[np.ndarray | None, ImageFailure | None]:
            begun = time.perf_counter()
            try:
                return pipeline(record)
            finally:
                spent.append(time.perf_counter() - begun)

        started = time.perf_counter()
        bar = _Progress(total, desc)
        with ThreadPoolExecutor(workers, thread_name_prefix="logosim-decode") as pool:
            for item in prepared_records(records, timed, pool, lookahead=2 * self.batch_size):
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
        result.prepare_thread_s = sum(spent)
        return result

    def _flush(self, pending: list[Prepared], result: EmbedResult) -> None:
        if not pending:
            return
        inputs = [pixels for _, pixels, _ in pending]
        begun = time.perf_counter()
        embeddings, local = self.embed_inputs_local(inputs)  # type: ignore[arg-type]
        result.infer_s += time.perf_counter() - begun
        result.embeddings.append(embeddings)
        if local is not None:
            result.local.append(local)
        result.ids.extend(record.id for record, _, _ in pending)
        result.rows.extend(record.row for record, _, _ in pending)


def _default_workers() -> int:
    from logosim.embed.graph_runtime import physical_cores

    return physical_cores()


@lru_cache(maxsize=2)
def _cached_embedder(params_json: str, store_root: str | None) -> Embedder:
    store = ArtifactStore(store_root) if store_root else None
    return Embedder(EmbedParams.model_validate_json(params_json), store)


def cached_embedder(params: EmbedParams, store: ArtifactStore | None = None) -> Embedder:
    """One loaded model per process and settings, shared by consecutive chunk tasks."""
    return _cached_embedder(params.model_dump_json(), str(store.root) if store else None)
