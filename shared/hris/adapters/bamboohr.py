"""BambooHR webhooks -> Kinwell HRIS events.

Two payload shapes (https://documentation.bamboohr.com/docs/webhooks):

* field-based ("global" / ``employee_with_fields.*``): ``{"employees": [{"id", "action":
  "Created"|"Updated"|"Deleted", "timestamp", "changedFields": [...], "fields": {...}}]}``, where
  ``fields`` holds the posted fields under their English names or the aliases an admin chose
  (https://documentation.bamboohr.com/docs/field-based-webhooks);
* event-based (``employee.created|updated|deleted``): ``{"type", "timestamp", "data":
  {"companyId", "employeeId", "changedFields"}}`` with no values at all
  (https://documentation.bamboohr.com/docs/event-based-webhooks).

Only the fields named in :class:`BambooHrOptions` are read; names, e-mails, phone numbers, pay and
every other posted field are never looked at. "Reporting to" carries the manager's *name*, so the
manager comes from ``supervisorEId`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import Unprocessable
from shared.hris import normalise as norm
from shared.hris.schema import Employee, EmployeeCreated, EmployeeLeft, EmployeeUpdated

DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "employee_id": (),  # empty: BambooHR's own employee id; e.g. ("Employee #", "employeeNumber")
    "org_unit": ("Department", "department"),
    "role_family": ("Job Family", "jobFamily", "Job Title", "jobTitle"),
    "country": ("Country", "country"),
    "language": ("Preferred Language", "preferredLanguage", "language"),
    "manager_id": ("supervisorEId", "Supervisor EID"),
    "status": ("Status", "status"),
    "employment_status": ("Employment Status", "employmentHistoryStatus"),
    "termination_date": ("Termination Date", "terminationDate"),
}


@dataclass(frozen=True)
class BambooHrOptions:
    """Which posted fields (by English name or alias) feed which Kinwell attribute."""

    fields: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_FIELDS))

    def get(self, values: Mapping[str, Any], attribute: str) -> Any:
        for name in self.fields.get(attribute, ()):
            value = values.get(name)
            if value not in (None, ""):
                return value
        return None


def adapt_bamboohr(body: Any, options: BambooHrOptions | None = None) -> list[Any]:
    """Map a BambooHR webhook body (either shape) to Kinwell HRIS events."""
    opts = options or BambooHrOptions()
    if isinstance(body, dict) and isinstance(body.get("employees"), list):
        return [e for entry in body["employees"] for e in _field_based(entry, opts)]
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and isinstance(body.get("type"), str):
        return _event_based(body)
    raise Unprocessable("Not a BambooHR webhook payload.", code="unknown-payload")


def _field_based(entry: Any, opts: BambooHrOptions) -> list[Any]:
    if not isinstance(entry, dict):
        raise Unprocessable("A BambooHR employee entry is not an object.", code="unknown-payload")
    posted = entry.get("fields")
    values: Mapping[str, Any] = posted if isinstance(posted, dict) else {}
    custom_id = norm.ref_id(opts.get(values, "employee_id")) if opts.fields.get("employee_id") else None
    employee_id = custom_id or norm.ref_id(entry.get("id"))
    if employee_id is None:
        raise Unprocessable("A BambooHR employee entry has no usable id.", code="unknown-payload")
    action = str(entry.get("action", "")).lower()
    when = norm.to_date(entry.get("timestamp"))
    left_on = norm.to_date(opts.get(values, "termination_date"))
    status = str(opts.get(values, "status") or "").lower()
    employment = str(opts.get(values, "employment_status") or "").lower()
    if action == "deleted" or status == "inactive" or employment == "terminated":
        return [EmployeeLeft(type="employee.left", employee_id=employee_id, left_on=left_on or when)]
    if action not in ("created", "updated"):
        return []  # an action BambooHR may add later: nothing we know how to map
    employee = Employee(
        employee_id=employee_id,
        # BambooHR posts the department's name: its slug is the unit id (as in a snapshot import).
        org_unit=norm.slug(opts.get(values, "org_unit"), 64),
        role_family=norm.slug(opts.get(values, "role_family")),
        country=norm.country(opts.get(values, "country")),
        language=norm.language(opts.get(values, "language")),
        manager_id=norm.ref_id(opts.get(values, "manager_id")),
        effective_from=when,
    )
    if action == "created":
        return [EmployeeCreated(type="employee.created", employee=employee)]
    return [EmployeeUpdated(type="employee.updated", employee=employee)]


def _event_based(body: dict[str, Any]) -> list[Any]:
    kind = body["type"]
    employee_id = norm.ref_id(body["data"].get("employeeId"))
    if employee_id is None:
        raise Unprocessable("A BambooHR event has no usable employee id.", code="unknown-payload")
    when = norm.to_date(body.get("timestamp"))
    if kind == "employee.deleted":
        return [EmployeeLeft(type="employee.left", employee_id=employee_id, left_on=when)]
    if kind == "employee.created":
        # Event-based webhooks carry no values: the directory learns of the employee; the org unit
        # follows in a snapshot import or a field-based webhook.
        return [EmployeeCreated(type="employee.created", employee=Employee(employee_id=employee_id))]
    return []  # employee.updated names changed fields but carries no values to map
