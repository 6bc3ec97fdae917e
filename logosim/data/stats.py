"""Dataset statistics: sizes, aspect ratios, colour, transparency, Vienna codes, years, text.

Statistics are computed per chunk as plain counters and sums, so partial results merge
exactly: the stats of a register are the merge of its chunks' stats, whichever chunks were
computed in this run and whichever came from a checkpoint.
"""

from __future__ import annotations

import io
import itertools
import json
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from loguru import logger
from PIL import Image
from pydantic import BaseModel, Field

from logosim.core.digest import stable_digest
from logosim.core.failures import ImageFailure, collect_errors, write_chunk_errors
from logosim.core.progress import ProgressChannel
from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob, ChunkSpec, finished_chunk
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import SourceSpec, open_source

STAGE = "stats"
# Bump when the figures computed for an image change; cached chunk stats are then recomputed.
STATS_CODE_VERSION = "stats-1"
STATS_FILE = "stats/stats.json"

SIZE_EDGES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
ASPECT_EDGES = (0.25, 0.5, 0.8, 0.95, 1.05, 1.25, 2.0, 4.0)
# A pixel counts as coloured when its channels spread by more than this (JPEG chroma noise
# on black-on-white marks stays well below it); an image is colour above a small share.
COLOUR_SPREAD = 32
COLOUR_SHARE = 0.002
ALPHA_MODES = frozenset({"RGBA", "LA", "La", "PA", "RGBa"})
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class StatsParams(BaseModel):
    """What the stats stage can be told; shown as a form in the Prefect UI."""

    checkpoint_every: int = Field(10_000, ge=1, description="Images per checkpoint (chunk).")
    max_image_pixels: int = Field(64_000_000, ge=1, description="Decompression-bomb limit.")
    max_image_bytes: int = Field(64 * 2**20, ge=1, description="Largest encoded file accepted.")

    def version(self) -> str:
        # Chunk boundaries are already in each chunk's digest, so checkpoint_every stays out.
        return stable_digest(STATS_CODE_VERSION, self.max_image_pixels, self.max_image_bytes)


