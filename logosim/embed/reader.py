"""The embed stage's reader: a chunk's records → decoded, prepared, network-ready pixels, in a
thread pool a bounded window ahead of inference (Pillow releases the GIL while decoding)."""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from logosim.core.failures import ImageFailure
from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.embed.normalize import to_model_input
from logosim.embed.params import STAGE, NormalizeMode, Prepare, PrepareSpec


def resolve_prepare(spec: PrepareSpec | dict | None, store: ArtifactStore) -> Prepare | None:
    if spec is None:
        return None
    spec = PrepareSpec.model_validate(spec)
    module_name, _, attr = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(store, **spec.options)


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
    jpeg_draft: bool = True  # large JPEGs decode at reduced size (pad mode only: see below)
    blur: float = 0.0

    def __call__(self, record: LogoRecord) -> tuple[np.ndarray | None, ImageFailure | None]:
        if record.read_error:
            return None, ImageFailure.of(record, STAGE, "unreadable", record.read_error)
        try:
            # crop mode resizes the short side, so a draft sized by the long side could be
            # too small for it: only pad mode drafts
            draft = self.size if self.jpeg_draft and self.mode == "pad" else None
            image = decode_image(
                record.data,
                max_pixels=self.max_pixels,
                max_bytes=self.max_bytes,
                draft_longest=draft,
            )
        except ImageDecodeError as exc:
            return None, ImageFailure.of(record, STAGE, exc.reason, exc.detail)
        finally:
            record.data = b""  # the bytes are no longer needed; keep the window small
        try:
            if self.prepare is not None:
                image = self.prepare(record, image)
            return self.encode(to_model_input(image, self.size, self.mode, self.blur)), None
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
