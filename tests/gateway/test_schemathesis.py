"""Property-based bad input: schemathesis generates requests from the platform's own OpenAPI document
against the app (engine faked, so hundreds of cases stay fast): no 5xx, and every error in the envelope."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from engines.core.settings import Settings
from gateway.app import ROUTES, create_app
from tests.gateway.conftest import BASE

MAX_EXAMPLES = 100
OPERATIONS = sorted(
    (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path))
    for handler in ROUTES
    if handler.include_in_schema is not False
    for path in handler.paths
    for method in handler.http_methods
)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors_and_errors_in_envelope(method: str, path: str, engine, settings: Settings, services) -> None:
    app = create_app(settings, engine, services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings_for_cases
    def check(case: schemathesis.Case) -> None:
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = BASE  # get past the model look-up to the deeper validation
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"], response.text

    check()


settings_for_cases = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
