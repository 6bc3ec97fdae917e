"""The service's settings, from ``LOGOSIM_API_*`` environment variables or arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ServiceSettings(BaseSettings):
    """How the API runs; every knob has a default that is safe on a laptop."""

    model_config = SettingsConfigDict(env_prefix="LOGOSIM_API_", extra="ignore")

    store: Path = Field(
        default_factory=lambda: _default_store(), description="Store built by `logosim build`."
    )
    model: Path | None = Field(
        None,
        description="Exported ONNX model (`logosim export`); default: the index's own exported "
        "model, else DIR/export/logosim-fp32.onnx.",
    )
    runtime: Literal["auto", "openvino", "onnx"] = Field(
        "auto", description="auto: OpenVINO on CPU, ONNX Runtime on CUDA."
    )
    device: Literal["cpu", "cuda"] = "cpu"
    source: str | None = Field(
        None,
        description="The indexed source, when it moved since the build (thumbnails, metadata).",
    )
    backend: Literal["faiss", "pgvector"] = "faiss"
    dsn: str | None = Field(None, description="PostgreSQL DSN for --backend pgvector.")
    keys: str = Field("", description="Comma-separated API keys (env LOGOSIM_API_KEYS).")
    keys_file: Path | None = Field(None, description="A file with one API key per line.")
    rate_per_minute: float = Field(120.0, gt=0, description="Searches per minute per API key.")
    rate_burst: int = Field(30, ge=1, description="Searches allowed in a burst per API key.")
    read_rate_per_minute: float = Field(
        3000.0, gt=0, description="Mark/thumbnail reads per minute per API key."
    )
    read_burst: int = Field(300, ge=1)
    max_body_bytes: int = Field(10 * 2**20, ge=1024, description="Largest request body.")
    max_pixels: int = Field(25_000_000, ge=1, description="Largest decoded image, in pixels.")
    max_batch: int = Field(16, ge=1, le=64, description="Images per batch request.")
    timeout_s: float = Field(10.0, gt=0, description="Per-request time limit for a search.")
    cors_origins: list[str] = Field(default_factory=list, description="CORS off when empty.")
    candidates: int = Field(
        1000, ge=1, le=1000, description="ANN candidates stage 2 re-ranks (the CLI's K)."
    )
    reload_interval_s: float = Field(
        2.0, ge=0, description="How often to look for a new index version (0: never)."
    )
    thumbnail_px: int = Field(160, ge=32, le=1024)

    def api_keys(self) -> frozenset[str]:
        keys = {k.strip() for k in self.keys.split(",")}
        if self.keys_file is not None:
            keys |= {line.strip() for line in self.keys_file.read_text().splitlines()}
        return frozenset(k for k in keys if k and not k.startswith("#"))


def _default_store() -> Path:
    from logosim.core.settings import get_settings

    return get_settings().store
