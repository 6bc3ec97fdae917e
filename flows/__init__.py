"""Prefect flows: the pipeline, stage by stage. Each module reads like its stage."""

import os

# A cold temporary Prefect server on 2 cores can need more than its default 20 s to start.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "logosim")
# Library calls outside a flow run (search, tests) log to the console only, without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
