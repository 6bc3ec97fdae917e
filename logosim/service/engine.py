"""The search engine behind the API: one loaded snapshot of the index, swapped atomically.

A snapshot is everything one index version needs: the stored vectors (FAISS, memory-mapped
read-only, or PostgreSQL + pgvector), the descriptor transform the index was built with,
and the mark catalog. A request takes the current snapshot once and uses only it, so a hot
reload (a reindex published a new ``index/index.faiss``) never mixes versions and never
fails a request: the new snapshot is loaded beside the old one and swapped in one
assignment; the old one goes when its last request is done.

Query path: decode (done by the caller) → the exported model (no PyTorch) → descriptor
transform → α-query expansion → ANN (filters as a FAISS id selector) → optional re-rank
(colour, layout, word element) → hits.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
from loguru import logger
from PIL import Image

from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.embed.pca import Descriptors, l2_normalize
from logosim.index.ids import search_params
from logosim.index.logo_index import LogoIndex, index_pca
from logosim.index.params import IDS_FILE, INDEX_FILE
from logosim.search.rerank import RerankParams, cues
from logosim.service.catalog import LRU, Catalog
from logosim.service.config import ServiceSettings
from logosim.service.querymodel import QueryModel, QueryModelError

EXPORTED_MODEL = "export/logosim-fp32.onnx"
WEIGHT_TEXT = 0.2  # the word element's weight next to the ANN score (1.0)


def published_version(store: ArtifactStore) -> str | None:
    """The version a reindex publishes: the index file and its id table (removing a mark
    changes only the table's tombstones, not the FAISS file)."""
    index, ids = store.read_manifest(INDEX_FILE), store.read_manifest(IDS_FILE)
    if index is None or ids is None:
        return None
    return hashlib.sha256(f"{index.sha256}:{ids.sha256}".encode()).hexdigest()[:12]


class EngineError(RuntimeError):
    """The store cannot be served (no index, no exported model, a mismatch)."""


@dataclass
class Query:
    image: Image.Image
    text: str | None = None


@dataclass
class SearchOptions:
    k: int = 10
    rerank: bool = False
    vienna_prefix: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    ef_search: int | None = None
    candidates: int = 100


@dataclass
class Hit:
    id: str
    rank: int
    score: float
    components: dict[str, float | None]


class Vectors(Protocol):
    """Where the stored vectors live and how they are searched (FAISS or pgvector)."""

    kind: str

    def __len__(self) -> int: ...

    def expand(self, vectors: np.ndarray, ef_search: int | None) -> np.ndarray: ...

    def search(
        self, vectors: np.ndarray, k: int, options: SearchOptions
    ) -> list[list[tuple[str, float]]]:
        """Top-k (id, inner product) per query among the marks passing the filters."""
        ...


class FaissVectors:
    """The published FAISS index, memory-mapped; filters become an id bitmap selector."""

    def __init__(self, index: LogoIndex, catalog: Catalog) -> None:
        self.index, self.catalog = index, catalog
        self.kind = f"faiss-{index.kind}"
        position = index.table.position
        # the index slot of each catalog row (-1: not indexed, removed, or failed to embed)
        self.catalog_slots = np.array([position.get(m, -1) for m in catalog.ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def expand(self, vectors: np.ndarray, ef_search: int | None) -> np.ndarray:
        return self.index.expand(vectors, ef_search=ef_search)

    def search(
        self, vectors: np.ndarray, k: int, options: SearchOptions
    ) -> list[list[tuple[str, float]]]:
        ef_search = options.ef_search
        allowed = self.catalog.mask(options.vienna_prefix, options.year_min, options.year_max)
        if allowed is None:
            found = self.index.search(vectors, k, ef_search=ef_search)
            return [
                list(zip(ids, map(float, scores), strict=True))
                for ids, scores in zip(found.ids, found.scores, strict=True)
            ]
        slots = self.catalog_slots[allowed]
        slots = slots[slots >= 0]
        if not len(slots):
            return [[] for _ in vectors]
        n_slots = len(self.index.table.ids)
        bitmap = np.zeros(n_slots, dtype=bool)
        bitmap[slots] = True
        packed = np.packbits(bitmap, bitorder="little")  # FAISS reads it; keep it referenced
        selector = faiss.IDSelectorBitmap(n_slots, faiss.swig_ptr(packed))
        k = max(1, min(k, len(slots)))
        ef = max(ef_search or self.index.params.ef_search, k)
        params = search_params(self.index.kind, ef, self.index.params.nprobe, selector)
        scores, labels = self.index.index.search(
            np.ascontiguousarray(vectors, dtype=np.float32), k, params=params
        )
        del packed, selector
        ids = self.index.table.ids
        return [
            [(ids[s], float(v)) for s, v in zip(row_l, row_s, strict=True) if s >= 0]
            for row_l, row_s in zip(labels, scores, strict=True)
        ]


@dataclass
class Snapshot:
    """One index version, ready to search."""

    version: str
    created: str
    vectors: Vectors
    describe: Descriptors
    catalog: Catalog
    loaded_ms: float
    cue_cache: LRU = field(default_factory=lambda: LRU(20_000))  # ~2.6 KB a mark
    thumbnails: LRU = field(default_factory=lambda: LRU(2_000))  # PNG bytes, ~15 KB each


def _norm_text(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def text_similarity(a: str | None, b: str | None) -> float | None:
    """The word elements' similarity in [0, 1] (None when the query has none)."""
    if not a or not _norm_text(a):
        return None
    if not b or not _norm_text(b):
        return 0.0
    return difflib.SequenceMatcher(None, _norm_text(a), _norm_text(b)).ratio()


class Engine:
    """The loaded model + current snapshot; thread-safe; hot-reloads new index versions."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.store = ArtifactStore(settings.store)
        self.model: QueryModel | None = None
        self.snapshot: Snapshot | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.ready_after_s: float | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.reloads = 0

    # -- loading ---------------------------------------------------------------------------
    def _index_meta(self) -> dict:
        manifest = self.store.read_manifest(INDEX_FILE)
        if manifest is None:
            raise EngineError(f"no index in {self.store.root}: run `logosim build` first")
        return manifest.meta

    def _model_path(self, meta: dict) -> Path:
        if self.settings.model is not None:
            return Path(self.settings.model).expanduser().resolve()
        own = (meta.get("embed") or {}).get("onnx_model")
        if own:
            return Path(own)
        return self.store.path(EXPORTED_MODEL)

    def load_model(self) -> QueryModel:
        meta = self._index_meta()
        try:
            return QueryModel(self._model_path(meta), self.settings.runtime, self.settings.device)
        except QueryModelError as exc:
            raise EngineError(str(exc)) from exc

    def _load_vectors(self, version: str, index: LogoIndex, catalog: Catalog) -> Vectors:
        if self.settings.backend == "pgvector":
            from logosim.service.pgvector import PgVectors

            if not self.settings.dsn:
                raise EngineError("--backend pgvector needs --dsn")
            return PgVectors.sync(self.settings.dsn, version, index, catalog)
        return FaissVectors(index, catalog)

    def load_snapshot(self) -> Snapshot:
        started = time.perf_counter()
        version = published_version(self.store)
        index = LogoIndex.load(self.store, mmap=True)
        manifest = index.manifest
        model = self.model
        assert model is not None
        pca = index_pca(self.store, manifest)
        own = (manifest.meta.get("embed") or {}).get("onnx_model")
        if own and Path(own).resolve() == model.info.path.resolve():
            describe = Descriptors.load(self.store, pca)  # the index holds this model's output
        elif model.info.has_pca:
            if pca is None:
                raise EngineError("the exported model projects with a PCA the index never had")
            describe = Descriptors(None)  # already the index vector; L2 again is harmless
        else:
            describe = Descriptors.load(self.store, pca)
        probe = describe(np.ones((1, model.dim), dtype=np.float32))
        if probe.shape[1] != index.index.d:
            raise EngineError(
                f"the model gives {probe.shape[1]}-d vectors but the index holds {index.index.d}-d"
            )
        spec = SourceSpec.model_validate(manifest.meta.get("source", {}))
        if self.settings.source:
            spec = spec.model_copy(update={"path": self.settings.source})
        catalog = Catalog.load(self.store, spec, manifest.sha256)
        vectors = self._load_vectors(version, index, catalog)
        return Snapshot(
            version=version,
            created=manifest.created,
            vectors=vectors,
            describe=describe,
            catalog=catalog,
            loaded_ms=round((time.perf_counter() - started) * 1e3, 1),
        )

    def start(self) -> None:
        """Load the model and the index (call in a thread: /healthz answers meanwhile)."""
        try:
            self.model = self.load_model()
            self.snapshot = self.load_snapshot()
            self.ready_after_s = round(time.monotonic() - self.started, 3)
            self.error = None
            logger.info(
                f"ready in {self.ready_after_s}s: index {self.snapshot.version}, "
                f"{len(self.snapshot.vectors)} marks ({self.snapshot.vectors.kind})"
            )
        except Exception as exc:  # reported by /readyz; the watcher retries
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error(f"not ready: {self.error}")

    def refresh(self) -> bool:
        """Swap in a newly published index version; True when a swap happened."""
        with self._reload_lock:
            if self.model is None:
                self.start()
                return self.snapshot is not None
            version = published_version(self.store)
            current = self.snapshot
            if version is None or (current and version == current.version):
                return False
            try:
                fresh = self.load_snapshot()
            except Exception as exc:  # mid-publish or broken: keep serving the old one
                logger.warning(f"reload skipped: {type(exc).__name__}: {exc}")
                return False
            self.snapshot = fresh  # one assignment: requests see the old or the new
            self.reloads += 1
            self.error = None
            logger.info(f"index reloaded: {fresh.version}, {len(fresh.vectors)} marks")
            return True

    def watch(self) -> None:
        """Look for new index versions every ``reload_interval_s`` in a daemon thread."""
        interval = self.settings.reload_interval_s

        def loop() -> None:
            while not self._stop.wait(interval or 1.0):
                if interval:
                    self.refresh()

        self._watcher = threading.Thread(target=loop, name="logosim-index-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()

    # -- searching -------------------------------------------------------------------------
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        assert self.model is not None
        return l2_normalize(self.model(images))

    def search(
        self, queries: Sequence[Query], options: SearchOptions
    ) -> tuple[list[list[Hit]], Snapshot]:
        snapshot = self.snapshot
        if snapshot is None or self.model is None:
            raise EngineError(self.error or "still loading")
        vectors = snapshot.describe(self.embed([q.image for q in queries]))
        vectors = snapshot.vectors.expand(vectors, options.ef_search)
        has_text = any(q.text and _norm_text(q.text) for q in queries)
        depth = max(options.candidates, options.k) if options.rerank or has_text else options.k
        found = snapshot.vectors.search(vectors, depth, options)
        results = []
        for query, candidates in zip(queries, found, strict=True):
            results.append(self._rank(snapshot, query, candidates, options))
        return results, snapshot

    def _cues(self, snapshot: Snapshot, ids: list[str]) -> tuple[np.ndarray, ...]:
        colour, layout, ok = [], [], []
        for mark in ids:
            cached = snapshot.cue_cache.get(mark)
            if cached is None:
                image = snapshot.catalog.image(mark)
                c, lay, found = cues([image])
                cached = (c[0], lay[0], bool(found[0]))
                snapshot.cue_cache.put(mark, cached)
            colour.append(cached[0])
            layout.append(cached[1])
            ok.append(cached[2])
        return np.stack(colour), np.stack(layout), np.array(ok)

    def _rank(
        self,
        snapshot: Snapshot,
        query: Query,
        candidates: list[tuple[str, float]],
        options: SearchOptions,
    ) -> list[Hit]:
        if not candidates:
            return []
        ids = [c[0] for c in candidates]
        ann = np.array([c[1] for c in candidates], dtype=np.float32)
        weights = RerankParams()
        score = weights.weight_ann * ann
        parts: dict[str, np.ndarray | None] = {"ann": ann, "colour": None, "layout": None}
        if options.rerank:
            q_colour, q_layout, _ = cues([query.image])
            colour, layout, ok = self._cues(snapshot, ids)
            parts["colour"] = (colour @ q_colour[0]) * ok
            parts["layout"] = (layout @ q_layout[0]) * ok
            score = score + weights.weight_colour * parts["colour"]
            score = score + weights.weight_layout * parts["layout"]
        text = [text_similarity(query.text, snapshot.catalog.text_of(m)) for m in ids]
        if any(t is not None for t in text):
            parts["text"] = np.array([t or 0.0 for t in text], dtype=np.float32)
            score = score + WEIGHT_TEXT * parts["text"]
        else:
            parts["text"] = None
        order = np.argsort(-score, kind="stable")[: options.k]
        return [
            Hit(
                id=ids[i],
                rank=rank,
                score=round(float(score[i]), 6),
                components={
                    name: None if values is None else round(float(values[i]), 6)
                    for name, values in parts.items()
                },
            )
            for rank, i in enumerate(order, start=1)
        ]

    # -- status ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        snapshot = self.snapshot
        return {
            "ready": snapshot is not None and self.model is not None,
            "index_version": snapshot.version if snapshot else None,
            "index_created": snapshot.created if snapshot else None,
            "index_size": len(snapshot.vectors) if snapshot else 0,
            "backend": snapshot.vectors.kind if snapshot else self.settings.backend,
            "model": self.model.info.path.name if self.model else None,
            "runtime": self.model.runtime if self.model else None,
            "load_ms": snapshot.loaded_ms if snapshot else None,
            "ready_after_s": self.ready_after_s,
            "reloads": self.reloads,
            "error": self.error,
        }
