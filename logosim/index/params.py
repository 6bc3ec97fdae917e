"""Index settings, store paths and errors: what the other index modules share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from logosim.core.store import StoreError

INDEX_FILE = "index/index.faiss"
IDS_FILE = "index/ids.json"
INDEX_VERSION = "2"  # 2: α-DBA, recall measured on the stored vectors

IndexKind = Literal["auto", "exact", "hnsw", "ivf"]


# Measured on 1M 512-d vectors, 2 cores (notes/issue-17-speed.md): see IndexParams.kind.
IVF_FROM = 200_000
NPROBE = 64
IVF_TRAIN_PER_LIST = 16


class IndexParams(BaseModel):
    """How the index is built and searched (a form in the Prefect UI)."""

    kind: IndexKind = Field(
        "auto",
        description="auto: exact below exact_below vectors, HNSW below ivf_from, IVF above "
        "(the manifest records the kind built; existing indexes load as they are).",
    )
    exact_below: int = Field(50_000, ge=0, description="Use exact search below this many vectors.")
    ivf_from: int = Field(
        IVF_FROM, ge=0, description="auto: an IVF index (HNSW coarse quantiser) from this many."
    )
    nlist: int = Field(0, ge=0, description="IVF: inverted lists; 0 = about 4·√vectors.")
    nprobe: int = Field(NPROBE, ge=1, description="IVF: lists searched per query.")
    ivf_train_per_list: int = Field(
        IVF_TRAIN_PER_LIST, ge=1, description="IVF: k-means training vectors per list."
    )
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

    def choose_kind(self, rows: int) -> str:
        """The kind to build for ``rows`` vectors (``kind``, or by size for auto)."""
        if self.kind != "auto":
            return self.kind
        if rows < self.exact_below:
            return "exact"
        return "hnsw" if rows < self.ivf_from else "ivf"

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
