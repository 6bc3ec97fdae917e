"""Fuzz every operation against the app's own OpenAPI schema (schemathesis + Hypothesis,
bounded): whatever arrives, the answer is never a 5xx and always names a reason."""

from __future__ import annotations

import schemathesis
from api_client import started_engine
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from logosim.service.app import create_app
from logosim.service.config import ServiceSettings

KEY = "fuzz-key"
EXAMPLES = 40  # per operation


def test_no_generated_request_gets_a_5xx(api_store):
    root, _ = api_store
    config = ServiceSettings(store=root, keys=KEY, rate_per_minute=600_000, rate_burst=100_000)
    app = create_app(config, engine=started_engine(config))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: dict[str, set[int]] = {}

    def fuzzer(operation):
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            headers = {"X-API-Key": KEY} if case.path.startswith("/v1/") else None
            response = case.call(headers=headers)
            seen.setdefault(operation.label, set()).add(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                assert "reason" in response.json(), response.text

        return fuzz

    for result in schema.get_all_operations():
        fuzzer(result.ok())()
    assert len(seen) == 6, seen
    assert any(code == 200 for code in seen["GET /healthz"])
