"""Prefect tasks: thin wrappers that declare caching, retries and storage, call one library
function, and return a manifest (never arrays)."""

from tasks import _defaults  # noqa: F401  (Prefect's env defaults, before Prefect is imported)
