"""Rows of letter-like blobs: where a logo probably carries a line of text (~1 ms, no OCR).

Otsu-threshold both polarities (dark text on light and light on dark); a letter is a
connected component of plausible height (2.5–35 % of the image), not much wider than tall,
not a thin outline; a row is ``min_chars`` or more such blobs side by side with similar
height and centre line. The OCR pre-filter asks whether any row exists; the line fallback
reads each row on its own, where Tesseract's page layout missed a word beside a big icon.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom in image pixels

_WORK_SIDE = 256  # rows are found on a copy at most this large (speed)


def letter_rows(image: Image.Image, min_chars: int = 2, limit: int = 0) -> list[Box]:
    """Boxes of the letter rows in ``image`` (both polarities; ``limit`` > 0 stops early)."""
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    scale = min(1.0, _WORK_SIDE / max(gray.shape))
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rows: list[Box] = []
    for polarity in (cv2.THRESH_BINARY_INV, cv2.THRESH_BINARY):
        for left, top, right, bottom in _rows_in(_letters(gray, polarity), min_chars):
            box = tuple(round(v / scale) for v in (left, top, right, bottom))
            if not any(_overlap(box, seen) > 0.5 for seen in rows):
                rows.append(box)  # type: ignore[arg-type]
            if limit and len(rows) >= limit:
                return rows
    return rows


def _letters(gray: np.ndarray, polarity: int) -> list[Box]:
    height = gray.shape[0]
    _, binary = cv2.threshold(gray, 0, 255, polarity | cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return sorted(
        (int(x), int(y), int(x + w), int(y + h))
        for x, y, w, h, area in stats[1:]
        if 0.025 * height <= h <= 0.35 * height and w <= 1.6 * h and area >= max(8, 0.15 * w * h)
    )


def _rows_in(letters: list[Box], min_chars: int) -> list[Box]:
    """Greedy left-to-right chains of letters on one line, close together."""
    rows, used = [], set()
    for first, (_left, top, right, bottom) in enumerate(letters):
        if first in used:
            continue
        height, centre = bottom - top, (top + bottom) / 2
        chain = [first]
        for other in range(first + 1, len(letters)):
            x0, y0, x1, y1 = letters[other]
            if x0 - right > 1.2 * height:
                break
            same_line = (
                abs((y0 + y1) / 2 - centre) < 0.35 * height and 0.6 < (y1 - y0) / height < 1.6
            )
            if same_line and x0 >= right - 0.2 * height and other not in used:
                chain.append(other)
                right = x1
        if len(chain) >= min_chars:
            used.update(chain)
            members = [letters[i] for i in chain]
            rows.append(
                (
                    min(b[0] for b in members),
                    min(b[1] for b in members),
                    max(b[2] for b in members),
                    max(b[3] for b in members),
                )
            )
    return rows


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / max(1, smaller)
