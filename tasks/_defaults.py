"""Prefect's environment defaults for logosim, in one place.

Imported before Prefect is (``tasks/__init__``, ``flows/__init__``, the tests' conftest);
each is a default only: a value already in the environment or a profile's env wins.
"""

from __future__ import annotations

import os

DEFAULTS = {
    # A cold temporary Prefect server on 2 cores can need more than its default 20 s to start.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Library logs (loguru → stdlib "logosim") reach the run logs in the UI.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "logosim",
    # Library calls outside a flow run (search, tests) log to the console only, no warning.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # No anonymous usage data: offline, every temporary server logged
    # "ERROR | prefect.server.services.telemetry - Failed to send telemetry".
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}

for name, value in DEFAULTS.items():
    os.environ.setdefault(name, value)
