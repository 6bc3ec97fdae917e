"""Incremental changes without a rebuild: add new or changed images, tombstone deleted ones."""

from __future__ import annotations

from collections.abc import Iterable

import faiss
from loguru import logger

from logosim.core.store import ArtifactStore, Manifest
from logosim.embed.pca import Descriptors
from logosim.index import ivf
from logosim.index.build import new_index, save_index, stream_vectors
from logosim.index.filler import Filler
from logosim.index.ids import IdTable
from logosim.index.logo_index import LogoIndex, index_pca


def _rebuild_if_needed(store: ArtifactStore, loaded: LogoIndex) -> tuple[faiss.Index, IdTable]:
    """Drop tombstoned slots past ``rebuild_fraction``: the live stored vectors (augmented
    already, when DBA is on) move as they are into a fresh index."""
    table = loaded.table
    if not table.ids or len(table.tombstones) / len(table.ids) < loaded.params.rebuild_fraction:
        return loaded.index, table
    logger.info(f"index: {len(table.tombstones)} tombstones of {len(table.ids)} slots; rebuilding")
    fresh_table = IdTable()
    if loaded.kind == "ivf":  # keep the trained centroids (the live vectors did not move)
        index = ivf.empty_like(loaded.index)
    else:  # the live count may call for another kind now (an untrained IVF trains first)
        index, _ = new_index(loaded.index.d, table.live, loaded.params)
    filler = Filler(index, loaded.params, store.path("index"))
    for ids, vectors in loaded.live_vectors():
        filler.add(vectors, fresh_table.append(ids))
    return filler.finish(), fresh_table


def add_to_index(store: ArtifactStore, new_chunks: list[Manifest]) -> Manifest:
    """Add new or changed images (embedding chunks) without a rebuild; ids already indexed
    are replaced (their old slot is tombstoned).

    With α-DBA, each new vector is averaged with its n nearest live vectors as stored
    (``LogoIndex.expand``: the replaced slot is skipped; images added earlier in the same
    call count). Vectors already in the index are not re-augmented with the newcomers, and
    the stored neighbours are augmented ones, not plain: a full rebuild re-augments
    everything the build way.
    """
    loaded = LogoIndex.load(store)
    pca = index_pca(store, loaded.manifest)
    describe = Descriptors.load(store, pca)
    added = 0
    for ids, vectors in stream_vectors(store, new_chunks, describe):
        slots = loaded.table.append(ids.tolist())
        loaded.refresh_tombstones()  # a changed image is not its own old neighbour
        loaded.index.add_with_ids(loaded.expand(vectors), slots)
        added += len(ids)
    index, table = _rebuild_if_needed(store, loaded)
    meta = dict(loaded.manifest.meta)
    meta["embeddings"] = list(meta.get("embeddings", [])) + [m.sha256 for m in new_chunks]
    logger.info(f"index: added {added} vectors; {table.live} live")
    return save_index(store, index, table, meta)


def remove_from_index(store: ArtifactStore, ids: Iterable[str]) -> Manifest:
    """Tombstone deleted images; searches skip them at once, a rebuild reclaims them later."""
    loaded = LogoIndex.load(store)
    removed = loaded.table.remove(ids)
    index, table = _rebuild_if_needed(store, loaded)
    logger.info(f"index: removed {removed} ids; {table.live} live")
    return save_index(store, index, table, dict(loaded.manifest.meta))
