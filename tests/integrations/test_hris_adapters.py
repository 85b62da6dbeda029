"""Vendor adapters and the minimiser: BambooHR and Merge samples, and no personal data on the bus."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import NotFound, Unprocessable
from shared.events import parse_event
from shared.events.hris import OrgUnitChanged, PersonalizationProfile, SubjectAssigned, SubjectLeft, TriggerAnnounced
from shared.hris import (
    BambooHrOptions,
    Employee,
    EmployeeCreated,
    EmployeeLeft,
    EmployeeUpdated,
    MergeOptions,
    OrgUnitClosed,
    OrgUnitCreated,
    OrgUnitMoved,
    OrgUnitRenamed,
    adapt,
    parse_hris,
    to_platform_events,
)
from tests.integrations.hris_helpers import pseudonym_of

SAMPLES = Path(__file__).parent / "samples"
TODAY = date(2026, 3, 1)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def publish(events, consented=frozenset()):
    out = []
    for e in events:
        out.extend(to_platform_events(e, pseudonym_of, lambda p: p in consented, today=TODAY))
    for e in out:  # every one is a valid contract of the union
        assert parse_event(e.model_dump_json()) == e
    return out


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


def personal_strings(raw: bytes) -> set[str]:
    """Every string value in a vendor sample that is long enough to be meaningful."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and len(node) >= 5 and not _is_date(node):
            found.add(node)

    walk(json.loads(raw))
    return found


def test_bamboohr_field_based_sample():
    events = adapt("bamboohr", sample("bamboohr_field_based.json"))
    created, updated, left, deleted = events
    assert created == EmployeeCreated(
        type="employee.created", employee=Employee(employee_id="40123", effective_from=date(2026, 1, 31))
    )
    assert isinstance(updated, EmployeeUpdated)
    assert updated.employee == Employee(
        employee_id="40123",
        org_unit="customer-success",
        role_family="support-engineer",
        country="DE",
        manager_id="40001",  # from supervisorEId; "Reporting to" is a name and is never read
        effective_from=date(2026, 1, 31),
    )
    assert left == EmployeeLeft(type="employee.left", employee_id="40777", left_on=date(2026, 2, 28))
    assert deleted == EmployeeLeft(type="employee.left", employee_id="40888", left_on=date(2026, 2, 2))


def test_bamboohr_event_based_sample_and_custom_field_names():
    (left,) = adapt("bamboohr", sample("bamboohr_event_based.json"))
    assert left == EmployeeLeft(type="employee.left", employee_id="67890", left_on=date(2026, 1, 31))
    body = {"employees": [{"id": "9", "action": "Updated", "fields": {"Team": "Ops", "Emp No": "X-9", "Dept": "HR"}}]}
    options = BambooHrOptions(fields={"employee_id": ("Emp No",), "org_unit": ("Team",)})
    (event,) = adapt("bamboohr", body, options=options)
    assert event.employee.employee_id == "X-9" and event.employee.org_unit == "ops"


def test_merge_employee_changed_sample():
    (event,) = adapt("merge", sample("merge_employee_changed.json"))
    assert event == EmployeeUpdated(
        type="employee.updated",
        employee=Employee(
            employee_id="19202938",
            org_unit="249c9faa-3045-4a31-953b-8f22d3613301",
            role_family="software-engineer",
            country="US",
            manager_id="0048ea5b-911e-4dff-9364-92070dea62ff",
            effective_from=date(2026, 1, 6),
        ),
    )
    (by_merge_id,) = adapt("merge", sample("merge_employee_changed.json"), options=MergeOptions(employee_id="id"))
    assert by_merge_id.employee.employee_id == "0958cbc6-6040-430a-848e-aafacbadf4ae"


def test_merge_lifecycle_org_structure_and_ignored_events():
    changed = json.loads(sample("merge_employee_changed.json"))
    removed = {**changed, "hook": {**changed["hook"], "event": "Employee.removed"}}
    assert adapt("merge", removed) == [
        EmployeeLeft(type="employee.left", employee_id="19202938", left_on=date(2026, 1, 6))
    ]
    inactive = {**changed, "data": {**changed["data"], "employment_status": "INACTIVE"}}
    assert isinstance(adapt("merge", inactive)[0], EmployeeLeft)

    (team,) = adapt("merge", sample("merge_team_added.json"))
    assert isinstance(team, OrgUnitCreated) and team.org_unit.parent_id == "1b998423-db0a-4037-a4cf-f79c60cb67b3"
    group = {
        "hook": {"event": "Group.changed"},
        "data": {"id": "dep-7", "name": "Finance", "parent_group": None, "type": "DEPARTMENT"},
    }
    moved, renamed = adapt("merge", group)
    assert isinstance(moved, OrgUnitMoved) and moved.parent_id is None and isinstance(renamed, OrgUnitRenamed)
    cost_centre = {"hook": {"event": "Group.added"}, "data": {"id": "cc-1", "type": "COST_CENTER"}}
    assert adapt("merge", cost_centre) == []
    gone = {"hook": {"event": "Team.removed"}, "data": {"id": "dep-7"}}
    assert isinstance(adapt("merge", gone)[0], OrgUnitClosed)
    for ignored in ("LinkedAccount.synced", "Employment.changed", "TimeOff.added"):
        assert adapt("merge", {"hook": {"event": ignored}, "data": {}}) == []


