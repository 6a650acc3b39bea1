"""Schemathesis against the service's OpenAPI document: requests generated from it, valid and
invalid, to every documented operation, a bounded number each, without a token, with the read
token and with the write token; not one may make the service fail (5xx). The one 5xx the service means to give, 503 while the
online store or the champion is missing, cannot happen here: both are up."""

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from ml_assets.serving.app import create_app

CASES = 25  # per operation and mode
WRITE = {"Authorization": "Bearer fuzz-token"}
READ = {"Authorization": "Bearer fuzz-read-token"}


def test_no_generated_request_makes_the_service_fail(make_service):
    service = make_service(token="fuzz-token", read_token="fuzz-read-token", max_batch=50)
    service.start()  # the ASGI transport does not run the lifespan
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(service))
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=CASES, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def fuzz(case) -> None:
                for headers in (None, READ, WRITE):
                    response = case.call(headers=headers)
                    statuses.setdefault(operation.label, set()).add(response.status_code)
                    case.validate_response(response, checks=[not_a_server_error], headers=headers)

            try:
                fuzz()
            except Unsatisfiable:  # an operation without inputs has no invalid request
                assert mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET", operation.label

    assert len(operations) >= 10
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses
    assert 422 in statuses["POST /v1/predict"], statuses
    assert {200, 401, 403} <= statuses["POST /v1/events"], statuses
    assert 401 in statuses["POST /v2/models/{model_name}/infer"], statuses
