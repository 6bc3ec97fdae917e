"""The extract stage: a domain list → chunks of ~256 domains → one Parquet of logos.

Each chunk is extracted on one asyncio loop and written to the store as its own Parquet file
with a manifest counting its outcomes. The store is the checkpoint: a rerun skips every
chunk whose file is intact and has no transient failures (timeouts, connection and DNS
errors), and re-extracts only those domains in the others.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from logosim.core.failures import ImageFailure, collect_errors, write_chunk_errors
from logosim.core.store import ArtifactStore, Manifest, atomic_path
from logosim.data.chunks import ChunkSpec, stable_digest
from logosim.web.extract import DomainResult, ExtractSettings, extract_domains
from logosim.web.writer import concat_results, read_results, write_results

STAGE = "extract"
# Bump when what a domain yields changes (scoring, candidates, judging): chunks recompute.
EXTRACT_CODE_VERSION = "extract-1"
DEFAULT_CHUNK = 256
LOGOS_FILE = "logos.parquet"


class DomainListError(ValueError):
    """The domain list cannot be used (missing, no domain/url column)."""


class ExtractJob(BaseModel):
    """One chunk of domains, as passed to a Prefect task (the values themselves: small)."""

    stage: str = STAGE
    store: str
    chunk: ChunkSpec
    values: list[str]
    version: str
    settings: ExtractSettings

    @property
    def cache_key(self) -> str:
        return f"{self.stage}-{self.chunk.digest[:24]}-{self.version[:16]}"

    @property
    def name(self) -> str:
        return f"{self.chunk.name}-{self.chunk.digest[:8]}"

    @property
    def path(self) -> str:
        return f"web/{self.version[:12]}/{self.name}.parquet"


class ExtractSummary(BaseModel):
    domains: int
    ok: int
    failed: int
    by_reason: dict[str, int]
    by_source: dict[str, int]
    out: str
    errors_path: str


def read_domains(path: str | Path) -> list[str]:
    """Domains (``example.com``) or URLs from a Parquet/CSV file with a ``url`` or ``domain``
    column (``url`` wins), or a text file with one per line; blanks and repeats dropped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DomainListError(f"domain list {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        names = pq.ParquetFile(path).schema_arrow.names
        column = _column(names, path)
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            column = _column(reader.fieldnames or [], path)
            values = [row.get(column) for row in reader]
    else:
        values = path.read_text(encoding="utf-8").splitlines()
    cleaned = [str(v).strip() for v in values if v is not None and str(v).strip()]
    return list(dict.fromkeys(cleaned))


def _column(names: list[str], path: Path) -> str:
    for name in ("url", "domain"):
        if name in names:
            return name
    raise DomainListError(f"{path}: needs a 'url' or 'domain' column; columns: {names}")


def settings_version(settings: ExtractSettings) -> str:
    """What changes a domain's result: code version and settings, not concurrency."""
    fetch = settings.fetch.model_dump(exclude={"concurrency", "per_host"})
    return stable_digest(EXTRACT_CODE_VERSION, fetch, settings.max_downloads)


def plan_jobs(
    store: str, values: list[str], settings: ExtractSettings, chunk_size: int = DEFAULT_CHUNK
) -> list[ExtractJob]:
    version = settings_version(settings)
    jobs = []
    for index, start in enumerate(range(0, len(values), chunk_size)):
        part = values[start : start + chunk_size]
        digest = hashlib.sha256("\n".join(part).encode()).hexdigest()
        chunk = ChunkSpec(index=index, start=start, stop=start + len(part), digest=digest)
        jobs.append(
            ExtractJob(store=store, chunk=chunk, values=part, version=version, settings=settings)
        )
    return jobs


def has_transient(job: ExtractJob) -> bool:
    """Whether the chunk's stored file has domains worth another try."""
    manifest = ArtifactStore(job.store).read_manifest(job.path)
    return bool(manifest and manifest.meta.get("transient"))


def extract_chunk(job: ExtractJob, *, resolver=None) -> Manifest:
    """Extract a chunk; when its file exists, re-extract only its transient failures."""
    store = ArtifactStore(job.store)
    existing = store.load_verified(job.path)
    if existing is not None:
        results = read_results(store.path(job.path))
        redo = [i for i, r in enumerate(results) if r.transient]
        if not redo:
            return existing
        fresh = extract_domains([job.values[i] for i in redo], job.settings, resolver=resolver)
        for i, result in zip(redo, fresh, strict=True):
            results[i] = result
    else:
        results = extract_domains(job.values, job.settings, resolver=resolver)
    write_chunk_errors(store, STAGE, job.name, [_error(r) for r in results if r.status != "ok"])
    return store.write_with(
        job.path,
        lambda tmp: write_results(tmp, results),
        kind="logos",
        rows=len(results),
        versions={"extract": EXTRACT_CODE_VERSION},
        meta=_counts(results),
    )


def _error(result: DomainResult) -> ImageFailure:
    return ImageFailure(
        id=result.id or result.domain,
        source=result.page_url or result.domain,
        stage=STAGE,
        reason=result.reason,
        detail=result.detail,
    )


def _counts(results: list[DomainResult]) -> dict:
    return {
        "ok": sum(r.status == "ok" for r in results),
        "failed": sum(r.status != "ok" for r in results),
        "transient": sum(r.transient for r in results),
        "by_reason": dict(Counter(r.reason for r in results if r.status != "ok")),
        "by_source": dict(Counter(r.source for r in results if r.status == "ok")),
    }


def publish_logos(store_root: str, manifests: list[Manifest], out: str | None) -> ExtractSummary:
    """Join the chunk files into one Parquet (written atomically) and rewrite errors.jsonl."""
    store = ArtifactStore(store_root)
    paths = [store.require(m, checksum=False) for m in manifests]
    target = Path(out).expanduser().resolve() if out else store.path(LOGOS_FILE)
    rows = sum(m.rows for m in manifests)
    if target.is_relative_to(store.root):  # inside the store: an artifact with its manifest
        store.write_with(
            target.relative_to(store.root),
            lambda tmp: concat_results(paths, tmp),
            kind="logos",
            rows=rows,
            versions={"extract": EXTRACT_CODE_VERSION},
        )
    else:
        with atomic_path(target) as tmp:
            concat_results(paths, tmp)
    by_reason: Counter = Counter()
    by_source: Counter = Counter()
    ok = failed = 0
    for manifest in manifests:
        ok += manifest.meta.get("ok", 0)
        failed += manifest.meta.get("failed", 0)
        by_reason.update(manifest.meta.get("by_reason", {}))
        by_source.update(manifest.meta.get("by_source", {}))
    errors = collect_errors(store)
    return ExtractSummary(
        domains=ok + failed,
        ok=ok,
        failed=failed,
        by_reason=dict(by_reason.most_common()),
        by_source=dict(by_source.most_common()),
        out=str(target),
        errors_path=str(errors),
    )
