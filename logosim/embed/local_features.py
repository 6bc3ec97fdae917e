"""Local descriptors for stage-2 re-ranking, computed from the backbone's last feature map.

The global descriptor (GeM over the whole map) forgets *where* things are and is moved by a
frame, a banner or a 90° turn. The re-ranker compares marks part by part instead, from
descriptors stored at embed time (re-running the network on 1,000 candidates per query would
cost seconds):

- **patches**: each of the h×w cells of the last map (7×7 at 224 px), signed-sqrt → L2 →
  PCA to ``LOCAL_DIM`` (whitened, fitted on train-split images) → L2, fp16;
- **regions**: R-MAC-style regions (1 + 4 + 9, GeM-pooled), projected the same way;
- **ink weights**: per patch, the share of non-white pixels under it (background cells of a
  logo on white say nothing about the mark, so they count less when a query is matched);
- **colour**: the 64-bin Hellinger colour histogram of the ink (the fourth composite term).

All of it for one image is one ``(SLOTS, LOCAL_DIM)`` fp16 block (``Layout``): slot 0 the colour
histogram, slot 1 the patch ink weights, then the regions, then the patches; a chunk's blocks
are one ``.npy`` beside its embeddings file, memory-mapped at search time (8.3 KB an image at
7×7: 8.3 GB per million images).

Numpy only (no torch): the API service computes a query's blocks from an exported graph's
feature map without loading PyTorch.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from loguru import logger

from logosim.embed.pca import PCAModel, l2_normalize

LOCAL_VERSION = "local-1"  # bump when the stored blocks change meaning
LOCAL_DIM = 64
COLOUR_BINS = 4  # per channel: 64 bins, exactly LOCAL_DIM
GEM_P = 3.0
INK_LEVEL = 235  # a pixel with any channel below this is ink, not canvas
PROJECTION_PACKAGE = "logosim.embed"
PROJECTION_FILE = "local_projection_{digest}.npz"


@dataclass(frozen=True)
class Layout:
    """Where each part lives in an image's ``(slots, LOCAL_DIM)`` block."""

    grid: tuple[int, int] = (7, 7)

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def regions(self) -> int:
        return len(region_masks(*self.grid))

    @property
    def colour(self) -> int:
        return 0

    @property
    def ink(self) -> int:
        return 1

    @property
    def region_slice(self) -> slice:
        return slice(2, 2 + self.regions)

    @property
    def patch_slice(self) -> slice:
        start = 2 + self.regions
        return slice(start, start + self.patches)

    @property
    def slots(self) -> int:
        return 2 + self.regions + self.patches

    def describe(self) -> dict:
        return {"grid": list(self.grid), "slots": self.slots, "dim": LOCAL_DIM}


@lru_cache(maxsize=16)
def region_masks(h: int, w: int) -> np.ndarray:
    """R-MAC regions over an h×w map: the whole map, a 2×2 and a 3×3 grid of overlapping
    squares (side 2·min/(l+1)); (R, h·w) float weights that average over each region.
    Cached and read-only: ``Layout`` asks for them several times per embedded batch."""
    side = min(h, w)
    masks = []
    for level in (1, 2, 3):
        sh, sw = (h, w) if level == 1 else (max(1, round(2 * side / (level + 1))),) * 2
        for top in np.linspace(0, h - sh, level).round().astype(int):
            for left in np.linspace(0, w - sw, level).round().astype(int):
                mask = np.zeros((h, w), dtype=np.float32)
                mask[top : top + sh, left : left + sw] = 1
                masks.append(mask.ravel() / mask.sum())
    stacked = np.stack(masks)
    stacked.flags.writeable = False
    return stacked


@dataclass(frozen=True)
class LocalProjection:
    """The two fitted reductions: patch cells and pooled regions → ``LOCAL_DIM``."""

    patches: PCAModel
    regions: PCAModel
    origin: str  # "fitted: …" or "random: …" (said in logs and manifests)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"patch_{k}": v for k, v in self.patches.arrays().items()}
        out |= {f"region_{k}": v for k, v in self.regions.arrays().items()}
        out["origin"] = np.asarray(self.origin)
        return out

    @classmethod
    def from_arrays(cls, arrays) -> LocalProjection:
        def part(prefix: str) -> PCAModel:
            return PCAModel.from_arrays(
                {k.removeprefix(prefix): arrays[k] for k in arrays if k.startswith(prefix)}
            )

        return cls(part("patch_"), part("region_"), str(arrays["origin"]))


