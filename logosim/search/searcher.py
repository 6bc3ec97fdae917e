"""Query → descriptor → ANN candidates → (optional re-rank) → ranked hits.

The query goes through the same backbone settings and PCA model the index was built with
(both recorded in the index manifest), so a query image and its indexed copy get the same
descriptor. When the index was built with α-DBA, the query gets the matching α-query
expansion (its n nearest stored vectors, weighted by similarity^α) before the search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from logosim.core.store import ArtifactStore
from logosim.embed.pca import Descriptors
from logosim.index.logo_index import LogoIndex, index_pca
from logosim.search.composite import CompositeParams
from logosim.search.rerank import RerankParams, rerank


class SearchHit(BaseModel):
    id: str
    score: float
    rank: int
    terms: dict[str, float | None] | None = Field(
        None, description="Stage-2 component scores (global, spatial, text, colour); None = absent."
    )


class SearchParams(BaseModel):
    k: int = Field(10, ge=1, description="Hits returned per query.")
    candidates: int = Field(1000, ge=1, description="ANN candidates kept for re-ranking.")
    ef_search: int | None = Field(None, ge=8, description="HNSW search depth (index default).")
    rerank: RerankParams = Field(default_factory=RerankParams)
    composite: CompositeParams = Field(
        default_factory=CompositeParams, description="Stage 2 (issue 12): composite re-ranking."
    )


GalleryImages = Callable[[list[str]], list[Image.Image | None]]
"""Fetches indexed images by id (for re-ranking); None where an image is unavailable."""


class Searcher:
    """A loaded index + descriptor transform (+ the backbone, loaded on first image query)."""

    def __init__(
        self,
        store: ArtifactStore | str,
        gallery_images: GalleryImages | None = None,
        mark_texts: dict[str, str] | None = None,
    ):
        self.store = store if isinstance(store, ArtifactStore) else ArtifactStore(store)
        self._local = None
        self._texts = None
        self.mark_texts = mark_texts  # id → word element (metadata text or OCR words)
        self.index = LogoIndex.load(self.store)
        meta = self.index.manifest.meta
        self.describe = Descriptors.load(self.store, index_pca(self.store, self.index.manifest))
        self.embed_settings = meta.get("embed", {})
        self._prepare_query = None  # the build masked no text: queries go in as given
        if meta.get("preprocess"):
            from logosim.preprocess.query_mask import query_prepare  # OpenCV, Tesseract

            self._prepare_query = query_prepare(meta)
        self.gallery_images = gallery_images
        self._embedder = None

    @property
    def embedder(self):
        if self._embedder is None:
            from logosim.embed.embedder import cached_embedder
            from logosim.embed.params import EmbedParams  # torch: load only if needed

            self._embedder = cached_embedder(
                EmbedParams.as_recorded(self.embed_settings), self.store
            )
        return self._embedder

    def search_features(
        self,
        features: np.ndarray,
        params: SearchParams | None = None,
        query_images: Sequence[Image.Image] | None = None,
    ) -> list[list[SearchHit]]:
        """Search with raw pooled features (N, D) as the embedder produces them."""
        params = params or SearchParams()
        vectors = self.index.expand(self.describe(features), ef_search=params.ef_search)
        reranking = params.rerank.enabled and query_images is not None and self.gallery_images
        depth = max(params.candidates, params.k) if reranking else params.k
        found = self.index.search(vectors, depth, ef_search=params.ef_search)
        results = []
        for i, (ids, scores) in enumerate(zip(found.ids, found.scores, strict=True)):
            if reranking:
                ids, scores = rerank(
                    query_images[i], ids, scores, self.gallery_images(ids), params.rerank
                )
            results.append(
                [
                    SearchHit(id=hit, score=float(score), rank=rank)
                    for rank, (hit, score) in enumerate(
                        zip(ids[: params.k], scores[: params.k], strict=True), start=1
                    )
                ]
            )
        return results

    def search_images(
        self,
        images: Sequence[Image.Image],
        params: SearchParams | None = None,
        texts: Sequence[str | None] | None = None,
    ) -> list[list[SearchHit]]:
        params = params or SearchParams()
        seen = self.as_indexed(images)
        if params.composite.enabled:
            from logosim.search.stage2 import search_composite

            return search_composite(self, seen, params, texts)
        features = self.embedder.embed_images(seen)
        # Pixel re-ranking compares with the gallery's source images: the query as given.
        return self.search_features(features, params, query_images=images)

    def as_indexed(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """The queries as the build saw its images (words painted out when it masked text)."""
        prepare = self._prepare_query
        return [prepare(image) for image in images] if prepare else list(images)

    @property
    def local(self):
        """The store's local descriptors (loaded on first use)."""
        if self._local is None:
            from logosim.search.local import LocalTable

            self._local = LocalTable(self.store)
        return self._local

    @property
    def texts(self):
        """The marks' word elements as phonetic codes (None without any text)."""
        if self._texts is None and self.mark_texts:
            from logosim.search.phonetic import TextTable

            ids = self.index.table.ids
            self._texts = (
                TextTable([self.mark_texts.get(i) for i in ids]),
                {mark: row for row, mark in enumerate(ids)},
            )
        return self._texts
