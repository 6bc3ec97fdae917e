"""Process-wide settings, read from ``LOGOSIM_*`` environment variables (or a ``.env`` file).

Stage-specific knobs live in each stage's own parameter model; this holds what every stage
shares: where the store is, how big a chunk is, and the safety limits for decoding.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOGOSIM_", env_file=".env", extra="ignore")

    store: Path = Field(Path("store"), description="Root folder of the artifact store.")
    chunk_size: int = Field(2048, ge=1, description="Images per chunk task.")
    stats_checkpoint_every: int = Field(
        10_000, ge=1, description="Images per stats checkpoint (one cached task each)."
    )
    max_image_pixels: int = Field(
        64_000_000, ge=1, description="Refuse images above this many pixels (decompression bombs)."
    )
    max_image_bytes: int = Field(
        64 * 2**20, ge=1, description="Refuse encoded files larger than this."
    )
    min_free_disk_mb: int = Field(
        512, ge=0, description="Free space kept in reserve when checking before large writes."
    )
    seed: int = 0


def get_settings() -> Settings:
    return Settings()
