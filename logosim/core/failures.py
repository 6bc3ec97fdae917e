"""Per-image failures: recorded with their reason, never allowed to stop a run.

Each chunk writes its own error file (so a recomputed chunk replaces, not duplicates, its
errors); ``collect_errors`` joins them into the store's ``errors.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore, Manifest

ERRORS_FILE = "errors.jsonl"


class ImageFailure(BaseModel):
    id: str
    source: str
    stage: str
    reason: str
    detail: str = ""

    @classmethod
    def of(cls, record: LogoRecord, stage: str, reason: str, detail: str = "") -> ImageFailure:
        return cls(id=record.id, source=record.ref, stage=stage, reason=reason, detail=detail)


def write_chunk_errors(
    store: ArtifactStore, stage: str, chunk_name: str, errors: list[ImageFailure]
) -> Manifest:
    lines = "".join(e.model_dump_json() + "\n" for e in errors)
    return store.write_bytes(
        f"errors/{stage}/{chunk_name}.jsonl", lines.encode(), kind="errors", rows=len(errors)
    )


def collect_errors(store: ArtifactStore, stages: list[str] | None = None) -> Path:
    """Rewrite ``errors.jsonl`` from the per-chunk error files; return its path."""
    root = store.path("errors")
    parts: list[str] = []
    for stage_dir in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        if stages and stage_dir.name not in stages:
            continue
        for file in sorted(stage_dir.glob("*.jsonl")):
            parts.append(file.read_text(encoding="utf-8"))
    store.write_bytes(ERRORS_FILE, "".join(parts).encode(), kind="errors")
    return store.path(ERRORS_FILE)


def read_errors(store: ArtifactStore) -> list[ImageFailure]:
    path = store.path(ERRORS_FILE)
    if not path.exists():
        return []
    return [
        ImageFailure.model_validate(json.loads(line))
        for line in path.read_text().splitlines()
        if line
    ]
