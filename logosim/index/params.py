"""Index settings, store paths and errors: what the other index modules share."""

from __future__ import annotations

from pydantic import BaseModel, Field

from logosim.core.store import StoreError

INDEX_FILE = "index/index.faiss"
IDS_FILE = "index/ids.json"
INDEX_VERSION = "2"  # 2: α-DBA, recall measured on the stored vectors


class IndexParams(BaseModel):
    """How the index is built and searched (a form in the Prefect UI)."""

    exact_below: int = Field(50_000, ge=0, description="Use exact search below this many vectors.")
    m: int = Field(32, ge=4, description="HNSW: neighbours per node.")
    ef_construction: int = Field(200, ge=8, description="HNSW: build-time search depth.")
    ef_search: int = Field(256, ge=8, description="HNSW: query-time search depth.")
    recall_sample: int = Field(500, ge=0, description="Queries used to report HNSW recall.")
    rebuild_fraction: float = Field(
        0.2, gt=0.0, le=1.0, description="Rebuild once this share of slots is tombstoned."
    )
    dba_neighbours: int = Field(
        2,
        ge=0,
        description="α-DBA: average each vector with this many nearest neighbours, and expand "
        "queries the same way (α-QE); 0 = off.",
    )
    dba_alpha: float = Field(
        3.0, ge=0.0, description="α-DBA/α-QE: a neighbour weighs max(similarity, 0)^alpha."
    )

    def dba(self) -> dict | None:
        """The augmentation settings recorded in the index manifest (None: off)."""
        if self.dba_neighbours == 0:
            return None
        return {"neighbours": self.dba_neighbours, "alpha": self.dba_alpha}


def describe_dba(dba: dict | None) -> str:
    """An index manifest's ``dba`` entry in words (artifact tables)."""
    return f"n={dba['neighbours']}, alpha={dba['alpha']}" if dba else "off"


class IndexUnavailableError(StoreError):
    """The index is missing or inconsistent with its id table."""
