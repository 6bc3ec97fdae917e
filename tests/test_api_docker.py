"""docker/: the API image lints clean and its compose service shares the store read-only,
with a health check on /readyz (validated without an engine, as tests/test_docker.py)."""

from __future__ import annotations

import subprocess

from test_docker import DOCKER, _compose_config, _tool


def test_compose_api_service_shares_the_store_and_checks_readiness():
    api = _compose_config()["services"]["api"]
    assert api["build"]["dockerfile"] == "docker/Dockerfile.api"
    assert api["environment"]["LOGOSIM_API_STORE"] == "/store"
    assert "LOGOSIM_API_KEYS" in api["environment"]
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in api["volumes"]]
    assert any(m.startswith("store:/store") for m in mounts)
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def test_api_dockerfile_lints_clean_and_has_no_torch():
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKER / "Dockerfile.api")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DOCKER / "Dockerfile.api").read_text()
    assert "HEALTHCHECK" in text and "/readyz" in text and "logosim.service.app:create_app" in text
    assert "torch" not in text.replace("no torch", "").replace("No PyTorch", "")