def random_projection(dim: int, seed: str) -> LocalProjection:
    """A fixed orthonormal projection for a model with no fitted one (works, less well)."""
    rng = np.random.default_rng(int.from_bytes(seed.encode()[:8].ljust(8, b"\0"), "little"))
    gaussian = rng.standard_normal((dim, LOCAL_DIM))
    q = np.linalg.qr(gaussian)[0] if dim >= LOCAL_DIM else gaussian / np.sqrt(dim)
    model = PCAModel(
        mean=np.zeros(dim, np.float32),
        components=np.ascontiguousarray(q.T, dtype=np.float32),
        scale=np.ones(LOCAL_DIM, np.float32),
        power=0.5,
    )
    return LocalProjection(model, model, f"random: no fitted projection for {seed}")


def projection_resource(weights_digest: str):
    """Where the projection shipped for these weights lives (it may not exist)."""
    name = PROJECTION_FILE.format(digest=weights_digest.replace(":", "-")[:23])
    return importlib.resources.files(PROJECTION_PACKAGE) / name


def load_projection(weights_digest: str, dim: int) -> LocalProjection:
    """The projection shipped for these weights (fitted on a train split), else random."""
    resource = projection_resource(weights_digest)
    name = resource.name
    if resource.is_file():
        with resource.open("rb") as fh, np.load(fh) as data:
            return LocalProjection.from_arrays({k: data[k] for k in data.files})
    logger.warning(f"local descriptors: no fitted projection ({name}); using a random one")
    return random_projection(dim, weights_digest)


def fit_projection(
    maps: np.ndarray, origin: str, power: float = 0.5, whiten: float = 0.5
) -> LocalProjection:
    """Fit both reductions on feature maps (n, C, h, w) of train-split images."""
    n, c, h, w = maps.shape
    cells = maps.reshape(n, c, h * w).transpose(0, 2, 1).reshape(-1, c)
    regions = pooled_regions(maps).reshape(-1, c)
    return LocalProjection(
        _fit(cells, power, whiten), _fit(regions, power, whiten), f"fitted: {origin}"
    )


def _fit(x: np.ndarray, power: float, whiten: float) -> PCAModel:
    x = l2_normalize(np.sign(x) * np.abs(x) ** power)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((x - mean).T))
    values, vectors = values[::-1][:LOCAL_DIM], vectors[:, ::-1][:, :LOCAL_DIM]
    return PCAModel(
        mean=mean.astype(np.float32),
        components=np.ascontiguousarray(vectors.T, dtype=np.float32),
        scale=(np.maximum(values, 1e-9) ** (whiten / 2)).astype(np.float32),
        power=power,
    )


def pooled_regions(maps: np.ndarray) -> np.ndarray:
    """GeM (p=3) over each R-MAC region: (n, C, h, w) → (n, R, C)."""
    n, c, h, w = maps.shape
    x = np.maximum(maps.reshape(n * c, h * w), 1e-6).astype(np.float32, copy=False)
    cubed = x * x * x
    pooled = np.cbrt(cubed @ region_masks(h, w).T)  # (n·C, R)
    return pooled.reshape(n, c, -1).transpose(0, 2, 1)


