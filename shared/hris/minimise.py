"""Kinwell HRIS events -> the minimised, pseudonymised ``hris.*`` platform events.

What leaves the consent service, per consumer:

* check-in (``hris.subject.>``): subject pseudonym -> org unit, and leaving;
* aggregator (``hris.org.>``, ``hris.trigger.>``): org unit ids, parents and state; triggers with
  their kind, units, dates and a bounded label;
* recommender (``hris.personalization.>``): role family, country, language, only for subjects who
  consented to ``personalization``.

Never: employee ids (only pseudonyms), manager ids, unit names, anything else an HRIS sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from shared.events.base import Event
from shared.events.hris import OrgUnitChanged, PersonalizationProfile, SubjectAssigned, SubjectLeft, TriggerAnnounced
from shared.hris import schema as hris  # what an HRIS sends, told apart from the platform events above

PseudonymFn = Callable[[str], str]
ConsentFn = Callable[[str], bool]


def to_platform_events(
    hris_event: Any,
    pseudonym_fn: PseudonymFn,
    personalization_allowed: ConsentFn,
    *,
    today: date | None = None,
) -> list[Event]:
    """The platform events one HRIS event becomes (possibly none).

    ``pseudonym_fn(employee_id)`` gives the subject's pseudonym (``shared.crypto.pseudonym`` with
    the platform key and tenant); ``personalization_allowed(pseudonym)`` asks the consent state.
    A date the HRIS did not give is ``today`` (UTC).
    """
    day = today or datetime.now(UTC).date()
    match hris_event:
        case hris.EmployeeCreated(employee=employee) | hris.EmployeeUpdated(employee=employee):
            subject = pseudonym_fn(employee.employee_id)
            events: list[Event] = []
            if employee.org_unit is not None:
                effective = employee.effective_from or day
                events.append(SubjectAssigned(pseudonym=subject, org_unit=employee.org_unit, effective_from=effective))
            profile = {"role_family": employee.role_family, "country": employee.country, "language": employee.language}
            if any(v is not None for v in profile.values()) and personalization_allowed(subject):
                events.append(PersonalizationProfile(pseudonym=subject, **profile))
            return events
        case hris.EmployeeLeft(employee_id=employee_id, left_on=left_on):
            return [SubjectLeft(pseudonym=pseudonym_fn(employee_id), effective_from=left_on or day)]
        case hris.OrgUnitCreated(org_unit=unit, effective_from=effective):
            return [
                OrgUnitChanged(
                    org_unit=unit.org_unit_id, parent=unit.parent_id, state="active", effective_from=effective or day
                )
            ]
        case hris.OrgUnitMoved(org_unit_id=unit_id, parent_id=parent, effective_from=effective):
            return [OrgUnitChanged(org_unit=unit_id, parent=parent, state="active", effective_from=effective or day)]
        case hris.OrgUnitClosed(org_unit_id=unit_id, closed_on=closed_on):
            return [OrgUnitChanged(org_unit=unit_id, state="closed", effective_from=closed_on or day)]
        case hris.OrgUnitRenamed():
            return []  # names stay in the consent service
        case hris.TriggerAnnounced():
            return [
                TriggerAnnounced(
                    trigger_id=hris_event.trigger_id,
                    kind=hris_event.kind,
                    org_units=list(hris_event.org_units),
                    starts_on=hris_event.starts_on,
                    ends_on=hris_event.ends_on,
                    label=hris_event.label,
                )
            ]
    raise TypeError(f"not a Kinwell HRIS event: {type(hris_event).__name__}")
