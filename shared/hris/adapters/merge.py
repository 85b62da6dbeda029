"""Merge (merge.dev) HRIS webhooks -> Kinwell HRIS events.

A Merge "changed data" webhook is ``{"hook": {"id", "event", "target"}, "linked_account": {...},
"data": {<common model>}}`` with ``hook.event`` = ``<Model>.added|changed|removed``
(https://docs.merge.dev/basics/webhooks/merge-webhooks/). Mapped models:

* ``Employee`` (https://docs.merge.dev/hris/employees/): ``id``, ``remote_id``,
  ``employment_status`` (ACTIVE/PENDING/INACTIVE), ``termination_date``, ``team`` (a Team id, or
  the expanded object), ``work_location`` (a Location id, or expanded with ``country``),
  ``manager`` (an Employee id), ``employments`` (ids, or expanded with ``job_title``),
  ``remote_was_deleted``, ``modified_at``;
* ``Team`` (``id``, ``name``, ``parent_team``) and ``Group`` of type TEAM / DEPARTMENT /
  BUSINESS_UNIT (``id``, ``name``, ``parent_group``, ``type``), Merge's org structure.

Everything else, ``linked_account`` (end-user e-mail and organisation) included, is ignored; so
are other models and sync notifications, which answer 2xx with no events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.errors import Unprocessable
from shared.hris import normalise as norm
from shared.hris.schema import (
    Employee,
    EmployeeCreated,
    EmployeeLeft,
    EmployeeUpdated,
    OrgUnit,
    OrgUnitClosed,
    OrgUnitCreated,
    OrgUnitMoved,
    OrgUnitRenamed,
)

_ORG_GROUP_TYPES = {"TEAM", "DEPARTMENT", "BUSINESS_UNIT"}


@dataclass(frozen=True)
class MergeOptions:
    """``employee_id``: which Merge field is the id your identity provider uses as ``sub``."""

    employee_id: Literal["remote_id", "id", "employee_number"] = "remote_id"


def adapt_merge(body: Any, options: MergeOptions | None = None) -> list[Any]:
    """Map a Merge HRIS webhook body to Kinwell HRIS events."""
    opts = options or MergeOptions()
    hook = body.get("hook") if isinstance(body, dict) else None
    event = hook.get("event") if isinstance(hook, dict) else None
    if not isinstance(event, str) or "." not in event:
        raise Unprocessable("Not a Merge webhook payload.", code="unknown-payload")
    model, _, action = event.partition(".")
    data = body.get("data")
    if model not in ("Employee", "Team", "Group") or action not in ("added", "changed", "removed"):
        return []
    if not isinstance(data, dict):
        raise Unprocessable("A Merge webhook has no data object.", code="unknown-payload")
    if model == "Employee":
        return _employee(data, action, opts)
    if model == "Group" and str(data.get("type", "")).upper() not in _ORG_GROUP_TYPES:
        return []  # cost centres, pay groups ...: not org structure
    parent = data.get("parent_team") if model == "Team" else data.get("parent_group")
    return _org_unit(data, action, parent)


def _employee(data: dict[str, Any], action: str, opts: MergeOptions) -> list[Any]:
    employee_id = norm.ref_id(data.get(opts.employee_id))
    if employee_id is None:
        raise Unprocessable("A Merge employee has no usable id.", code="unknown-payload")
    when = norm.to_date(data.get("modified_at"))
    ended = norm.to_date(data.get("termination_date"))
    today = datetime.now(UTC).date()
    gone = action == "removed" or data.get("remote_was_deleted") is True
    if gone or data.get("employment_status") == "INACTIVE" or (ended is not None and ended <= today):
        return [EmployeeLeft(type="employee.left", employee_id=employee_id, left_on=ended or when)]
    location = data.get("work_location")
    employments = data.get("employments") or []
    first_employment = employments[0] if isinstance(employments, list) and employments else None
    employee = Employee(
        employee_id=employee_id,
        org_unit=norm.org_unit_id(data.get("team")),
        role_family=norm.slug(first_employment.get("job_title")) if isinstance(first_employment, dict) else None,
        country=norm.country(location.get("country")) if isinstance(location, dict) else None,
        manager_id=norm.ref_id(data.get("manager")),
        effective_from=when,
    )
    if action == "added":
        return [EmployeeCreated(type="employee.created", employee=employee)]
    return [EmployeeUpdated(type="employee.updated", employee=employee)]


def _org_unit(data: dict[str, Any], action: str, parent_ref: Any) -> list[Any]:
    unit = norm.org_unit_id(data.get("id"))
    if unit is None:
        raise Unprocessable("A Merge team has no usable id.", code="unknown-payload")
    when = norm.to_date(data.get("modified_at"))
    if action == "removed" or data.get("remote_was_deleted") is True:
        return [OrgUnitClosed(type="org_unit.closed", org_unit_id=unit, closed_on=when)]
    parent = norm.org_unit_id(parent_ref)
    name = data.get("name") if isinstance(data.get("name"), str) and data.get("name") else None
    if action == "added":
        return [
            OrgUnitCreated(
                type="org_unit.created",
                org_unit=OrgUnit(org_unit_id=unit, parent_id=parent, name=name[:120] if name else None),
                effective_from=when,
            )
        ]
    # "changed" says only what the unit is now: restate its place, and its name if it has one.
    events: list[Any] = [OrgUnitMoved(type="org_unit.moved", org_unit_id=unit, parent_id=parent, effective_from=when)]
    if name:
        events.append(OrgUnitRenamed(type="org_unit.renamed", org_unit_id=unit, name=name[:120]))
    return events
