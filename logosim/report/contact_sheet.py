"""A contact sheet: each query with its top-k hits as labelled thumbnails, in one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loguru import logger
from PIL import Image, ImageDraw, ImageFont

from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import FolderSource, SourceSpec, open_source
from logosim.search.searcher import SearchHit

THUMB = 128
LABEL = 30
PAD = 6


def fetch_images(source: SourceSpec, ids: Sequence[str]) -> dict[str, Image.Image]:
    """Decoded images of ``ids`` from the indexed source; unreadable ones are left out.

    Folder sources read the files directly (ids are relative paths); other sources are
    scanned once, which is fine for the handful of hits a sheet shows.
    """
    wanted, found = set(ids), {}
    opened = open_source(source)
    if isinstance(opened, FolderSource):
        records = (r for r in opened.records(with_bytes=False) if r.id in wanted)
        pairs = ((r.id, _read(Path(r.ref))) for r in records)
    else:
        pairs = ((r.id, r.data) for r in opened.records() if r.id in wanted)
    for record_id, data in pairs:
        try:
            found[record_id] = decode_image(data)
        except ImageDecodeError as exc:
            logger.warning(f"contact sheet: {record_id} not shown ({exc.reason})")
        if len(found) == len(wanted):
            break
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _thumb(image: Image.Image | None) -> Image.Image:
    tile = Image.new("RGB", (THUMB, THUMB), "#eeeeee")
    if image is not None:
        image = image.copy()
        image.thumbnail((THUMB, THUMB))
        tile.paste(image, ((THUMB - image.width) // 2, (THUMB - image.height) // 2))
    return tile


def _short(text: str, width: int = 20) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def contact_sheet(
    queries: Sequence[tuple[str, Image.Image]],
    hits: Sequence[Sequence[SearchHit]],
    gallery: dict[str, Image.Image],
) -> Image.Image:
    """One row per query: the query (blue frame), then its hits with rank, score and id."""
    columns = 1 + max((len(h) for h in hits), default=0)
    cell_w, cell_h = THUMB + PAD, THUMB + LABEL + PAD
    sheet = Image.new("RGB", (columns * cell_w + PAD, len(queries) * cell_h + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for row, ((name, image), row_hits) in enumerate(zip(queries, hits, strict=True)):
        y = PAD + row * cell_h
        sheet.paste(_thumb(image), (PAD, y))
        draw.rectangle([PAD - 2, y - 2, PAD + THUMB + 1, y + THUMB + 1], outline="#1f5fbf", width=3)
        draw.text((PAD, y + THUMB + 3), _short(name), fill="#1f5fbf", font=font)
        for col, hit in enumerate(row_hits, start=1):
            x = PAD + col * cell_w
            sheet.paste(_thumb(gallery.get(hit.id)), (x, y))
            draw.text((x, y + THUMB + 3), f"#{hit.rank} {hit.score:.3f}", fill="black", font=font)
            draw.text((x, y + THUMB + 15), _short(hit.id), fill="#444444", font=font)
    return sheet
