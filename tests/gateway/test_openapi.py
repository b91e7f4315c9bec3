"""The OpenAPI document is generated from the handlers, so it lists every route with its parameters and the
error envelope for each documented error."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from gateway.app import ROUTES
from gateway.routes import metrics


def test_every_route_is_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    routed = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path))
        for handler in [*ROUTES, metrics.metrics]  # /metrics is routed where METRICS is on, as in this app
        if handler.include_in_schema is not False
        for path in handler.paths
        for method in handler.http_methods
    }
    assert documented == routed
    assert ("GET", "/v1/fine_tuning/jobs") in documented and ("POST", "/fine-tune") in documented


def test_parameters_and_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def names(path: str, method: str) -> set[str]:
        return {p["name"] for p in paths[path][method].get("parameters", [])}

    assert names("/v1/fine_tuning/jobs", "get") == {"after", "limit", "metadata"}
    assert names("/jobs", "get") == {"limit"}
    assert names("/v1/files", "get") == {"purpose", "after", "limit", "order"}
    assert names("/v1/fine_tuning/jobs/{job_id}/events", "get") == {"job_id", "after", "limit"}
    limit = next(p for p in paths["/v1/fine_tuning/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100 and limit["schema"]["minimum"] == 1
    body = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ChatCompletionRequest")
    upload = paths["/v1/files"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_every_error_response_is_the_envelope(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert set(document["components"]["schemas"]["ErrorEnvelope"]["properties"]) == {"error"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            errors = {status: spec for status, spec in operation["responses"].items() if int(status) >= 400}
            assert errors, f"{method} {path} documents no error"
            if path != "/health":
                assert {"400", "401", "429"} <= set(errors), f"{method} {path}"
            for status, spec in errors.items():
                schema = spec["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorEnvelope"), f"{method} {path} {status}"
