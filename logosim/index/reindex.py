"""Incremental reindexing: which images are new, changed or gone since the index last saw them.

The index holds ids, not content, so reindexing keeps its own table of ``id → fingerprint``
(the source's content fingerprint: sha256 of the bytes for Parquet, size+mtime for files) for
every image it has processed, tied to the index file it was written for. When that table is
missing or belongs to another index (a full rebuild happened), it is re-seeded from the
index's live ids with the source's current fingerprints: the build is taken as up to date.

New and changed images are copied into a small Parquet "delta" source in the store, named by
its content, so embedding it is an ordinary, cached embed run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from pydantic import BaseModel

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import Source, SourceSpec
from logosim.index.params import IDS_FILE, INDEX_FILE, IndexUnavailableError

FINGERPRINTS_FILE = "reindex/fingerprints.parquet"
PENDING_FILE = "reindex/pending.parquet"


class ReindexPlan(BaseModel):
    new_rows: list[int] = []
    changed_rows: list[int] = []
    deleted_ids: list[str] = []
    unchanged: int = 0
    seeded: bool = False  # the fingerprint table was (re)built from the index this time
    pending: Manifest  # fingerprints of the source now; committed once the index is updated

    @property
    def rows_to_embed(self) -> list[int]:
        return sorted(self.new_rows + self.changed_rows)


def index_manifest(store: ArtifactStore) -> Manifest:
    manifest = store.read_manifest(INDEX_FILE)
    if manifest is None:
        raise IndexUnavailableError(
            f"no index in {store.root}: run the build flow before reindexing"
        )
    return manifest


def live_ids(store: ArtifactStore) -> set[str]:
    """Ids searchable in the index now (tombstoned slots excluded)."""
    ids = store.load_verified(IDS_FILE)
    if ids is None:
        raise IndexUnavailableError(f"{IDS_FILE} is missing or corrupt: rebuild the index")
    table = store.read_json(ids)
    dead = set(table["tombstones"])
    return {value for pos, value in enumerate(table["ids"]) if pos not in dead}


def _write_fingerprints(store: ArtifactStore, rel: str, fps: dict[str, str], **meta) -> Manifest:
    table = pa.table({"id": list(fps), "fingerprint": list(fps.values())})
    return store.write_with(
        rel, lambda tmp: pq.write_table(table, tmp), kind="fingerprints", rows=len(fps), meta=meta
    )


def _read_fingerprints(store: ArtifactStore, manifest: Manifest) -> dict[str, str]:
    table = pq.read_table(store.require(manifest))
    return dict(zip(table["id"].to_pylist(), table["fingerprint"].to_pylist(), strict=True))


def known_fingerprints(
    store: ArtifactStore, current: dict[str, str]
) -> tuple[dict[str, str], bool]:
    """What the index was built from, and whether it had to be re-seeded from the index."""
    index_sha = index_manifest(store).sha256
    saved = store.load_verified(FINGERPRINTS_FILE)
    if saved is not None and saved.meta.get("index_sha256") == index_sha:
        return _read_fingerprints(store, saved), False
    logger.info("reindex: no fingerprint table for this index; seeding it from the index ids")
    return {i: current.get(i, "") for i in live_ids(store)}, True


def plan_reindex(store: ArtifactStore, source: Source) -> ReindexPlan:
    """Compare the source with what the index holds (one pass over the fingerprints)."""
    current: dict[str, str] = {}
    rows: dict[str, int] = {}
    for row, (record_id, fingerprint) in enumerate(source.fingerprints()):
        current[record_id], rows[record_id] = fingerprint, row
    known, seeded = known_fingerprints(store, current)
    new = [rows[i] for i in current if i not in known]
    changed = [rows[i] for i in current if i in known and known[i] != current[i]]
    deleted = sorted(i for i in known if i not in current)
    pending = _write_fingerprints(store, PENDING_FILE, current)
    plan = ReindexPlan(
        new_rows=new,
        changed_rows=changed,
        deleted_ids=deleted,
        unchanged=len(current) - len(new) - len(changed),
        seeded=seeded,
        pending=pending,
    )
    logger.info(
        f"reindex: {len(new)} new, {len(changed)} changed, {len(deleted)} deleted, "
        f"{plan.unchanged} unchanged"
    )
    return plan


def _ranges(rows: list[int]) -> Iterator[tuple[int, int]]:
    """Contiguous [start, stop) runs of sorted row numbers."""
    for _, run in itertools.groupby(enumerate(rows), key=lambda item: item[1] - item[0]):
        run_rows = [row for _, row in run]
        yield run_rows[0], run_rows[-1] + 1


def write_delta_source(store: ArtifactStore, source: Source, rows: list[int]) -> SourceSpec:
    """Copy the given rows (id, image bytes, text, group) into a Parquet source in the store."""
    ids, images, texts, groups, fps = [], [], [], [], []
    for start, stop in _ranges(sorted(rows)):
        for record in source.records(start, stop):
            ids.append(record.id)
            images.append(record.data)  # None when unreadable: the embed stage logs it
            texts.append(record.text)
            groups.append(record.group)
            fps.append((record.id, record.sha256 or record.read_error or ""))
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "image": pa.array(images, pa.binary()),
            "text": pa.array(texts, pa.string()),
            "group": pa.array(groups, pa.string()),
        }
    )
    rel = f"reindex/delta-{stable_digest(fps)[:16]}.parquet"
    store.write_with(rel, lambda tmp: pq.write_table(table, tmp), kind="source", rows=len(ids))
    return SourceSpec(path=str(store.path(rel)), format="parquet")


def commit_fingerprints(store: ArtifactStore, plan: ReindexPlan) -> Manifest:
    """After the index is updated: the pending fingerprints become what the index holds."""
    current = _read_fingerprints(store, plan.pending)
    return _write_fingerprints(
        store, FINGERPRINTS_FILE, current, index_sha256=index_manifest(store).sha256
    )
