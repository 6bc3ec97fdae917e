"""Check a store and clean it: every manifest against its file, leftovers, orphans, stale chunks.

What counts as what:
- **damaged**: a manifest whose file is missing, or whose size or sha256 differs (a flipped
  byte, a truncation), or a manifest that does not parse. The next run recomputes these;
  ``verify`` exits non-zero so an operator knows before that.
- **leftover**: a temporary file of an interrupted atomic write (``.NAME.PID.XXXX.tmp``).
- **orphan**: a file with no manifest beside it (outside Prefect's own result folder).
- **stale**: an embedding chunk no current index was built from (an earlier source or
  settings); only reported when an index exists, since without one nothing is current.

``collect_garbage`` removes leftovers and, when asked, orphans and stale chunks with their
manifests; it never touches damaged artifacts (the run repairs them) or Prefect's results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from logosim.core.store import (
    MANIFEST_SUFFIX,
    ArtifactStore,
    Manifest,
    is_temp_file,
    sha256_file,
)
from logosim.core.store_lock import LOCK_FILE

PREFECT_DIR = "_prefect"  # Prefect's task results: its own format, its own cache records
UNMANAGED = {LOCK_FILE}  # store-level files that carry no manifest by design
INDEX_MANIFEST = "index/index.faiss" + MANIFEST_SUFFIX


@dataclass
class StoreReport:
    checked: int = 0
    damaged: dict[str, str] = field(default_factory=dict)  # artifact path → reason
    leftovers: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def lines(self) -> list[str]:
        out = [f"{self.checked} artifacts checked, {len(self.damaged)} damaged"]
        out += [f"  damaged  {path}: {reason}" for path, reason in sorted(self.damaged.items())]
        out += [f"  leftover {path}" for path in self.leftovers]
        out += [f"  orphan   {path}" for path in self.orphans]
        out += [f"  stale    {path}" for path in self.stale]
        return out


def _files(store: ArtifactStore) -> Iterator[Path]:
    for path in sorted(store.root.rglob("*")):
        rel = path.relative_to(store.root)
        if path.is_file() and rel.parts[0] != PREFECT_DIR and str(rel) not in UNMANAGED:
            yield path


def _check(store: ArtifactStore, manifest_file: Path, checksum: bool) -> tuple[str, str | None]:
    artifact = manifest_file.with_name(manifest_file.name.removesuffix(MANIFEST_SUFFIX))
    rel = str(artifact.relative_to(store.root))
    try:
        manifest = Manifest.model_validate(json.loads(manifest_file.read_text()))
    except (OSError, ValueError) as exc:
        return rel, f"unreadable manifest ({type(exc).__name__})"
    if not artifact.exists():
        return rel, "file missing"
    size = artifact.stat().st_size
    if size != manifest.size:
        return rel, f"size {size} bytes, manifest says {manifest.size}"
    if checksum and sha256_file(artifact) != manifest.sha256:
        return rel, "sha256 differs from the manifest"
    return rel, None


def _current_chunks(store: ArtifactStore) -> set[str] | None:
    """sha256 of the embedding chunks the current index was built from (None: no index)."""
    path = store.root / INDEX_MANIFEST
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text()).get("meta", {})
    except (OSError, ValueError):
        return None
    return set(meta.get("embeddings") or [])


def verify_store(store: ArtifactStore, *, checksum: bool = True) -> StoreReport:
    report = StoreReport()
    files = list(_files(store))
    manifests = [p for p in files if p.name.endswith(MANIFEST_SUFFIX)]
    described = {p.with_name(p.name.removesuffix(MANIFEST_SUFFIX)) for p in manifests}
    for manifest_file in manifests:
        report.checked += 1
        rel, problem = _check(store, manifest_file, checksum)
        if problem:
            report.damaged[rel] = problem
    for path in files:
        rel = str(path.relative_to(store.root))
        if is_temp_file(path):
            report.leftovers.append(rel)
        elif not path.name.endswith(MANIFEST_SUFFIX) and path not in described:
            report.orphans.append(rel)
    current = _current_chunks(store)
    if current is not None:
        for manifest_file in store.root.glob("embeddings/*" + MANIFEST_SUFFIX):
            rel = str(manifest_file.relative_to(store.root)).removesuffix(MANIFEST_SUFFIX)
            if rel in report.damaged:
                continue
            if json.loads(manifest_file.read_text()).get("sha256") not in current:
                report.stale.append(rel)
    return report


def collect_garbage(
    store: ArtifactStore,
    report: StoreReport,
    *,
    orphans: bool = False,
    stale: bool = False,
    delete: bool = False,
) -> list[str]:
    """What would go (``delete=False``, the default) or went: leftovers; with ``orphans``
    the files without a manifest (a person's own file in the store is one: opt in), and with
    ``stale`` the stale chunks and their manifests."""
    doomed = list(report.leftovers) + (list(report.orphans) if orphans else [])
    if stale:
        doomed += [p for rel in report.stale for p in (rel, rel + MANIFEST_SUFFIX)]
    if delete:
        for rel in doomed:
            store.path(rel).unlink(missing_ok=True)
    return doomed
