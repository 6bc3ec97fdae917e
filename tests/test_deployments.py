"""Deployments: prefect.yaml and `logosim serve` declare the same flows, and both deploy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from deployments.serve import FLOWS, OPTIONAL, REINDEX_CRON, build_deployments, load_flow

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"


def _yaml_deployments() -> list[dict]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def _available() -> set[str]:
    return {
        name
        for name, target in FLOWS.items()
        if importlib.util.find_spec(target.split(":")[0]) is not None
    }


def test_prefect_yaml_and_serve_declare_the_same_flows():
    entrypoints = {}
    for item in _yaml_deployments():
        path, attr = item["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        entrypoints[f"{module}:{attr}"] = item
    by_target = {target: name for name, target in FLOWS.items()}
    assert set(entrypoints) <= set(by_target), set(entrypoints) - set(by_target)
    # every flow that exists is deployed; only stages still being written may be missing
    declared = {by_target[t] for t in entrypoints}
    assert _available() <= declared, _available() - declared
    assert set(FLOWS) - declared <= OPTIONAL
    for target, item in entrypoints.items():
        flow = load_flow(by_target[target])
        assert isinstance(flow, Flow) and flow.name == by_target[target]
        assert item["work_pool"]["name"] == "logosim"
        expected = "nightly" if flow.name == "reindex" else "default"
        assert item["name"] == expected


def test_reindex_is_scheduled_nightly_with_editable_parameters():
    (nightly,) = [d for d in _yaml_deployments() if d["name"] == "nightly"]
    assert nightly["schedules"][0]["cron"] == REINDEX_CRON
    assert "source" in nightly["parameters"]


def test_serve_builds_a_default_deployment_per_flow_and_the_nightly_schedule():
    deployments = {f"{d.flow_name}/{d.name}": d for d in build_deployments(["build", "reindex"])}
    assert set(deployments) == {"build/default", "reindex/nightly"}
    schedule = deployments["reindex/nightly"].schedules[0].schedule
    assert schedule.cron == REINDEX_CRON and schedule.timezone == "UTC"
    assert deployments["reindex/nightly"].parameters == {"source": {"path": "demo"}}
    # the UI's form: build takes one BuildParams parameter with a schema
    assert "params" in deployments["build/default"]._parameter_openapi_schema.properties
    with pytest.raises(ValueError, match="unknown flow"):
        build_deployments(["nope"])


def test_prefect_deploy_registers_every_deployment_on_a_process_pool(prefect_server, tmp_path):
    """`prefect deploy --all` with our prefect.yaml, against the test server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path)}
    prefect = str(Path(sys.executable).with_name("prefect"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [prefect, "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    cli("work-pool", "create", "logosim", "--type", "process", "--overwrite")
    cli("deploy", "--all", "--prefect-file", str(PREFECT_YAML))
    with get_client(sync_client=True) as client:
        names = set()
        for item in _yaml_deployments():
            flow_name = item["entrypoint"].split(":")[1].removesuffix("_flow")
            deployment = client.read_deployment_by_name(f"{flow_name}/{item['name']}")
            assert deployment.work_pool_name == "logosim"
            names.add(f"{flow_name}/{item['name']}")
        nightly = client.read_deployment_by_name("reindex/nightly")
    assert "build/default" in names and "embed/default" in names
    assert nightly.schedules and nightly.schedules[0].schedule.cron == REINDEX_CRON


def test_custom_run_forms_open_on_the_settings_not_on_none():
    """A settings parameter (``params: BuildParams | None = None``) gets a value in both
    routes, so the UI's Custom run form shows its fields (checked in a browser: issue 11)."""
    from deployments.serve import form_defaults

    by_entrypoint = {d["entrypoint"]: d for d in _yaml_deployments()}
    for name, target in FLOWS.items():
        flow = load_flow(name)
        defaults = form_defaults(flow)
        if name == "build":
            assert defaults["params"]["source"]["path"] == "demo"
        module, attr = target.split(":")
        declared = by_entrypoint[f"{module.replace('.', '/')}.py:{attr}"].get("parameters", {})
        assert set(defaults) <= set(declared), name
    served = {d.flow_name: d for d in build_deployments(["build", "embed"])}
    assert served["build"].parameters == form_defaults(load_flow("build"))
    assert set(served["embed"].parameters) == {"source", "params"}
