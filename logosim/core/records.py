"""The one record type every data source yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LogoRecord:
    """One mark: a stable id, where its image comes from, its bytes and its metadata.

    ``data`` holds the encoded image only while the record is in flight; sources stream
    records so that a register of 770K marks is never held in memory at once.
    """

    id: str
    ref: str  # human-readable image reference: a file path, or "<file.parquet>#<row>"
    row: int  # position in the source's stable order
    data: bytes = b""
    sha256: str = ""
    text: str | None = None
    vienna_codes: tuple[str, ...] = ()
    year: int | None = None
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    read_error: str | None = None  # set when the source could not read the bytes

    @property
    def vienna_top(self) -> tuple[str, ...]:
        """Top-level Vienna categories (``"26.01.03"`` → ``"26"``), deduplicated, in order."""
        return tuple(dict.fromkeys(code.split(".")[0] for code in self.vienna_codes if code))
