"""The FAISS index: settings, id table and tombstones, α-DBA, the build, incremental adds and
removals, the nightly reindex plan, and exact search as ground truth.

Public names load lazily (``logosim.index.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "add_to_index": "add",
    "remove_from_index": "add",
    "new_index": "build",
    "index_kind": "build",
    "storage_blocks": "build",
    "stream_vectors": "build",
    "save_index": "build",
    "build_index": "build",
    "neighbour_augment": "dba",
    "nearest_others": "dba",
    "augment": "dba",
    "augment_collection": "dba",
    "exact_topk": "exact",
    "recall_vs_exact": "exact",
    "measure_recall": "exact",
    "IdTable": "ids",
    "Tombstones": "ids",
    "SearchResult": "logo_index",
    "LogoIndex": "logo_index",
    "index_pca": "logo_index",
    "INDEX_FILE": "params",
    "IDS_FILE": "params",
    "INDEX_VERSION": "params",
    "IndexParams": "params",
    "describe_dba": "params",
    "IndexUnavailableError": "params",
    "FINGERPRINTS_FILE": "reindex",
    "PENDING_FILE": "reindex",
    "ReindexPlan": "reindex",
    "index_manifest": "reindex",
    "live_ids": "reindex",
    "known_fingerprints": "reindex",
    "plan_reindex": "reindex",
    "write_delta_source": "reindex",
    "commit_fingerprints": "reindex",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
