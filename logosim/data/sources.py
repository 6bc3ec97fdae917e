"""Data sources: a folder of images, a Parquet file, or the L3D trademark layout.

Every source has a stable order, so a chunk is just a row range, and streams records in
bounded memory. ``SourceSpec`` is the small serialisable description flows pass around.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from pydantic import BaseModel, Field

from logosim.core.records import LogoRecord

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".svg", ".svgz", ".ico"}
)
SIDECAR_SUFFIXES = frozenset({".json"})  # metadata next to images, not skipped images
DEMO = "demo"
SourceFormat = Literal["auto", "folder", "parquet", "l3d"]


class SourceError(ValueError):
    """The source itself cannot be used (missing, unknown layout, missing column)."""


class SourceSpec(BaseModel):
    """Where the images are and how to read them; shown as a form in the Prefect UI."""

    path: str = Field(DEMO, description="Folder, .parquet file, L3D folder, or 'demo'.")
    format: SourceFormat = Field("auto", description="Detected from the path when 'auto'.")
    id_column: str | None = Field(None, description="Parquet: id column (default 'id').")
    image_column: str | None = Field(
        None, description="Parquet: image bytes, HF image struct, or path column (detected)."
    )
    group_column: str | None = Field(
        None, description="Column of known-similar groups (default 'group' when present)."
    )
    text_column: str | None = Field(None, description="Parquet: text column (default 'text').")

    def resolved_path(self) -> Path:
        if self.path == DEMO:
            from logosim.demo import DEMO_PARQUET

            return DEMO_PARQUET
        return Path(self.path).expanduser().resolve()

    def label(self) -> str:
        return self.path


class Source(Protocol):
    spec: SourceSpec

    def __len__(self) -> int: ...

    def records(
        self, start: int = 0, stop: int | None = None, *, with_bytes: bool = True
    ) -> Iterator[LogoRecord]: ...

    def fingerprints(
        self, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[str, str]]: ...


def detect_format(path: Path) -> SourceFormat:
    if not path.exists():
        raise SourceError(f"source {path} does not exist")
    if path.is_file():
        if path.suffix.lower() in (".parquet", ".pq"):
            return "parquet"
        raise SourceError(f"{path} is a file but not a .parquet file")
    for entry in _walk(path):
        if entry.suffix.lower() == ".json":
            return "l3d"
    return "folder"


def open_source(spec: SourceSpec | str) -> Source:
    if isinstance(spec, str):
        spec = SourceSpec(path=spec)
    path = spec.resolved_path()
    fmt = detect_format(path) if spec.format == "auto" else spec.format
    if fmt == "parquet":
        return ParquetSource(spec, path)
    if fmt == "l3d":
        return L3DSource(spec, path)
    return FolderSource(spec, path)


def _walk(root: Path) -> Iterator[Path]:
    """Files below ``root`` in a stable order (sorted per directory), hidden names skipped."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        elif entry.is_file():
            yield Path(entry.path)


def _read_file(record: LogoRecord, path: Path, with_bytes: bool) -> LogoRecord:
    if with_bytes:
        try:
            record.data = path.read_bytes()
            record.sha256 = hashlib.sha256(record.data).hexdigest()
        except OSError as exc:
            record.read_error = f"unreadable: {exc.strerror or exc}"
    return record


