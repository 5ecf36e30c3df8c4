"""Property-based tests of the API from its own OpenAPI schema (schemathesis), against `starter.py serve`
on loopback with a worker: no generated request gets a 5xx, every answer matches the schema, and every
4xx body says what was wrong."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from stack.settings import Settings
from tests.api_server import Api

EXAMPLES = 10
"""Per operation (18 of them): under a minute here, with the dev server, worker and API starting."""


OPENAPI = create_app(Settings.from_env({})).openapi()
"""The schema the app publishes at /openapi.json, read from the app itself when the tests are collected."""
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_served_schema_is_the_one_tested(api: Api) -> None:
    assert httpx.get(f"{api.url}/openapi.json").json() == OPENAPI


@schemathesis.check
def refusal_says_why(ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]) -> bool | None:
    """A 4xx carries a `detail` that names what was wrong: a sentence, or FastAPI's field errors."""
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert detail, f"{response.status_code} without a detail: {response.text[:300]}"
        if isinstance(detail, list):
            assert all(e.get("loc") and e.get("msg") for e in detail), detail
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case[Any], api: Api) -> None:
    case.call_and_validate(
        base_url=api.url,
        headers=api.headers(),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            refusal_says_why,
        ],
        timeout=30,
    )
