"""Local descriptor blocks (issue 12): the batch-vectorised colour/ink code and the in-graph head
against plain reference computations, on real demo logos."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from logosim.data.decode import decode_image
from logosim.demo import DEMO_PARQUET
from logosim.embed.local_features import (
    COLOUR_BINS,
    INK_LEVEL,
    Layout,
    colour_and_ink,
    describe_maps,
    load_projection,
    pixels_from_input,
)
from logosim.embed.normalize import to_array, to_chw, to_model_input
from logosim.embed.pca import l2_normalize

MEAN = STD = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def logos() -> np.ndarray:
    rows = pq.read_table(DEMO_PARQUET).slice(0, 16).to_pylist()
    return np.stack([to_array(to_model_input(decode_image(r["image"]), 224)) for r in rows])


def reference_colour_and_ink(pixels: np.ndarray, grid: tuple[int, int]):
    """The per-image int32 version the embed stage used before (the meaning of the blocks)."""
    n, size = pixels.shape[0], pixels.shape[1]
    step = max(1, size // 56)
    sample = pixels[:, ::step, ::step].astype(np.int32)
    ink = (sample < INK_LEVEL).any(axis=-1)
    q = sample * COLOUR_BINS // 256
    codes = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    colour = np.zeros((n, COLOUR_BINS**3), dtype=np.float32)
    for i in range(n):
        chosen = codes[i][ink[i]] if ink[i].any() else codes[i].ravel()
        colour[i] = np.bincount(chosen, minlength=COLOUR_BINS**3)
    colour = l2_normalize(np.sqrt(colour / np.maximum(colour.sum(1, keepdims=True), 1)))
    h, w = grid
    s = ink.shape[1]
    rows = np.minimum(np.arange(s) * h // s, h - 1)
    cols = np.minimum(np.arange(s) * w // s, w - 1)
    cell = (rows[:, None] * w + cols[None, :]).ravel()
    counts = np.bincount(cell, minlength=h * w).astype(np.float32)
    share = np.stack([np.bincount(cell, weights=m.ravel(), minlength=h * w) for m in ink]) / counts
    return colour, share.astype(np.float32)


@pytest.mark.parametrize("grid", [(7, 7), (3, 3), (5, 4)])
def test_colour_and_ink_equal_the_per_image_reference(logos, grid):
    blank = np.full((2, 224, 224, 3), 255, np.uint8)  # no ink: every pixel counts
    for pixels in (logos, np.concatenate([logos[:3], blank]), logos[:4, :96, :96], logos[:1]):
        colour, ink = colour_and_ink(pixels, grid)
        want_colour, want_ink = reference_colour_and_ink(pixels, grid)
        assert colour.dtype == np.float32 and ink.dtype == np.float32
        assert np.array_equal(colour, want_colour) and np.array_equal(ink, want_ink)
    assert (colour_and_ink(blank, grid)[1] == 0).all()


def test_colour_and_ink_from_network_inputs_as_from_pixels(logos):
    """The embedder's path (scaled NCHW floats → a thumbnail → pixels) gives the blocks the
    same colour and ink as the decoded pixels themselves."""
    batch = np.stack([to_chw(p, MEAN, STD) for p in logos])
    pixels = pixels_from_input(batch, MEAN, STD)
    assert np.array_equal(pixels, logos)
    thumb = pixels_from_input(batch[..., ::4, ::4], MEAN, STD)
    for got, want in zip(colour_and_ink(thumb, (7, 7)), colour_and_ink(logos, (7, 7)), strict=True):
        assert np.array_equal(got, want)


def test_in_graph_head_equals_describe_maps_on_signed_maps():
    """The head's signed square root (written without Sign) on maps with negative values, as
    a backbone without a final ReLU gives: the same patches and regions as the numpy path."""
    torch = pytest.importorskip("torch")
    from logosim.embed.local_head import LocalHead

    projection = load_projection("random-test", 32)
    maps = np.random.default_rng(0).standard_normal((3, 32, 7, 7)).astype(np.float32)
    layout = Layout()
    want = describe_maps(maps, np.full((3, 224, 224, 3), 255, np.uint8), projection)
    head = LocalHead(projection, (7, 7)).eval()
    with torch.no_grad():
        got = head(torch.from_numpy(maps)).numpy().reshape(3, -1, 64)
    patches, regions = got[:, : layout.patches], got[:, layout.patches :]
    assert np.abs(patches - want[:, layout.patch_slice].astype(np.float32)).max() < 2e-3
    assert np.abs(regions - want[:, layout.region_slice].astype(np.float32)).max() < 2e-3
