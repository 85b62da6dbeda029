"""The Kinwell HRIS JSON format: what an HRIS (or a vendor adapter) tells the consent service.

A webhook body is one event object or ``{"events": [...]}`` (at most 1,000). Every object forbids
unknown fields, so names, e-mails or notes cannot ride along: an employee is an id and the few
attributes the platform uses. An unknown ``type`` is a 422. Created and updated are both upserts;
in an update a null or absent attribute means "not changed".
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.errors import BadRequest, Unprocessable
from shared.events.hris import (
    COUNTRY_PATTERN,
    LANGUAGE_PATTERN,
    ORG_UNIT_PATTERN,
    ROLE_FAMILY_PATTERN,
    Trigger,
)

# The HRIS's employee id, as the identity provider's ``sub`` carries it: printable ASCII, no spaces.
EmployeeId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
OrgUnitId = Annotated[str, Field(pattern=ORG_UNIT_PATTERN)]
MAX_EVENTS_PER_MESSAGE = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Employee(_Strict):
    """An employee's platform-relevant attributes (no name, no contact details)."""

    employee_id: EmployeeId
    org_unit: OrgUnitId | None = None
    role_family: str | None = Field(default=None, pattern=ROLE_FAMILY_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2")
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN, description="BCP 47, e.g. de or pt-BR")
    manager_id: EmployeeId | None = Field(default=None, description="Accepted, never republished.")
    effective_from: date | None = None


class OrgUnit(_Strict):
    org_unit_id: OrgUnitId
    parent_id: OrgUnitId | None = None
    name: str | None = Field(default=None, min_length=1, max_length=120, description="Never republished.")
    manager_id: EmployeeId | None = Field(
        default=None,
        description="The unit's manager: republished only as a keyed reference, to the aggregator, "
        "so the manager sees this unit's subtree (hris.org.manager_scope.v1).",
    )


class _Event(_Strict):
    occurred_at: datetime | None = None


class EmployeeCreated(_Event):
    type: Literal["employee.created"]
    employee: Employee


class EmployeeUpdated(_Event):
    type: Literal["employee.updated"]
    employee: Employee


class EmployeeLeft(_Event):
    type: Literal["employee.left"]
    employee_id: EmployeeId
    left_on: date | None = None


class OrgUnitCreated(_Event):
    type: Literal["org_unit.created"]
    org_unit: OrgUnit
    effective_from: date | None = None


class OrgUnitMoved(_Event):
    type: Literal["org_unit.moved"]
    org_unit_id: OrgUnitId
    parent_id: OrgUnitId | None = Field(description="The new parent; null makes it a root.")
    effective_from: date | None = None


class OrgUnitRenamed(_Event):
    type: Literal["org_unit.renamed"]
    org_unit_id: OrgUnitId
    name: str = Field(min_length=1, max_length=120)


class OrgUnitClosed(_Event):
    type: Literal["org_unit.closed"]
    org_unit_id: OrgUnitId
    closed_on: date | None = None


class TriggerAnnounced(Trigger, _Event):
    """A known trigger for the org units it touches (a deadline, a reorganisation, ...)."""

    type: Literal["trigger.announced"]


HrisEvent = Annotated[
    EmployeeCreated
    | EmployeeUpdated
    | EmployeeLeft
    | OrgUnitCreated
    | OrgUnitMoved
    | OrgUnitRenamed
    | OrgUnitClosed
    | TriggerAnnounced,
    Field(discriminator="type"),
]
HRIS_EVENT_TYPES = (
    "employee.created",
    "employee.updated",
    "employee.left",
    "org_unit.created",
    "org_unit.moved",
    "org_unit.renamed",
    "org_unit.closed",
    "trigger.announced",
)


class HrisBatch(_Strict):
    events: list[HrisEvent] = Field(min_length=1, max_length=MAX_EVENTS_PER_MESSAGE)


HRIS_EVENT: TypeAdapter[Any] = TypeAdapter(HrisEvent)
_BATCH_OR_ONE: TypeAdapter[Any] = TypeAdapter(HrisBatch | HrisEvent)


def safe_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Where and what kind of error, never the offending value (it may be personal data)."""
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type", "invalid")}
        for e in exc.errors(include_input=False, include_url=False)
    ][:50]


def load_json(body: bytes | str) -> Any:
    """Parse a JSON body; BadRequest (fixed detail) when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.", code="malformed-json") from None


def parse_hris(data: Any) -> list[Any]:
    """Validate a decoded Kinwell HRIS body into its events; Unprocessable (422) if it does not fit."""
    if isinstance(data, dict) and "events" not in data and data.get("type") not in HRIS_EVENT_TYPES:
        raise Unprocessable("Unknown HRIS event type.", code="unknown-event-type")
    try:
        parsed = _BATCH_OR_ONE.validate_python(data)
    except ValidationError as exc:
        raise Unprocessable("The HRIS event does not match the Kinwell format.", errors=safe_errors(exc)) from None
    return list(parsed.events) if isinstance(parsed, HrisBatch) else [parsed]
