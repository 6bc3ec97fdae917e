"""One Prefect test harness for the whole session (it costs ~13 s to start)."""

from __future__ import annotations

import pytest

import tasks._defaults  # noqa: F401  (Prefect's env defaults, before Prefect is imported)


@pytest.fixture(scope="session")
def prefect_server():
    """A temporary Prefect server with its own database; use in flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(tmp_path):
    from logosim.core.store import ArtifactStore

    return ArtifactStore(tmp_path / "store")


@pytest.fixture(scope="session")
def demo_subset(tmp_path_factory):
    """``demo_subset(grouped, others)``: a parquet of the first ``grouped`` demo logos with a
    group and ``others`` distractors, written once per session."""
    from helpers import write_demo_subset

    folder = tmp_path_factory.mktemp("demo")
    made = {}

    def make(grouped: int, others: int):
        if (grouped, others) not in made:
            path = folder / f"demo-{grouped}-{others}.parquet"
            made[grouped, others] = write_demo_subset(path, grouped, others)
        return made[grouped, others]

    return make


@pytest.fixture(scope="session")
def api_store(tmp_path_factory):
    """A small served store (tests/api_store.py): built once for every API test module."""
    from api_store import build_api_store

    return build_api_store(tmp_path_factory.mktemp("api"))
