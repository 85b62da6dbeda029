"""Schema-driven fuzzing of every service's API (schemathesis) against the running services.

Every operation gets a bounded number of generated requests, valid ones and (where it has
parameters or a body) invalid ones, with a bearer token whose subject holds every role, so routes
are exercised beyond their 403. No response may be a 5xx or stray from the OpenAPI document:
status codes, media types and bodies (errors are problem+json; the document is completed in
shared/openapi.py).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode

from shared.auth import Role
from shared.settings import SERVICES

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = 25
# Operations each service has at least (a document that lost its routes must not pass).
MIN_OPERATIONS = {"consent": 15, "checkin": 10, "recommender": 20, "aggregator": 10, "escalation": 15}
# Of which need a bearer token (all but health, readiness and the public policy/instrument/JWKS
# reads and the signed HRIS webhooks).
MIN_SECURED = {"consent": 14, "checkin": 18, "recommender": 16, "aggregator": 13, "escalation": 22}


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # schemathesis internals
@pytest.mark.parametrize("name", SERVICES)
def test_every_service_api_conforms_to_its_schema(platform, name):
    schema = schemathesis.openapi.from_url(f"{platform.services[name].url}/openapi.json")
    headers = platform.auth("E-fuzz", *(role.value for role in Role))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= MIN_OPERATIONS[name]

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def exercise(case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                exercise()
            except Unsatisfiable:
                # No invalid request exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters")


@pytest.mark.parametrize("name", SERVICES)
def test_every_document_declares_bearer_auth_and_problem_json_errors(platform, name):
    doc = platform.services[name].client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    secured = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code, response in responses.items():
                if code[0] in "45":
                    assert set(response["content"]) == {"application/problem+json"}, (path, method, code)
            if operation.get("security") == [{"bearer": []}]:
                secured += 1
                assert {"401", "403"} <= responses.keys(), (path, method)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= responses.keys(), (path, method)
            if method in ("post", "put", "patch", "delete"):
                assert "Retry-After" in responses["429"]["headers"], (path, method)
    assert secured >= MIN_SECURED[name]
    if "/v1/subscriptions/{subscription_id}" in doc["paths"]:  # the webhook admin routes
        answers = doc["paths"]["/v1/subscriptions/{subscription_id}"]["get"]["responses"]
        assert {"401", "403", "404", "422"} <= answers.keys()


def test_docs_can_be_switched_off(tmp_path):
    from fastapi.testclient import TestClient

    from services.recommender.app import create_app
    from services.recommender.config import RecommenderSettings
    from shared.settings import PlatformSettings

    platform = PlatformSettings(mode="embedded", data_dir=tmp_path, api_docs=False)
    app = create_app(RecommenderSettings(platform=platform, database_url=f"sqlite:///{tmp_path}/r.db"))
    client = TestClient(app)  # no lifespan: only the routes are asked for
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 404
