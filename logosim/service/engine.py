"""The search engine behind the API: one loaded snapshot of the index, swapped atomically.

A snapshot is everything one index version needs: the stored vectors (FAISS, memory-mapped
read-only, or PostgreSQL + pgvector), the descriptor transform the index was built with,
and the mark catalog. A request takes the current snapshot once and uses only it, so a hot
reload (a reindex published a new ``index/index.faiss``) never mixes versions and never
fails a request: the new snapshot is loaded beside the old one and swapped in one
assignment; the old one goes when its last request is done.

Query path: decode (done by the caller) → the exported model (no PyTorch) → descriptor
transform → α-query expansion → ANN (filters as a FAISS id selector) → optional stage-2
re-rank → hits. The re-rank is the CLI's (``logosim.search.stage2``): the query and its
variants search the index, and the top K candidates are ordered by the composite of global,
spatial (stored local descriptors), text (phonetic) and colour terms, each hit carrying them.
A term that cannot be computed is absent, not zero, and the response says why.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
from loguru import logger
from PIL import Image

from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.embed.params import BLUR_UNRECORDED
from logosim.embed.pca import Descriptors, l2_normalize
from logosim.index.ids import search_params
from logosim.index.logo_index import LogoIndex, index_pca
from logosim.index.params import IDS_FILE, INDEX_FILE
from logosim.preprocess.query_mask import QueryPrepare, query_prepare
from logosim.search.composite import TERMS, CompositeParams
from logosim.search.local import HOW_TO_ADD, LocalTable
from logosim.search.stage2 import (
    candidate_union,
    query_variants,
    ranked_terms,
    score_query,
    text_scores,
)
from logosim.service.catalog import LRU, Catalog
from logosim.service.config import ServiceSettings
from logosim.service.querymodel import QueryModel, QueryModelError
from logosim.service.texts import MarkTexts

EXPORTED_MODEL = "export/logosim-fp32.onnx"
WEIGHTS = {"global": "weight_global", "spatial": "weight_spatial", "text": "weight_text",
           "colour": "weight_colour"}  # fmt: skip


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
    composite: CompositeParams = field(default_factory=CompositeParams)
    vienna_prefix: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    ef_search: int | None = None
    candidates: int = 1000


@dataclass
class Hit:
    id: str
    rank: int
    score: float
    components: dict[str, float | None]  # global, spatial, text, colour; None = absent


@dataclass
class Ranking:
    """One query's hits and which composite terms took part (or why not)."""

    hits: list[Hit]
    terms_used: list[str]
    absent: dict[str, str]  # term → why it is absent for this query


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


def _as_given(image: Image.Image) -> Image.Image:
    return image


