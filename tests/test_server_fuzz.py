"""A fuzz of the published OpenAPI schema (schemathesis, in-process ASGI): valid and invalid requests to every
operation; no answer may be a 5xx, and every error answer must be the JSON error body.

Driven with hypothesis directly (schemathesis' pytest plugin does not load under this pytest)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from cir.server import ServeConfig, create_app  # noqa: E402
from tests.server_helpers import scene_store, scene_store_dir  # noqa: E402,F401 - fixtures

EXAMPLES = 20  # per operation and mode


def errors_are_json(ctx, response, case):
    """Error answers carry {"error", "message"} as JSON."""
    if response.status_code >= 400:
        body = response.json()
        if not (isinstance(body, dict) and body.get("error") and body.get("message")):
            raise AssertionError(f"error answer without the JSON error body: {response.status_code} {response.text[:200]}")
    return None


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(scene_store, mode):  # noqa: F811
    app = create_app(ServeConfig(store=scene_store.root, max_upload_bytes=256 * 1024,
                                 allowed_hosts=("testserver",)), store=scene_store)  # schemathesis' in-process Host
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/search", "/search/json", "/parse", "/items/{item_id}"}
    statuses = {}
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call_and_validate(checks=[not_a_server_error, errors_are_json])
            statuses.setdefault(operation.label, set()).add(response.status_code)

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (no parameters): covered by the valid mode
            assert mode is GenerationMode.NEGATIVE and not operation.path_parameters and operation.method.upper() == "GET"
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
    assert statuses["POST /search"] and statuses["POST /search/json"], statuses
    if mode is GenerationMode.POSITIVE:
        assert statuses["GET /parse"] == {200}, statuses
