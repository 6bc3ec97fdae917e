"""The register edits a training view may get (issue 16): each does what its name says."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from logosim.train import register_edits as edits
from logosim.train.augment import AugmentParams, LogoAugment

SIZE = 128
EDITS = (
    "mirror",
    "quarter_turn",
    "stretch",
    "outline",
    "wordmark",
    "banner",
    "ground",
    "frame",
    "badge",
    "weight",
)
ALL_EDITS = AugmentParams(**{f"p_{edit}": 1.0 for edit in (*EDITS, "degrade")})


def _logo() -> Image.Image:
    """A red disc with a blue bar on its left: not symmetric, so turns and mirrors show."""
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((30, 30, 98, 98), fill=(200, 30, 30))
    draw.rectangle((14, 20, 30, 108), fill=(20, 20, 160))
    return image


def _mark(image: Image.Image) -> np.ndarray:
    return edits.mark_mask(np.asarray(image))


def test_quarter_turn_moves_the_bar_off_the_left_edge():
    for seed in range(6):
        turned = _mark(edits.quarter_turn(_logo(), random.Random(seed)))
        assert turned.sum() == _mark(_logo()).sum()  # a square turned a quarter loses nothing
        assert not np.array_equal(turned, _mark(_logo()))


def test_stretch_squeezes_one_axis_and_keeps_the_canvas():
    squeezed = edits.stretch(_logo(), random.Random(3), ratio=2.0)
    assert squeezed.size == (SIZE, SIZE)
    rows, cols = np.nonzero(_mark(squeezed))
    original_rows, original_cols = np.nonzero(_mark(_logo()))
    spans = (np.ptp(rows), np.ptp(cols))
    original = (np.ptp(original_rows), np.ptp(original_cols))
    assert min(s / o for s, o in zip(spans, original, strict=True)) < 0.95
    assert max(s / o for s, o in zip(spans, original, strict=True)) > 0.97


def test_outline_keeps_the_contour_and_empties_the_inside():
    drawn = edits.outline(_logo(), random.Random(0))
    mark = _mark(drawn)
    assert not mark[64, 64]  # the disc's centre is blank now
    assert 0 < mark.sum() < 0.5 * _mark(_logo()).sum()
    assert len({tuple(p) for p in np.asarray(drawn)[mark]}) == 1  # one ink colour


def _line_pixels(drawn: np.ndarray) -> float:
    """Ink inside the canvas edge in full-ink pixels: line length × width, whatever the ink."""
    grey = drawn[4:-4, 4:-4].astype(float).mean(axis=2)
    return float((255 - grey).sum() / (255 - grey.min()))


def test_supersampled_outline_draws_thinner_greyer_lines_and_sometimes_the_canvas_edge():
    ratios = []
    for seed in range(8):
        plain = np.asarray(edits.outline(_logo(), random.Random(seed)))
        thin = np.asarray(edits.outline(_logo(), random.Random(seed), supersample=2))
        ratios.append(_line_pixels(thin) / _line_pixels(plain))
        assert thin[64, 64].min() > 240  # the disc's centre stays blank
        assert _mark(Image.fromarray(thin))[:, 40:90].any(axis=0).all()  # the contour is there
        assert len(np.unique(thin.reshape(-1, 3), axis=0)) > 2  # grey where lines fall between
    assert max(ratios) < 0.8 and np.mean(ratios) < 0.7  # thinner lines along the same contour
    framed = [
        bool((t[:, 0] < 250).all() and (t[0, :] < 250).all())
        for t in (np.asarray(edits.outline(_logo(), random.Random(s), 2)) for s in range(8))
    ]
    assert any(framed) and not all(framed)  # the canvas edge traced in some drawings


def test_wordmark_shrinks_the_symbol_and_writes_beside_it():
    for seed in range(4):
        filed = edits.add_wordmark(_logo(), random.Random(seed))
        pixels = np.asarray(filed)
        reds = (pixels[..., 0] > 150) & (pixels[..., 1] < 80)
        assert 0 < reds.sum() < 0.8 * ((np.asarray(_logo())[..., 0] > 150).sum())
        assert _mark(filed).sum() > reds.sum()  # the word adds ink outside the symbol


def test_banner_ground_and_frame_add_what_they_say():
    banner = np.asarray(edits.banner(_logo(), random.Random(1)))
    full_rows = _mark(Image.fromarray(banner)).mean(axis=1) > 0.7  # the word is white
    assert full_rows.sum() >= 0.15 * SIZE - 1  # a band across the whole width
    ground = edits.coloured_ground(_logo(), random.Random(2))
    assert ground.getpixel((0, 0)) != (255, 255, 255)
    assert ground.getpixel((64, 64)) == _logo().getpixel((64, 64))  # the mark is untouched
    framed = _mark(edits.frame(_logo(), random.Random(5)))
    assert framed.sum() > _mark(_logo()).sum()


def test_badge_knocks_the_mark_out_of_a_coloured_shape():
    for seed in range(8):
        badged = np.asarray(edits.badge(_logo(), random.Random(seed)))
        white = (badged == 255).all(axis=2)
        assert white[0, 0] and white[-1, -1]  # rounded or round: the corners stay white
        assert not white[64, 12] and not white[64, 115]  # the badge's colour at both sides
        assert (badged[64, 12] == badged[64, 115]).all()  # one colour
        centre = badged[40:88, 40:88].reshape(-1, 3)
        assert len({tuple(p) for p in centre}) >= 2  # the mark shows inside it
        assert _mark(Image.fromarray(badged)).sum() > _mark(_logo()).sum()


def test_stroke_weight_grows_or_thins_the_mark():
    areas = {
        float(_mark(edits.stroke_weight(_logo(), random.Random(seed))).sum()) for seed in range(12)
    }
    original = float(_mark(_logo()).sum())
    assert min(areas) < original < max(areas)  # lighter and bolder both drawn


def test_degrade_changes_pixels_but_keeps_the_mark_in_place():
    for seed in range(10):
        worse = edits.degrade(_logo(), random.Random(seed))
        assert worse.size == (SIZE, SIZE) and worse.mode == "RGB"
        assert not np.array_equal(np.asarray(worse), np.asarray(_logo()))
        assert np.asarray(worse)[64, 64, 0] > 120  # still red-ish at the disc's centre


def test_views_with_every_edit_are_reproducible_and_sized():
    augment = LogoAugment(ALL_EDITS)
    for seed in range(5):
        first = np.asarray(augment(_logo(), random.Random(seed)))
        assert first.shape == (SIZE, SIZE, 3)
        assert np.array_equal(first, np.asarray(augment(_logo(), random.Random(seed))))


def test_edits_switched_off_draw_no_randomness():
    """Recipes from before the edits (the shipped model's) keep their exact views: an edit
    at p = 0 takes no draw from the view's random stream, one at any p > 0 does."""
    states = []
    for p_banner in (None, 0.0, 1e-12):
        extra = {} if p_banner is None else {"p_banner": p_banner}
        rng = random.Random(7)
        LogoAugment(AugmentParams(**extra))(_logo(), rng)
        states.append(rng.getstate())
    assert states[0] == states[1]
    assert states[2] != states[0]
