"""Prefect flows: the pipeline, stage by stage. Each module reads like its stage."""

import os

# A cold temporary Prefect server on 2 cores can need more than its default 20 s to start.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "logosim")
