"""Schemathesis over the whole OpenAPI spec, in process, with auth on (admin key), rate limits raised and the
fake backends in their own KILN_HOME: no generated request may crash the server (500), and every answer keeps
to the spec (a documented status, the documented body schema and content type; errors in the schema of the
API document that owns the path).

Bounded for CI: FUZZ_EXAMPLES examples per operation, derandomized (the seed is pinned by Hypothesis'
derandomize), no example database, no shrinking. Run it longer by hand, with another seed each time:

    KILN_FUZZ_EXAMPLES=200 KILN_FUZZ_RANDOM=1 PYTHONPATH=$PWD .venv/bin/pytest tests/bentos/http/test_fuzz.py -q
"""

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")  # a dev dependency (pyproject's [dev] extra)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402  (comes with schemathesis)
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.bentos.fakes import fake_server  # noqa: E402

SPEC_CHECKS = [status_code_conformance, response_schema_conformance, content_type_conformance]

ADMIN_KEY = "fuzz-admin-key-0123456789abcdef"
FUZZ_EXAMPLES = int(os.environ.get("KILN_FUZZ_EXAMPLES", "10"))
RANDOM = os.environ.get("KILN_FUZZ_RANDOM") == "1"


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    server = fake_server(
        tmp_path_factory.mktemp("fuzz"), enable_auth=True, api_keys={"admin": ADMIN_KEY},
        rate_limit_generation="1000000/minute", rate_limit_status="1000000/minute", rate_limit_auth="1000000/minute",
    )
    yield server
    server.close()


def is_json(response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def problems(operation, admin_key: str, calls: list[int]) -> list[str]:
    """Run ``operation``'s generated cases; what crashed (500), answered a 5xx outside Kiln's JSON format, or
    broke the spec (the first such case of the operation: Hypothesis stops at it)."""
    seen: list[str] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, derandomize=not RANDOM, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        response = case.call(headers={"X-API-Key": admin_key})
        calls.append(response.status_code)
        honest = response.status_code < 500 or (response.status_code != 500 and is_json(response))
        if not honest:  # 503/504 are honest answers (an absent engine, a timeout) in Kiln's error format
            seen.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")
        case.validate_response(response, checks=SPEC_CHECKS)

    from schemathesis.core.failures import FailureGroup

    try:
        run()
    except FailureGroup as failure:  # the spec checks that failed, each with a curl line to reproduce it
        seen.append(f"{operation.method.upper()} {operation.path} breaks the spec: {str(failure)[:600]}")
    return seen


@pytest.mark.slow
def test_no_generated_request_crashes_the_server_or_breaks_the_spec(fuzzed_server):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_server.client.app)
    found, operations, calls = [], 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId", "").startswith("bentoml_"):
            continue  # BentoML answers its probes and /metrics before the API app (tested over HTTP)
        operations += 1
        found += problems(operation, ADMIN_KEY, calls)
    assert not found, "\n".join(found)
    assert operations >= 80 and len(calls) >= 4 * operations  # the whole spec, several cases each
