"""FAISS slots ↔ string ids, and the tombstones that searches skip (HNSW cannot delete)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import faiss
import numpy as np


@dataclass
class IdTable:
    """FAISS id (position) ↔ string id, plus the tombstoned positions."""

    ids: list[str] = field(default_factory=list)
    tombstones: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.position = {value: pos for pos, value in enumerate(self.ids)}  # latest slot wins

    @property
    def live(self) -> int:
        return len(self.ids) - len(self.tombstones)

    def append(self, new_ids: Iterable[str]) -> np.ndarray:
        """Give each id a slot; an id already present tombstones its old slot (a change)."""
        start = len(self.ids)
        for offset, value in enumerate(new_ids):
            old = self.position.get(value)
            if old is not None:
                self.tombstones.add(old)
            self.ids.append(value)
            self.position[value] = start + offset
        return np.arange(start, len(self.ids), dtype=np.int64)

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for value in ids:
            pos = self.position.pop(value, None)
            if pos is not None:
                self.tombstones.add(pos)
                removed += 1
        return removed

    def to_json(self, index_sha256: str) -> dict:
        return {"ids": self.ids, "tombstones": sorted(self.tombstones), "index": index_sha256}


class Tombstones:
    """A FAISS selector that skips tombstoned slots, and the search parameters using it.

    FAISS keeps raw pointers: the batch selector lives as long as the Not selector, and this
    object as long as the parameters it made are in use.
    """

    def __init__(self, dead: set[int]) -> None:
        self._batch = self.skip = None
        if dead:
            self._batch = faiss.IDSelectorBatch(np.fromiter(dead, dtype=np.int64))
            self.skip = faiss.IDSelectorNot(self._batch)

    def params(self, kind: str, ef_search: int, nprobe: int = 1) -> faiss.SearchParameters | None:
        return search_params(kind, ef_search, nprobe, self.skip)


def search_params(
    kind: str, ef_search: int, nprobe: int, sel: faiss.IDSelector | None = None
) -> faiss.SearchParameters | None:
    """The per-search settings of an index kind: efSearch (HNSW), nprobe (IVF), a selector."""
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=ef_search, sel=sel)
    if kind == "ivf":
        return faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
    return faiss.SearchParameters(sel=sel) if sel is not None else None
