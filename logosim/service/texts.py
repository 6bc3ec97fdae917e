"""The marks' word elements as phonetic codes for the service's text term, built once per
index version in a background thread and cached in the store (``service/texts-<key>.npz``).

Phonemising costs ~0.4 ms a mark (10K marks: ~4 s; a register of 1M: minutes), too long for
the readiness budget, so the snapshot is served at once and the text term is absent, with a
reason, until the table is there.
"""

from __future__ import annotations

import threading

import numpy as np
from loguru import logger

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore
from logosim.search.mark_texts import TextSource, gallery_texts
from logosim.search.phonetic import TextTable, default_phonemizer
from logosim.service.catalog import CATALOG_DIR, Catalog


class MarkTexts:
    """id → row of a ``TextTable`` over the catalog's marks, once ``ready``."""

    def __init__(self, store: ArtifactStore, catalog: Catalog) -> None:
        self.store, self.catalog = store, catalog
        self.table: TextTable | None = None
        self.rows: dict[str, int] = {}
        self.source: TextSource | None = None
        self.error: str | None = None
        self.ready = threading.Event()

    def start(self) -> MarkTexts:
        threading.Thread(target=self._build, name="logosim-texts", daemon=True).start()
        return self

    def lookup(self) -> tuple[TextTable, dict[str, int]] | None:
        """What ``stage2.text_scores`` reads; None until built or when no mark has text."""
        return (self.table, self.rows) if self.table is not None else None

    def why_absent(self) -> str | None:
        if not self.ready.is_set():
            return "the marks' phonetic table is still being built"
        if self.error:
            return f"the marks' phonetic table failed: {self.error}"
        if self.table is None:
            return "no indexed mark has text (no metadata text, no OCR words)"
        return None

    def _build(self) -> None:
        try:
            ids = self.catalog.ids
            texts, self.source = gallery_texts(
                self.store, dict(zip(ids, self.catalog.text, strict=True))
            )
            if texts:
                ordered = [texts.get(mark) for mark in ids]
                self.table = self._cached(ordered)
                self.table.query("warm up")  # starts espeak here, not in the first request
                self.rows = dict(self.catalog.position)
                logger.info(
                    f"mark texts: {len(texts)} marks from {self.source} ({self.table.method})"
                )
        except Exception as exc:  # the text term is then absent; searching goes on
            self.error = f"{type(exc).__name__}: {exc}"
            logger.warning(f"mark texts unavailable: {self.error}")
        finally:
            self.ready.set()

    def _cached(self, texts: list[str | None]) -> TextTable:
        method = default_phonemizer().method
        key = stable_digest("mark-texts-1", method, texts)[:16]
        rel = f"{CATALOG_DIR}/texts-{key}.npz"
        manifest = self.store.load_verified(rel)
        if manifest is not None:
            try:
                return TextTable.from_arrays(self.store.read_arrays(manifest))
            except (ValueError, KeyError) as exc:
                logger.warning(f"{rel}: not usable ({exc}); rebuilding")
        table = TextTable(texts)
        try:
            arrays = {k: np.asarray(v) for k, v in table.arrays().items()}
            self.store.write_arrays(rel, arrays, kind="mark-texts", rows=len(texts))
        except OSError as exc:  # a read-only store: keep it in memory
            logger.warning(f"mark texts not cached in the store ({exc})")
        return table
