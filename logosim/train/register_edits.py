"""How one mark differs between filings in a register: the edits a training view may get.

Issue 16's list: a mark is filed mirrored, turned a quarter, stretched, redrawn as an outline,
with a wordmark or a banner beside it, on a coloured ground, inside a frame, and scanned or
compressed badly. Two more change the drawing style rather than the filing: the mark knocked
out of a coloured badge (coin and app icons), and its strokes drawn bolder or lighter. Each
function here is one such edit of a square RGB view on white; all randomness comes from the
``random.Random`` passed in (views stay reproducible on resume).
"""

from __future__ import annotations

import io
import random
import string
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

WHITE = (255, 255, 255)


def mark_mask(pixels: np.ndarray, threshold: int = 24) -> np.ndarray:
    """Pixels that belong to the mark: anything visibly different from white."""
    return (255 - pixels.min(axis=2)) > threshold


def _dark_colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randint(0, 110) for _ in range(3))  # type: ignore[return-value]


def on_white(
    image: Image.Image,
    size: tuple[int, int],
    place: Callable[[int, int], tuple[int, int]] | None = None,
) -> Image.Image:
    """``image`` resized to ``size`` (at least 1 px a side) on a white canvas as large as it
    was; ``place(width, height)`` of the resized mark gives its top-left corner (default:
    centred)."""
    small = image.resize((max(1, size[0]), max(1, size[1])), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", image.size, WHITE)
    if place is None:
        corner = ((canvas.width - small.width) // 2, (canvas.height - small.height) // 2)
    else:
        corner = place(small.width, small.height)
    canvas.paste(small, corner)
    return canvas


def quarter_turn(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.rotate(rng.choice((90, 180, 270)), expand=False, fillcolor=WHITE)


def stretch(image: Image.Image, rng: random.Random, ratio: float) -> Image.Image:
    """Squeeze one axis by up to ``ratio`` (marks re-set to another aspect), centred on white."""
    factor = rng.uniform(1 / ratio, 1.0)
    width, height = image.size
    size = (
        (round(width * factor), height) if rng.random() < 0.5 else (width, round(height * factor))
    )
    return on_white(image, size)


def outline(image: Image.Image, rng: random.Random, supersample: int = 1) -> Image.Image:
    """The mark redrawn as line art: every colour edge (inner details too), 1–2 px, one ink.

    ``supersample`` k > 1 traces the edges on the image enlarged k times and shrinks the
    drawing back by area averaging: lines 1/k px wide, grey where they fall between pixels,
    as a register's contour drawing looks once scaled down to the network's input; half of
    those trace the canvas edge too, as an edge filter run on a whole filed image does.
    """
    import cv2  # here, not at the top: TrainParams imports this module and `--help` stays light

    grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    if supersample > 1:
        size = (width * supersample, height * supersample)
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC)
    edges = cv2.Canny(grey, 40, 120) > 0
    if rng.random() < 0.5:
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
    out = np.full((*grey.shape, 3), 255, np.uint8)
    if supersample > 1 and rng.random() < 0.5:
        edges[[0, -1], :] = edges[:, [0, -1]] = True
    out[edges] = _dark_colour(rng)
    if supersample > 1:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return Image.fromarray(out)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 9)))