def _file_fingerprint(path: Path) -> str:
    """path+size+mtime: cheap, and changes whenever the file is replaced or edited."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


class FolderSource:
    """A folder of images, recursively; ids are paths relative to the folder."""

    def __init__(self, spec: SourceSpec, root: Path) -> None:
        self.spec, self.root = spec, root

    @cached_property
    def files(self) -> list[Path]:
        files, skipped = [], Counter()
        for path in _walk(self.root):
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                files.append(path)
            elif suffix not in SIDECAR_SUFFIXES:
                skipped[suffix or "(none)"] += 1
        if skipped:  # said once, so a format nobody reads is never silently dropped
            kinds = ", ".join(f"{k}: {v}" for k, v in skipped.most_common())
            logger.info(f"{self.root}: skipped {sum(skipped.values())} non-image files ({kinds})")
        return files

    def __len__(self) -> int:
        return len(self.files)

    def records(
        self, start: int = 0, stop: int | None = None, *, with_bytes: bool = True
    ) -> Iterator[LogoRecord]:
        for row, path in enumerate(self.files[start:stop], start=start):
            rel = path.relative_to(self.root).as_posix()
            group = (
                path.parent.relative_to(self.root).as_posix()
                if self.spec.group_column == "folder"
                else None
            )
            group = None if group in ("", ".") else group  # files at the top have no group
            yield _read_file(
                LogoRecord(id=rel, ref=str(path), row=row, group=group), path, with_bytes
            )

    def fingerprints(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, str]]:
        for path in self.files[start:stop]:
            yield path.relative_to(self.root).as_posix(), _file_fingerprint(path)


class L3DSource(FolderSource):
    """The L3D layout: JPGs with one JSON per image ``{file, text, vienna_codes, year}``.

    A JSON file holding a list of such objects is accepted too. Images without metadata are
    kept with empty metadata; metadata without an image is ignored.
    """

    @cached_property
    def metadata(self) -> dict[str, dict]:
        meta: dict[str, dict] = {}
        for path in _walk(self.root):
            if path.suffix.lower() != ".json":
                continue
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a broken sidecar costs its metadata, not the image
            items = loaded if isinstance(loaded, list) else [loaded]
            for item in items:
                if not isinstance(item, dict):
                    continue
                name = item.get("file") or path.with_suffix(".jpg").name
                meta[Path(str(name)).name] = item
        return meta

    def records(
        self, start: int = 0, stop: int | None = None, *, with_bytes: bool = True
    ) -> Iterator[LogoRecord]:
        for record in super().records(start, stop, with_bytes=with_bytes):
            item = self.metadata.get(Path(record.ref).name, {})
            record.text = item.get("text") or None
            record.vienna_codes = tuple(str(c) for c in item.get("vienna_codes") or ())
            year = item.get("year")
            record.year = int(year) if isinstance(year, int | str) and str(year).isdigit() else None
            yield record


class ParquetSource:
    """A Parquet file whose image column holds bytes, an HF ``{bytes, path}`` struct, or paths.

    Paths are read relative to the Parquet file. Columns other than the known ones are kept
    as metadata in ``record.extra``.
    """

    BATCH_ROWS = 256

    def __init__(self, spec: SourceSpec, path: Path) -> None:
        self.spec, self.path = spec, path
        try:
            self.file = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise SourceError(f"cannot read Parquet file {path}: {exc}") from exc
        self.schema = self.file.schema_arrow
        names = set(self.schema.names)
        self.id_column = spec.id_column or ("id" if "id" in names else None)
        self.image_column = spec.image_column or self._detect_image_column()
        self.group_column = spec.group_column or ("group" if "group" in names else None)
        self.text_column = spec.text_column or ("text" if "text" in names else None)
        for role, col in (
            ("id", self.id_column),
            ("group", self.group_column),
            ("text", self.text_column),
        ):
            if col is not None and col not in names:
                raise SourceError(
                    f"{path}: {role} column {col!r} not found; columns: {sorted(names)}"
                )
        if self.image_column not in names:
            raise SourceError(
                f"{path}: image column {self.image_column!r} not found; columns: {sorted(names)}"
            )

    def _detect_image_column(self) -> str:
        for name in ("image", "bytes", "image_bytes", "content", "path", "file", "image_path"):
            if name in self.schema.names:
                return name
        for field in self.schema:
            if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
                return field.name
        raise SourceError(f"{self.path}: no image column found; pass image_column")

    def __len__(self) -> int:
        return self.file.metadata.num_rows

    def _batches(
        self, start: int, stop: int | None, columns: list[str]
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Record batches covering rows [start, stop), skipping row groups before ``start``.

        Row groups are streamed batch by batch, never read whole: files written with
        pyarrow's defaults hold up to a million rows (every image) in one row group.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        offset = 0
        for rg in range(self.file.num_row_groups):
            rg_rows = self.file.metadata.row_group(rg).num_rows
            if offset + rg_rows <= start:
                offset += rg_rows
                continue
            if offset >= stop:
                return
            row = offset
            batches = self.file.iter_batches(
                batch_size=self.BATCH_ROWS, row_groups=[rg], columns=columns, use_threads=False
            )
            for batch in batches:
                lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
                if hi > lo:
                    yield row + lo, batch.slice(lo, hi - lo)
                row += batch.num_rows
                if row >= stop:
                    break
            offset += rg_rows

    def records(
        self, start: int = 0, stop: int | None = None, *, with_bytes: bool = True
    ) -> Iterator[LogoRecord]:
        columns = [c for c in self.schema.names if with_bytes or c != self.image_column]
        known = {self.id_column, self.image_column, self.group_column, self.text_column}
        known |= {"vienna_codes", "year"}  # read into their own fields, not metadata
        for first_row, batch in self._batches(start, stop, columns):
            for i, row in enumerate(batch.to_pylist()):
                yield self._record(first_row + i, row, known, with_bytes)

    def _record(self, row: int, values: dict, known: set, with_bytes: bool) -> LogoRecord:
        record = LogoRecord(
            id=str(values[self.id_column]) if self.id_column else str(row),
            ref=f"{self.path}#{row}",
            row=row,
            text=(values.get(self.text_column) or None) if self.text_column else None,
            group=(str(values[self.group_column]) or None)
            if self.group_column and values.get(self.group_column) is not None
            else None,
            extra={
                k: v
                for k, v in values.items()
                if k not in known and not isinstance(v, bytes | dict)
            },
        )
        codes = values.get("vienna_codes")
        if isinstance(codes, list):
            record.vienna_codes = tuple(str(c) for c in codes)
        if isinstance(values.get("year"), int):
            record.year = values["year"]
        if not with_bytes:
            return record
        image = values.get(self.image_column)
        if isinstance(image, dict):  # Hugging Face datasets' Image feature
            image = image.get("bytes") or image.get("path")
        if isinstance(image, bytes):
            record.data = image
            record.sha256 = hashlib.sha256(image).hexdigest()
            return record
        if isinstance(image, str) and image:
            path = (self.path.parent / image).resolve()
            record.ref = str(path)
            return _read_file(record, path, with_bytes=True)
        record.read_error = "no image in row"
        return record

    def fingerprints(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, str]]:
        for record in self.records(start, stop):
            yield record.id, record.sha256 or record.read_error or ""