@dataclass
class Snapshot:
    """One index version, ready to search."""

    version: str
    created: str
    vectors: Vectors
    describe: Descriptors
    catalog: Catalog
    loaded_ms: float
    index: LogoIndex  # stored vectors of candidates found by a query variant
    local: LocalTable  # the marks' local descriptor blocks (spatial and colour terms)
    texts: MarkTexts  # the marks' word elements as phonetic codes (text term)
    prepare: QueryPrepare = _as_given  # a query as the build saw its images (text masked)
    thumbnails: LRU = field(default_factory=lambda: LRU(2_000))  # PNG bytes, ~15 KB each


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
        embed = manifest.meta.get("embed") or {}
        built = embed.get("normalize")
        if built and not own and built != model.info.normalize:
            logger.warning(
                f"the index was built with '{built}' framing, the exported model frames queries "
                f"with '{model.info.normalize}': export again with --normalize {built}"
            )
        blur = float(embed.get("blur", BLUR_UNRECORDED))
        if built and not own and blur != model.info.blur:
            logger.warning(
                f"the index was built with input blur {blur:g}, the exported model blurs "
                f"queries by {model.info.blur:g}: export again with --blur {blur:g}"
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
            index=index,
            local=LocalTable(self.store),
            texts=MarkTexts(self.store, catalog).start(),
            prepare=query_prepare(manifest.meta) or _as_given,
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
    ) -> tuple[list[Ranking], Snapshot]:
        snapshot = self.snapshot
        if snapshot is None or self.model is None:
            raise EngineError(self.error or "still loading")
        if options.rerank:
            return [self._stage2(snapshot, q, options) for q in queries], snapshot
        vectors = snapshot.describe(self.embed([snapshot.prepare(q.image) for q in queries]))
        vectors = snapshot.vectors.expand(vectors, options.ef_search)
        found = snapshot.vectors.search(vectors, options.k, options)
        off = {t: "re-ranking is off" for t in TERMS[1:]}
        rankings = [
            Ranking(
                [
                    Hit(mark, rank, round(score, 6), {"global": round(score, 6)} | dict.fromkeys(TERMS[1:]))
                    for rank, (mark, score) in enumerate(hits, start=1)
                ],
                ["global"],
                off,
            )
            for hits in found
        ]  # fmt: skip
        return rankings, snapshot

    def _stage2(self, snapshot: Snapshot, query: Query, options: SearchOptions) -> Ranking:
        """The CLI's stage 2 (``Searcher.search_images`` with the composite on) for one query."""
        assert self.model is not None
        cp = options.composite
        images = query_variants(snapshot.prepare(query.image), list(cp.variants))
        embedded = self.model.embed(images)
        vectors = snapshot.vectors.expand(
            snapshot.describe(l2_normalize(embedded.vectors)), options.ef_search
        )
        depth = max(options.candidates, options.k)
        deep = replace(options, ef_search=max(options.ef_search or 0, depth))
        found = snapshot.vectors.search(vectors, depth, deep)  # every variant searches
        ids = candidate_union([[mark for mark, _ in hits] for hits in found])
        absent = self._absent(snapshot, query, embedded.spatial, embedded.blocks.shape[1], cp)
        text_table = snapshot.texts.lookup() if "text" not in absent else None
        scored = score_query(
            ids,
            vectors,
            dict(found[0]),
            cp,
            stored=snapshot.index.vectors,
            blocks=embedded.blocks,
            query_spatial="spatial" not in absent,
            local=snapshot.local,
            text=text_scores(text_table, query.text, ids),
        )
        hits = [
            Hit(ids[pos], rank, round(score, 6),
                {t: None if v is None else round(v, 6) for t, v in terms.items()})
            for rank, (pos, score, terms) in enumerate(ranked_terms(scored, options.k), 1)
        ]  # fmt: skip
        used = [  # terms that counted: present for some hit and weighted
            t for t in TERMS
            if getattr(cp, WEIGHTS[t]) > 0 and any(h.components[t] is not None for h in hits)
        ]  # fmt: skip
        for term in TERMS:
            if term not in used and term not in absent and hits:
                absent[term] = "no candidate among the hits has it"
        return Ranking(hits, used, absent)

    def _absent(
        self, snapshot: Snapshot, query: Query, spatial: bool, slots: int, cp: CompositeParams
    ) -> dict[str, str]:
        """Terms this query cannot have, with the reason (its weight then renormalises away)."""
        absent: dict[str, str] = {}
        for term, name in WEIGHTS.items():
            if getattr(cp, name) <= 0:
                absent[term] = "weight 0"
        if not len(snapshot.local):
            for term in ("spatial", "colour"):
                absent.setdefault(term, f"the store has no local descriptors: {HOW_TO_ADD}")
        if not spatial:
            absent.setdefault(
                "spatial",
                "the query model has no feature-map output (export it with one to score "
                "local descriptors)",
            )
        elif snapshot.local.layout is not None and snapshot.local.layout.slots != slots:
            absent.setdefault(
                "spatial", "the query model's feature map does not match the stored grid"
            )
        if not query.text or not query.text.strip():
            absent.setdefault("text", "the query has no word element")
        else:
            why = snapshot.texts.why_absent()
            if why:
                absent.setdefault("text", why)
        return absent

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
            "local_descriptors": len(snapshot.local) if snapshot else 0,
            "query_local": (self.model.local if self.model else None),
            "text_source": snapshot.texts.source if snapshot else None,
        }
