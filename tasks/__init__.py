"""Prefect tasks: thin wrappers that declare caching, retries and storage, call one library
function, and return a manifest (never arrays)."""
