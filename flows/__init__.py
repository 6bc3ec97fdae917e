"""Prefect flows: the pipeline, stage by stage. Each module reads like its stage."""

import tasks._defaults  # noqa: F401  (Prefect's env defaults, before Prefect is imported)