def project(model: PCAModel, x: np.ndarray) -> np.ndarray:
    """``model.transform`` with a fast signed square root (the power every fit here uses)."""
    if model.power != 0.5:
        return model.transform(x)
    x = np.asarray(x, dtype=np.float32)
    root = np.sqrt(np.abs(x))
    if x.min(initial=0.0) < 0:
        root *= np.sign(x)
    root /= np.maximum(np.linalg.norm(root, axis=1, keepdims=True), 1e-12)
    y = (root @ model.components.T - model.mean @ model.components.T) / model.scale
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def colour_and_ink(pixels: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """From HWC uint8 model-size images (n, S, S, 3): the 64-bin Hellinger colour histogram
    of the ink, and the ink share under each cell of the h×w grid.

    Written per channel plane in uint8 and one ``bincount`` for the whole batch: it runs in
    the inference thread once per batch, where the int32, per-image version cost ~3 % of the
    embedding throughput with local descriptors on (notes/issue-12-rerank.md)."""
    n, size = pixels.shape[0], pixels.shape[1]
    step = max(1, size // 56)  # ~56×56 samples: the histogram of the old 64 px thumbnail
    sample = pixels[:, ::step, ::step]
    red, green, blue = (np.asarray(sample[..., c], dtype=np.uint8) for c in range(3))
    ink = (red < INK_LEVEL) | (green < INK_LEVEL) | (blue < INK_LEVEL)  # (n, s, s)
    shift = 9 - COLOUR_BINS.bit_length()  # v >> shift == v * COLOUR_BINS // 256 (a power of 2)
    codes = ((red >> shift) * COLOUR_BINS + (green >> shift)) * COLOUR_BINS + (blue >> shift)
    bins = COLOUR_BINS**3
    # an image without ink counts all its pixels
    counted = ink | ~ink.any(axis=(1, 2))[:, None, None]
    keys = codes.reshape(n, -1).astype(np.uint32) + np.arange(0, n * bins, bins, np.uint32)[:, None]
    colour = np.bincount(keys[counted.reshape(n, -1)], minlength=n * bins).reshape(n, bins)
    colour = colour.astype(np.float32)
    colour = l2_normalize(np.sqrt(colour / np.maximum(colour.sum(1, keepdims=True), 1)))
    # ink share per cell: sample rows (columns) map to grid rows (columns) in runs, so two
    # reduceat sums give each cell's count of ink samples
    h, w = grid
    s = ink.shape[1]
    row_of = np.minimum(np.arange(s) * h // s, h - 1)
    col_of = np.minimum(np.arange(s) * w // s, w - 1)
    row_starts = np.searchsorted(row_of, np.arange(h))
    col_starts = np.searchsorted(col_of, np.arange(w))
    inked = np.add.reduceat(ink, row_starts, axis=1, dtype=np.int32)
    inked = np.add.reduceat(inked, col_starts, axis=2).reshape(n, h * w)
    counts = np.bincount(row_of, minlength=h)[:, None] * np.bincount(col_of, minlength=w)
    return colour, (inked / counts.ravel().astype(np.float32)).astype(np.float32)


def assemble_blocks(
    pixels: np.ndarray,
    grid: tuple[int, int],
    patches: np.ndarray | None = None,
    regions: np.ndarray | None = None,
) -> np.ndarray:
    """Blocks (n, slots, LOCAL_DIM) fp16 for HWC uint8 ``pixels``: their colour histogram and
    ink weights, plus the projected ``patches`` (n, h·w, 64) and ``regions`` (n, R, 64) when
    given (left zero otherwise: a query without a feature-map output)."""
    layout = Layout(grid)
    n = len(pixels)
    blocks = np.zeros((n, layout.slots, LOCAL_DIM), dtype=np.float16)
    if not n:
        return blocks
    if patches is not None and regions is not None:
        blocks[:, layout.patch_slice] = patches
        blocks[:, layout.region_slice] = regions
    colour, ink = colour_and_ink(pixels, grid)
    blocks[:, layout.colour] = colour
    shown = min(layout.patches, LOCAL_DIM)  # grids over 8×8 keep the first 64 weights
    blocks[:, layout.ink, :shown] = ink[:, :shown]
    return blocks


def project_maps(maps: np.ndarray, projection: LocalProjection) -> tuple[np.ndarray, np.ndarray]:
    """Feature maps (n, C, h, w) → projected patches (n, h·w, 64) and regions (n, R, 64)."""
    maps = np.asarray(maps, dtype=np.float32)
    n, c, h, w = maps.shape
    cells = maps.reshape(n, c, h * w).transpose(0, 2, 1).reshape(-1, c)
    patches = project(projection.patches, cells).reshape(n, h * w, -1)
    regions = project(projection.regions, pooled_regions(maps).reshape(-1, c))
    return patches, regions.reshape(n, -1, LOCAL_DIM)


def describe_maps(maps: np.ndarray, pixels: np.ndarray, projection: LocalProjection) -> np.ndarray:
    """Feature maps (n, C, h, w) + their HWC uint8 inputs → blocks (n, slots, LOCAL_DIM) fp16."""
    grid = (maps.shape[2], maps.shape[3])
    if not len(maps):
        return assemble_blocks(pixels[:0], grid)
    return assemble_blocks(pixels, grid, *project_maps(maps, projection))


def pixels_from_input(batch: np.ndarray, mean, std) -> np.ndarray:
    """The HWC uint8 images back from network inputs (NCHW scaled float, or NHWC uint8).
    A float input comes back as an NHWC view of channel planes (what ``colour_and_ink``
    reads fastest); the arithmetic is done in place, in the order it always was."""
    if batch.dtype == np.uint8:
        return batch
    m = np.asarray(mean, np.float32)[None, :, None, None]
    s = np.asarray(std, np.float32)[None, :, None, None]
    pixels = batch * s
    pixels += m
    pixels *= 255.0
    pixels += 0.5
    np.clip(pixels, 0, 255, out=pixels)
    return pixels.astype(np.uint8).transpose(0, 2, 3, 1)
