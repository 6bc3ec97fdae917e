"""The JSON the API answers with (also the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Components(BaseModel):
    """Stage-2 terms of one hit; None = absent (not zero): its weight renormalises away."""

    global_: float = Field(
        alias="global", description="Cosine of the (expanded) query with the stored vector."
    )
    spatial: float | None = Field(
        None, description="Local-descriptor agreement (chamfer of the 7×7 patches)."
    )
    text: float | None = Field(None, description="Phonetic (ALINE) similarity of word elements.")
    colour: float | None = Field(None, description="Colour-histogram similarity.")


class Result(BaseModel):
    id: str
    rank: int
    score: float = Field(
        description="Re-rank off: the cosine. On: Σ w·term / Σ w over the terms present."
    )
    components: Components
    metadata: dict[str, Any]
    thumbnail_url: str


class Rerank(BaseModel):
    on: bool
    variants: list[str] = Field(description="Query variants embedded and searched too.")
    weights: dict[str, float] = Field(description="The composite weights asked for.")
    terms_used: list[str] = Field(description="Terms present for at least one hit.")
    absent: dict[str, str] = Field(description="Terms absent for this query, and why.")


class SearchResponse(BaseModel):
    results: list[Result]
    rerank: Rerank
    index_version: str
    took_ms: float


class BatchItem(BaseModel):
    results: list[Result]
    rerank: Rerank


class BatchResponse(BaseModel):
    queries: list[BatchItem]
    index_version: str
    took_ms: float


class Mark(BaseModel):
    id: str
    metadata: dict[str, Any]
    thumbnail_url: str
    index_version: str


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    index_version: str | None
    index_created: str | None
    index_size: int
    backend: str
    model: str | None
    runtime: str | None
    load_ms: float | None
    ready_after_s: float | None
    reloads: int
    error: str | None
    local_descriptors: int = Field(0, description="Marks with stored local descriptors.")
    query_local: str | None = Field(
        None, description="How the query model gives local descriptors (None: it does not)."
    )
    text_source: str | None = Field(None, description="metadata | ocr | None (no mark text).")
    api_keys: bool = Field(description="Whether API keys are required.")


class Error(BaseModel):
    reason: str = Field(description="A stable machine-readable word, e.g. 'truncated'.")
    detail: str | list | dict | None = None
