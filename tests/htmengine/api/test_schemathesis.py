"""Property-based run of the API's own OpenAPI schema against the live service (schemathesis
strategies driven by hypothesis): generated requests to every operation, a few thousand in
all, not one 5xx answer, and every answer's status, content type and body as documented."""

from __future__ import annotations

import pytest
import schemathesis
from api_support import LiveEngine
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES_PER_OPERATION = 300


def test_no_server_errors(live: LiveEngine) -> None:
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13, [op.label for op in operations]  # 3 of the dashboard
    calls: dict[str, int] = {}

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=live.base_url, timeout=60)
            label = f"{case.method} {case.path}"
            calls[label] = calls.get(label, 0) + 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> "
                f"{response.status_code} {response.text[:500]}\n{live.log_tails(10)}")
            case.validate_response(response, checks=[
                not_a_server_error, status_code_conformance, content_type_conformance,
                response_schema_conformance])

        check()
    total = sum(calls.values())
    print(f"schemathesis: {total} requests, no 5xx, every answer as documented: {calls}")
    assert total >= 1000
