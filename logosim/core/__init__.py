"""The plumbing every stage shares: settings, the artifact store and its manifests, content
digests, the record type, per-image failures, progress, resource monitoring, fault injection.

Public names load lazily (``logosim.core.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "stable_digest": "digest",
    "ERRORS_FILE": "failures",
    "ImageFailure": "failures",
    "write_chunk_errors": "failures",
    "collect_errors": "failures",
    "read_errors": "failures",
    "FAULT_ENV": "faults",
    "InjectedFault": "faults",
    "raise_fault_once": "faults",
    "arm_fault": "faults",
    "peak_rss_mb": "monitor",
    "ResourceMonitor": "monitor",
    "describe": "monitor",
    "ProgressChannel": "progress",
    "LogoRecord": "records",
    "Settings": "settings",
    "get_settings": "settings",
    "MANIFEST_SUFFIX": "store",
    "StoreError": "store",
    "CorruptArtifactError": "store",
    "DiskSpaceError": "store",
    "Manifest": "store",
    "sha256_file": "store",
    "atomic_path": "store",
    "atomic_write_bytes": "store",
    "ensure_free_space": "store",
    "ArtifactStore": "store",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
