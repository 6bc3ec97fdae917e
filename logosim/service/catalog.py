"""Mark metadata and images for the service, read from the indexed source.

The metadata (id, word element, Vienna codes, year, other columns) is read once from the
source without its image bytes and cached in the store (``service/catalog-<index>.parquet``),
so a restart does not rescan a register. Filters run as vectorised masks over it. Images
are fetched per mark only for thumbnails and re-ranking: files by path, Parquet rows from
the image column (read once, on first use).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from PIL import Image

from logosim.core.store import ArtifactStore
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import ParquetSource, SourceError, SourceSpec, open_source

CATALOG_DIR = "service"


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _scan(spec: SourceSpec) -> pa.Table:
    source = open_source(spec)
    rows: dict[str, list] = {k: [] for k in ("id", "ref", "row", "text", "vienna", "year")}
    extra: list[str] = []
    for record in source.records(with_bytes=False):
        rows["id"].append(record.id)
        rows["ref"].append(record.ref)
        rows["row"].append(record.row)
        rows["text"].append(record.text)
        rows["vienna"].append(list(record.vienna_codes))
        rows["year"].append(record.year)
        extra.append(_json(record.extra))
    return pa.table({**rows, "extra": extra})


def _json(value: dict) -> str:
    import json

    return json.dumps(value, default=str, sort_keys=True)


class Catalog:
    """Metadata of every mark in the source, with vectorised filters."""

    def __init__(self, table: pa.Table, spec: SourceSpec) -> None:
        import json

        self.spec = spec
        self.ids: list[str] = table.column("id").to_pylist()
        self.refs: list[str] = table.column("ref").to_pylist()
        self.rows = np.asarray(table.column("row").to_numpy(), dtype=np.int64)
        self.text: list[str | None] = table.column("text").to_pylist()
        self.vienna: list[list[str]] = table.column("vienna").to_pylist()
        years = table.column("year").to_pylist()
        self.year = np.array([np.nan if y is None else y for y in years], dtype=np.float64)
        self._extra = table.column("extra").to_pylist()
        self._json = json
        self.position = {mark: i for i, mark in enumerate(self.ids)}
        # "|26.01.03|27.05|": a prefix filter is one vectorised substring search
        self._vienna_joined = np.array(
            ["|" + "|".join(codes) + "|" if codes else "" for codes in self.vienna], dtype=str
        )
        self._images = ImageColumn(spec)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, store: ArtifactStore, spec: SourceSpec, index_sha: str) -> Catalog:
        """The cached catalog of this index version, else a scan of the source (cached)."""
        rel = f"{CATALOG_DIR}/catalog-{index_sha[:16]}.parquet"
        manifest = store.load_verified(rel)
        if manifest is not None and manifest.meta.get("source") == spec.model_dump(mode="json"):
            return cls(pq.read_table(store.path(manifest.path)), spec)
        table = _scan(spec)
        try:
            store.write_with(
                rel,
                lambda tmp: pq.write_table(table, tmp),
                kind="catalog",
                rows=table.num_rows,
                meta={"source": spec.model_dump(mode="json")},
            )
        except OSError as exc:  # a read-only store: keep it in memory only
            logger.warning(f"catalog not cached in the store ({exc})")
        return cls(table, spec)

    def metadata(self, mark: str) -> dict[str, Any] | None:
        i = self.position.get(mark)
        if i is None:
            return None
        year = self.year[i]
        return {
            "text": self.text[i],
            "vienna_codes": self.vienna[i],
            "year": None if np.isnan(year) else int(year),
            **self._json.loads(self._extra[i] or "{}"),
        }

    def mask(
        self, vienna_prefix: str | None, year_min: int | None, year_max: int | None
    ) -> np.ndarray | None:
        """Catalog rows passing the filters (None: no filter)."""
        if not vienna_prefix and year_min is None and year_max is None:
            return None
        keep = np.ones(len(self.ids), dtype=bool)
        if vienna_prefix:
            keep &= np.char.find(self._vienna_joined, "|" + vienna_prefix) >= 0
        with np.errstate(invalid="ignore"):
            if year_min is not None:
                keep &= self.year >= year_min
            if year_max is not None:
                keep &= self.year <= year_max
        return keep

    def text_of(self, mark: str) -> str | None:
        i = self.position.get(mark)
        return None if i is None else self.text[i]

    def image_bytes(self, mark: str) -> bytes | None:
        i = self.position.get(mark)
        if i is None:
            return None
        return self._images.get(self.refs[i], int(self.rows[i]))

    def image(self, mark: str, max_pixels: int = 25_000_000) -> Image.Image | None:
        data = self.image_bytes(mark)
        if not data:
            return None
        try:
            return decode_image(data, max_pixels=max_pixels)
        except ImageDecodeError:
            return None

    def thumbnail(self, mark: str, side: int) -> bytes | None:
        image = self.image(mark)
        if image is None:
            return None
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False)
        return out.getvalue()


class ImageColumn:
    """Encoded image bytes by (ref, row): a file path, or a row of a Parquet image column.

    A Parquet source's image column is read once, on first use, and kept in memory (the dev
    bench: 57 MB); a folder or L3D source reads its files.
    """

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self._column: pa.ChunkedArray | None = None
        self._lock = threading.Lock()

    def _parquet_column(self) -> pa.Array | None:
        with self._lock:
            if self._column is None:
                try:
                    source = open_source(self.spec)
                except SourceError:
                    return None
                if not isinstance(source, ParquetSource):
                    return None
                column = pq.read_table(source.path, columns=[source.image_column])
                self._column = column.column(0).combine_chunks()
            return self._column

    def get(self, ref: str, row: int) -> bytes | None:
        if "#" not in ref:
            try:
                return Path(ref).read_bytes()
            except OSError:
                return None
        column = self._parquet_column()
        if column is None or row >= len(column):
            return None
        value = column[row].as_py()
        if isinstance(value, dict):
            value = value.get("bytes") or value.get("path")
        if isinstance(value, str):
            try:
                return (Path(ref.split("#")[0]).parent / value).read_bytes()
            except OSError:
                return None
        return value
