"""A picture of what preprocessing does: original | detected word boxes | masked, per row."""

from __future__ import annotations

from collections.abc import Iterable

from PIL import Image, ImageDraw

from logosim.core.records import LogoRecord
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.embed.normalize import to_model_input
from logosim.preprocess.mask_store import decode_rle
from logosim.preprocess.stage import PreprocessParams, analyse_decoded
from logosim.preprocess.text_mask import apply_mask, boxes_to_mask

TILE = 224
LABEL_H = 18


def preview_grid(records: Iterable[LogoRecord], params: PreprocessParams) -> Image.Image:
    """One row per decodable record; runs OCR in this process (meant for a few images)."""
    rows: list[tuple[str, list[Image.Image]]] = []
    for record in records:
        try:
            image = decode_image(record.data)
        except ImageDecodeError as exc:
            rows.append((f"{record.id}: {exc.reason}", []))
            continue
        result = analyse_decoded(record.id, image, record.text, params)
        boxed = image.copy()
        draw = ImageDraw.Draw(boxed)
        for box in result.boxes:
            draw.rectangle(
                (box.left, box.top, box.left + box.width, box.top + box.height),
                outline=(255, 0, 0),
                width=max(1, image.width // 150),
            )
        mask = (
            decode_rle(result.runs, result.shape)
            if result.runs is not None
            else boxes_to_mask(image.size, [], 0)
        )
        masked = apply_mask(image, mask, result.flag, params.mask)
        label = f"{record.id}: {result.flag.name.lower()} ({len(result.boxes)} words)"
        if result.reason:
            label += f" {result.reason}"
        rows.append((label, [to_model_input(i, TILE) for i in (image, boxed, masked)]))
    grid = Image.new("RGB", (3 * TILE, max(1, len(rows)) * (TILE + LABEL_H)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for n, (label, tiles) in enumerate(rows):
        top = n * (TILE + LABEL_H)
        draw.text((4, top + 3), label[:100], fill=(0, 0, 0))
        for column, tile in enumerate(tiles):
            grid.paste(tile, (column * TILE, top + LABEL_H))
    return grid
