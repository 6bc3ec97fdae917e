"""The JSON the API answers with (also the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Components(BaseModel):
    ann: float = Field(description="Cosine of the (expanded) query with the stored vector.")
    colour: float | None = Field(None, description="Colour-histogram similarity (re-rank on).")
    layout: float | None = Field(None, description="Ink-layout correlation (re-rank on).")
    text: float | None = Field(None, description="Word-element similarity (text given).")


class Result(BaseModel):
    id: str
    rank: int
    score: float = Field(description="ann + 0.1·colour + 0.1·layout + 0.2·text (those present).")
    components: Components
    metadata: dict[str, Any]
    thumbnail_url: str


class SearchResponse(BaseModel):
    results: list[Result]
    index_version: str
    took_ms: float


class BatchItem(BaseModel):
    results: list[Result]


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
    api_keys: bool = Field(description="Whether API keys are required.")


class Error(BaseModel):
    reason: str = Field(description="A stable machine-readable word, e.g. 'truncated'.")
    detail: str | list | dict | None = None
