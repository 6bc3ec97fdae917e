"""One Prefect test harness for the whole session (it costs ~13 s to start)."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "logosim")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import pytest


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server with its own database; use in flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(tmp_path):
    from logosim.store import ArtifactStore

    return ArtifactStore(tmp_path / "store")


@pytest.fixture(scope="session")
def api_store(tmp_path_factory):
    """A small served store (tests/api_store.py): built once for every API test module."""
    from api_store import build_api_store

    return build_api_store(tmp_path_factory.mktemp("api"))