def _bin_labels(edges: tuple[float, ...], fmt: Callable[[float], str]) -> list[str]:
    labels = [f"<{fmt(edges[0])}"]
    labels += [f"{fmt(lo)}-{fmt(hi)}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">={fmt(edges[-1])}"]


TOP_CODES = 30  # the long tail of Vienna codes would make an unreadable chart
SIZE_BINS = _bin_labels(SIZE_EDGES, lambda v: str(int(v)))
ASPECT_BINS = _bin_labels(ASPECT_EDGES, lambda v: f"{v:g}")


def size_bin(pixels: int) -> str:
    return SIZE_BINS[int(np.searchsorted(SIZE_EDGES, pixels, side="right"))]


def aspect_bin(width: int, height: int) -> str:
    return ASPECT_BINS[int(np.searchsorted(ASPECT_EDGES, width / height, side="right"))]


class ImageStats(BaseModel):
    """Counters and sums for a set of images; ``merge`` of two is exact."""

    images: int = 0
    decoded: int = 0
    corrupt: dict[str, int] = Field(default_factory=dict)  # reason → images
    formats: dict[str, int] = Field(default_factory=dict)
    modes: dict[str, int] = Field(default_factory=dict)
    width: dict[str, int] = Field(default_factory=dict)  # size bin → images
    height: dict[str, int] = Field(default_factory=dict)
    aspect: dict[str, int] = Field(default_factory=dict)  # width / height bin → images
    colour: dict[str, int] = Field(default_factory=dict)  # "colour" | "grayscale"
    transparency: dict[str, int] = Field(default_factory=dict)  # "alpha" | "opaque"
    vienna_top: dict[str, int] = Field(default_factory=dict)
    vienna_full: dict[str, int] = Field(default_factory=dict)
    years: dict[str, int] = Field(default_factory=dict)  # "none" when unknown
    with_text: int = 0
    groups: dict[str, int] = Field(default_factory=dict)  # group → images
    width_sum: int = 0
    height_sum: int = 0
    width_min: int | None = None
    width_max: int | None = None
    height_min: int | None = None
    height_max: int | None = None

    def merge(self, other: ImageStats) -> ImageStats:
        merged: dict[str, Any] = {}
        for name, mine in self:
            theirs = getattr(other, name)
            if isinstance(mine, dict):
                total = dict(mine)
                for key, count in theirs.items():
                    total[key] = total.get(key, 0) + count
                merged[name] = total
            elif name.endswith(("_min", "_max")):
                pick = min if name.endswith("_min") else max
                present = [v for v in (mine, theirs) if v is not None]
                merged[name] = pick(present) if present else None
            else:
                merged[name] = mine + theirs
        return ImageStats(**merged)

    @property
    def corrupt_total(self) -> int:
        return sum(self.corrupt.values())

    def charts(self) -> dict[str, tuple[str, dict[str, int]]]:
        """The histograms to draw: name → (title, counts by bin, in order)."""
        return {
            "width": ("Image width (pixels)", {b: self.width.get(b, 0) for b in SIZE_BINS}),
            "height": ("Image height (pixels)", {b: self.height.get(b, 0) for b in SIZE_BINS}),
            "aspect_ratio": (
                "Aspect ratio (width / height)",
                {b: self.aspect.get(b, 0) for b in ASPECT_BINS},
            ),
            "colour": ("Colour vs grayscale", dict(sorted(self.colour.items()))),
            "transparency": (
                "Transparency (alpha channel)",
                dict(sorted(self.transparency.items())),
            ),
            "vienna_top": ("Vienna category (top level)", _top(self.vienna_top, TOP_CODES)),
            "vienna_full": (f"Vienna code (top {TOP_CODES})", _top(self.vienna_full, TOP_CODES)),
            "years": ("Year", dict(sorted(self.years.items()))),
            "corrupt": ("Unusable images by reason", dict(sorted(self.corrupt.items()))),
        }

    def report(self) -> dict[str, Any]:
        """The published form: distributions in a stable order, groups summarised."""
        group_sizes: dict[str, int] = {}
        for size in self.groups.values():
            group_sizes[str(size)] = group_sizes.get(str(size), 0) + 1
        return {
            "images": self.images,
            "decoded": self.decoded,
            "corrupt": {"total": self.corrupt_total, "by_reason": _sorted(self.corrupt)},
            "width": _ordered(self.width, SIZE_BINS),
            "height": _ordered(self.height, SIZE_BINS),
            "aspect_ratio": _ordered(self.aspect, ASPECT_BINS),
            "width_mean": self.width_sum / self.decoded if self.decoded else None,
            "height_mean": self.height_sum / self.decoded if self.decoded else None,
            "width_range": [self.width_min, self.width_max],
            "height_range": [self.height_min, self.height_max],
            "colour": _sorted(self.colour),
            "transparency": _sorted(self.transparency),
            "formats": _sorted(self.formats),
            "modes": _sorted(self.modes),
            "vienna_top": _sorted(self.vienna_top),
            "vienna_full": _sorted(self.vienna_full),
            "years": dict(sorted(self.years.items())),
            "with_text": self.with_text,
            "with_text_share": self.with_text / self.images if self.images else 0.0,
            "group_count": len(self.groups),
            "grouped_images": sum(self.groups.values()),
            "group_sizes": dict(sorted(group_sizes.items(), key=lambda kv: int(kv[0]))),
        }


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    """Most frequent first, ties by key: readable and deterministic."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _ordered(counts: dict[str, int], bins: list[str]) -> dict[str, int]:
    return {label: counts.get(label, 0) for label in bins}


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


# The CLI draws a bar over images; tasks run in threads of the same process.
PROGRESS = ProgressChannel()
progress_hook = PROGRESS.listen
_report_progress = PROGRESS.advance


# -- per image ----------------------------------------------------------------------------
def _is_colour(image: Image.Image) -> bool:
    """True when a visible share of pixels is not gray (checked on a reduced copy)."""
    factor = max(1, min(image.size) // 64)
    pixels = np.asarray(image.reduce(factor) if factor > 1 else image, dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return float((spread > COLOUR_SPREAD).mean()) > COLOUR_SHARE


def add_record(stats: ImageStats, record: LogoRecord, params: StatsParams) -> ImageFailure | None:
    """Count one record into ``stats``; return its error when the image is unusable."""
    stats.images += 1
    if record.text:
        stats.with_text += 1
    for code in record.vienna_codes:
        _bump(stats.vienna_full, code)
    for top in record.vienna_top:
        _bump(stats.vienna_top, top)
    _bump(stats.years, str(record.year) if record.year is not None else "none")
    if record.group:
        _bump(stats.groups, record.group)
    if record.read_error:
        _bump(stats.corrupt, "unreadable")
        return ImageFailure.of(record, STAGE, "unreadable", record.read_error)
    try:
        # decode_image does the corruption checks and the one full decode; the header's
        # mode and transparency are read first because decoding flattens them away.
        header = _header(record.data)
        image = decode_image(
            record.data, max_pixels=params.max_image_pixels, max_bytes=params.max_image_bytes
        )
    except ImageDecodeError as exc:
        _bump(stats.corrupt, exc.reason)
        return ImageFailure.of(record, STAGE, exc.reason, exc.detail)
    stats.decoded += 1
    fmt, mode, has_alpha = header
    _bump(stats.formats, fmt)
    _bump(stats.modes, mode)
    _bump(stats.transparency, "alpha" if has_alpha else "opaque")
    _bump(stats.colour, "colour" if mode not in GRAY_MODES and _is_colour(image) else "grayscale")
    width, height = image.size  # after EXIF orientation, as every later stage sees it
    _bump(stats.width, size_bin(width))
    _bump(stats.height, size_bin(height))
    _bump(stats.aspect, aspect_bin(width, height))
    stats.width_sum += width
    stats.height_sum += height
    stats.width_min = width if stats.width_min is None else min(stats.width_min, width)
    stats.width_max = width if stats.width_max is None else max(stats.width_max, width)
    stats.height_min = height if stats.height_min is None else min(stats.height_min, height)
    stats.height_max = height if stats.height_max is None else max(stats.height_max, height)
    return None


def _header(data: bytes) -> tuple[str, str, bool]:
    """Format, mode and alpha from the file header; no pixel data is decoded here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                alpha = image.mode in ALPHA_MODES or "transparency" in image.info
                return image.format or "unknown", image.mode, alpha
    except Exception:
        # Unreadable headers are decode_image's to classify; it runs next and raises.
        return "unknown", "unknown", False


def records_stats(
    records: Iterable[LogoRecord], params: StatsParams
) -> tuple[ImageStats, list[ImageFailure]]:
    """Stats and per-image errors of a stream of records, reporting progress as it goes."""
    stats, errors, pending = ImageStats(), [], 0
    for record in records:
        error = add_record(stats, record, params)
        if error is not None:
            errors.append(error)
        record.data = b""  # let the bytes go before the next record is read
        pending += 1
        if pending == 64:
            _report_progress(pending)
            pending = 0
    if pending:
        _report_progress(pending)
    return stats, errors


# -- per chunk (the checkpoint) -------------------------------------------------------------
def stats_job(store: str, source: SourceSpec, chunk: ChunkSpec, params: StatsParams) -> ChunkJob:
    return ChunkJob.of(STAGE, store, source, chunk, params)


def compute_chunk_stats(job: ChunkJob) -> Manifest:
    """Stats of one chunk written to the store: the checkpoint a rerun resumes from."""
    params = StatsParams.model_validate(job.params)
    store = ArtifactStore(job.store)
    rel = f"stats/chunks/{job.cache_key}.json"
    error_file = f"errors/{STAGE}/{job.chunk.name}.jsonl"  # written just before the chunk
    if (finished := finished_chunk(store, job, rel, error_file)) is not None:
        return finished
    source = open_source(job.source)
    stats, errors = records_stats(source.records(job.chunk.start, job.chunk.stop), params)
    write_chunk_errors(store, STAGE, job.chunk.name, errors)
    if errors:
        logger.info(f"stats {job.chunk.name}: {len(errors)} unusable images (see errors.jsonl)")
    return store.write_json(
        rel,
        stats.model_dump(),
        kind="stats-chunk",
        rows=stats.images,
        versions={"stats": STATS_CODE_VERSION, "params": job.version},
        meta={"chunk": job.chunk.model_dump(), "corrupt": stats.corrupt_total},
    )


class StatsSummary(BaseModel):
    """What a stats run reports back: the headline figures and where the details are."""

    images: int
    decoded: int
    corrupt: int
    corrupt_by_reason: dict[str, int]
    chunks: int
    stats_path: str
    errors_path: str
    plots: list[str]


Charts = dict[str, tuple[str, dict[str, int]]]


def finish_stats(
    store: ArtifactStore,
    source: SourceSpec,
    chunk_manifests: list[Manifest],
    write_plots: Callable[[ArtifactStore, Charts], list[Manifest]] | None = None,
) -> tuple[StatsSummary, dict[str, Any]]:
    """Merge the chunk stats, publish ``stats/stats.json``, errors.jsonl and, given a
    ``write_plots`` (``logosim.report.plots.write_histograms``), the histograms."""
    total = ImageStats()
    for manifest in chunk_manifests:
        total = total.merge(ImageStats.model_validate(store.read_json(manifest)))
    stage_chunks = {f"{m.meta['chunk']['index']:05d}" for m in chunk_manifests}
    _prune_stale_errors(store, {f"chunk-{i}" for i in stage_chunks})
    errors_path = collect_errors(store)
    report = {"source": source.label(), "version": STATS_CODE_VERSION, **total.report()}
    # Not write_json: its sorted keys would scramble the histogram bins' order.
    payload = json.dumps(report, indent=1).encode()
    store.write_bytes(STATS_FILE, payload, kind="stats", rows=total.images)
    plots = write_plots(store, total.charts()) if write_plots else []
    summary = StatsSummary(
        images=total.images,
        decoded=total.decoded,
        corrupt=total.corrupt_total,
        corrupt_by_reason=_sorted(total.corrupt),
        chunks=len(chunk_manifests),
        stats_path=str(store.path(STATS_FILE)),
        errors_path=str(errors_path),
        plots=[str(store.path(m.path)) for m in plots],
    )
    return summary, report


def _prune_stale_errors(store: ArtifactStore, current: set[str]) -> None:
    """Error files of chunks no longer in the plan (the source shrank) must not be reported."""
    folder = store.path(f"errors/{STAGE}")
    for file in folder.glob("chunk-*.jsonl") if folder.exists() else []:
        if file.stem not in current:
            file.unlink(missing_ok=True)
            store.manifest_path(file.relative_to(store.root)).unlink(missing_ok=True)


def load_stats(store: ArtifactStore) -> dict[str, Any]:
    manifest = store.load_verified(STATS_FILE)
    if manifest is None:
        raise FileNotFoundError(f"no valid {STATS_FILE} in {store.root}; run `logosim stats`")
    return store.read_json(manifest)


def _top(counts: dict[str, int], n: int) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])
