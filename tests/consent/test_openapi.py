"""Schema-driven fuzzing of the consent API (schemathesis) against the running service.

Every operation gets a bounded number of generated requests, valid ones and (where it has
parameters or a body) invalid ones, with a bearer token whose subject is an employee who also
holds admin and hr_analyst, so those routes are exercised beyond their 403. No response may be a
5xx or stray from the OpenAPI document: status codes, media types and bodies (errors are
problem+json, declared on each route).
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

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = 25


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # schemathesis internals
def test_consent_api_conforms_to_its_schema(platform):
    schema = schemathesis.openapi.from_url(f"{platform.consent.url}/openapi.json")
    headers = platform.auth("E-fuzz", "employee", "admin", "hr_analyst")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

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