@pytest.mark.parametrize(
    ("vendor", "body"),
    [
        ("merge", {"no": "hook"}),
        ("merge", {"hook": {"event": "Employee.changed"}, "data": {"first_name": "NoId"}}),
        ("bamboohr", {"employees": [{"action": "Updated"}]}),
        ("bamboohr", {"employees": ["nope"]}),
        ("bamboohr", [1, 2]),
        ("kinwell", {"type": "employee.promoted"}),
        ("kinwell", [1]),
    ],
)
def test_shapes_that_do_not_fit_are_422(vendor, body):
    with pytest.raises(Unprocessable):
        adapt(vendor, body)


def test_unknown_vendor():
    with pytest.raises(NotFound):
        adapt("workday", b"{}")


@pytest.mark.parametrize("name", ["bamboohr_field_based.json", "merge_employee_changed.json", "merge_team_added.json"])
def test_no_names_emails_or_raw_ids_reach_the_bus(name):
    raw = sample(name)
    vendor = name.split("_", 1)[0]
    everyone = {pseudonym_of(i) for i in ("40123", "40777", "40888", "19202938")}
    published = publish(adapt(vendor, raw), consented=everyone)
    assert published
    wire = "\n".join(e.model_dump_json() for e in published)
    leaked = {s for s in personal_strings(raw) if s in wire}
    # Only org unit ids may pass (they are the aggregation keys), and the unit's parent.
    allowed = {"249c9faa-3045-4a31-953b-8f22d3613301", "1b998423-db0a-4037-a4cf-f79c60cb67b3"}
    assert leaked <= allowed, leaked
    for needle in ("40123", "40777", "19202938", "Bryony", "Gregory", "@", "Lindqvist", "Platform Engineering"):
        assert needle not in wire


def test_personalization_profile_only_with_consent():
    (event,) = adapt("merge", sample("merge_employee_changed.json"))
    without = publish([event])
    assert [type(e) for e in without] == [SubjectAssigned]
    subject = pseudonym_of("19202938")
    with_consent = publish([event], consented={subject})
    profile = next(e for e in with_consent if isinstance(e, PersonalizationProfile))
    assert (profile.pseudonym, profile.role_family, profile.country, profile.language) == (
        subject,
        "software-engineer",
        "US",
        None,
    )
    assert profile.subject == "hris.personalization.profile.v1"


def test_org_and_trigger_events_keep_ids_dates_and_a_bounded_label():
    events = parse_hris(
        {
            "events": [
                {"type": "org_unit.moved", "org_unit_id": "ops", "parent_id": "acme", "effective_from": "2026-02-01"},
                {"type": "org_unit.renamed", "org_unit_id": "ops", "name": "Operations & Logistics"},
                {"type": "org_unit.closed", "org_unit_id": "legacy"},
                {
                    "type": "trigger.announced",
                    "trigger_id": "reorg-2026-q2",
                    "kind": "reorganisation",
                    "org_units": ["ops", "eng"],
                    "starts_on": "2026-04-01",
                    "ends_on": "2026-06-30",
                    "label": "Q2 reorganisation",
                },
            ]
        }
    )
    moved, closed, trigger = publish(events)
    assert moved == OrgUnitChanged(
        event_id=moved.event_id, org_unit="ops", parent="acme", state="active", effective_from=date(2026, 2, 1)
    )
    assert closed.state == "closed" and closed.effective_from == TODAY and closed.parent is None
    assert isinstance(trigger, TriggerAnnounced) and trigger.org_units == ["ops", "eng"]
    assert trigger.subject == "hris.trigger.announced.v1" and moved.subject == "hris.org.unit_changed.v1"
    with pytest.raises(Unprocessable):  # a label is a name, not a description
        parse_hris({**events_trigger(), "label": "x" * 81})
    with pytest.raises(Unprocessable):
        parse_hris({**events_trigger(), "ends_on": "2026-01-01"})


def events_trigger():
    return {
        "type": "trigger.announced",
        "trigger_id": "t",
        "kind": "deadline",
        "org_units": ["a"],
        "starts_on": "2026-04-01",
    }


def test_leaving_becomes_subject_left():
    (event,) = publish([EmployeeLeft(type="employee.left", employee_id="E-7")])
    assert event == SubjectLeft(event_id=event.event_id, pseudonym=pseudonym_of("E-7"), effective_from=TODAY)


employee_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=40)
names = st.text(alphabet=st.characters(categories=["L"]), min_size=6, max_size=30)


@settings(max_examples=200, deadline=None)
@given(employee_ids, names, st.sampled_from(["created", "updated", "left"]))
def test_any_employee_id_or_name_never_appears_in_platform_events(employee_id, name, kind):
    employee = {"employee_id": employee_id, "org_unit": "eng", "role_family": "nurse", "country": "FR"}
    if kind == "left":
        body = {"type": "employee.left", "employee_id": employee_id}
    else:
        body = {"type": f"employee.{kind}", "employee": employee}
    bamboo = {
        "employees": [{"id": "1", "action": "Updated", "fields": {"First Name": name, "Employee #": employee_id}}]
    }
    events = parse_hris(body) + adapt("bamboohr", bamboo)
    published = publish(events, consented={pseudonym_of(employee_id)})
    assert published
    values = [str(v) for e in published for k, v in e.model_dump(mode="json").items() if k != "type"]
    assert not any(employee_id in v or name in v for v in values)
