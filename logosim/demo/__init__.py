"""Embedded demo dataset: CC0 logos rendered to PNG (see ATTRIBUTION.md)."""

from pathlib import Path

DEMO_PARQUET: Path = Path(__file__).parent / "demo_logos.parquet"

__all__ = ["DEMO_PARQUET"]