def add_wordmark(image: Image.Image, rng: random.Random) -> Image.Image:
    """The symbol + wordmark filing: the mark made smaller (and maybe narrower), a word on
    its right or below it."""
    width, height = image.size
    right = rng.random() < 0.6
    if right:  # a horizontal lock-up: the mark keeps most of the height, the word follows
        size = (round(width * rng.uniform(0.3, 0.5)), round(height * rng.uniform(0.5, 0.9)))
    else:
        side = rng.uniform(0.55, 0.75)
        size = (round(width * side), round(height * side))
    size = (max(1, size[0]), max(1, size[1]))
    canvas = on_white(
        image, size, lambda w, h: (0, (height - h) // 2) if right else ((width - w) // 2, 0)
    )
    draw = ImageDraw.Draw(canvas)
    word, colour = _word(rng), _dark_colour(rng)
    if right:
        room = width - size[0]
        font = ImageFont.load_default(size=max(8, round(height * rng.uniform(0.12, 0.25))))
        while font.size > 8 and draw.textlength(word, font=font) > room * 0.95:
            font = font.font_variant(size=font.size - 1)
        draw.text((size[0] + room / 2, height / 2), word, fill=colour, font=font, anchor="mm")
    else:
        room = height - size[1]
        font = ImageFont.load_default(size=max(8, round(room * rng.uniform(0.45, 0.7))))
        draw.text((width / 2, size[1] + room / 2), word, fill=colour, font=font, anchor="mm")
    return canvas


def banner(image: Image.Image, rng: random.Random) -> Image.Image:
    """A coloured band with a word across the mark (a slogan or a sticker over it)."""
    width, height = image.size
    band = round(height * rng.uniform(0.15, 0.3))
    top = rng.randint(0, height - band)
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, top, width, top + band), fill=_dark_colour(rng))
    font = ImageFont.load_default(size=max(8, round(band * 0.7)))
    draw.text((width / 2, top + band / 2), _word(rng), fill=WHITE, font=font, anchor="mm")
    return out


def coloured_ground(image: Image.Image, rng: random.Random) -> Image.Image:
    """The white ground replaced by one colour, light or dark."""
    pixels = np.asarray(image).copy()
    light = rng.random() < 0.6
    colour = [rng.randint(170, 245) if light else rng.randint(0, 90) for _ in range(3)]
    pixels[~mark_mask(pixels)] = colour
    return Image.fromarray(pixels)


def frame(image: Image.Image, rng: random.Random) -> Image.Image:
    """A border around the mark: a rectangle, rounded rectangle or circle."""
    width, height = image.size
    margin, thickness = rng.randint(0, width // 12), rng.randint(1, max(1, width // 24))
    box = (margin, margin, width - 1 - margin, height - 1 - margin)
    out = image.copy()
    draw = ImageDraw.Draw(out)
    colour, shape = _dark_colour(rng), rng.random()
    if shape < 0.5:
        draw.rectangle(box, outline=colour, width=thickness)
    elif shape < 0.8:
        draw.rounded_rectangle(box, radius=width // 6, outline=colour, width=thickness)
    else:
        draw.ellipse(box, outline=colour, width=thickness)
    return out


def badge(image: Image.Image, rng: random.Random) -> Image.Image:
    """The mark shrunk into a filled disc or rounded square of one colour, drawn in white or
    in its own colours: the look of coin and app-icon sets, whatever the mark."""
    width, height = image.size
    inner = rng.uniform(0.5, 0.7)
    size = (round(width * inner), round(height * inner))
    mark = np.asarray(on_white(image, size))
    out = Image.new("RGB", image.size, WHITE)
    margin = rng.randint(0, width // 16)
    box = (margin, margin, width - 1 - margin, height - 1 - margin)
    colour = tuple(rng.randint(0, 200) for _ in range(3))
    draw = ImageDraw.Draw(out)
    if rng.random() < 0.6:
        draw.ellipse(box, fill=colour)
    else:
        draw.rounded_rectangle(box, radius=width // 5, fill=colour)
    pixels = np.asarray(out).copy()
    inside = mark_mask(mark)
    pixels[inside] = WHITE if rng.random() < 0.7 else mark[inside]
    return Image.fromarray(pixels)


def stroke_weight(image: Image.Image, rng: random.Random) -> Image.Image:
    """The mark's strokes drawn bolder (dark grows over white) or lighter (white eats in)."""
    size = rng.choice((3, 5)) if image.width >= 96 else 3
    kind = ImageFilter.MinFilter if rng.random() < 0.6 else ImageFilter.MaxFilter
    return image.filter(kind(size))


def degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """One scan or transfer fault: blur, JPEG, noise, posterised colours or low resolution."""
    kind = rng.randrange(5)
    if kind == 0:
        return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if kind == 1:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=rng.randint(8, 35))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == 2:
        noise = np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(6, 20), (*image.size[::-1], 3)
        )
        return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))
    if kind == 3:
        return ImageOps.posterize(image, rng.randint(2, 3))
    factor = rng.uniform(0.2, 0.45)
    width, height = image.size
    small = image.resize((max(8, round(width * factor)), max(8, round(height * factor))))
    return small.resize(image.size, Image.Resampling.NEAREST)
