"""Issue 18: every table with a subject column is covered by erasure and export, in all five services.

Two halves, over the real five-service platform (its own databases, SQLite or PostgreSQL):

* **the map**: every table of every service's migrated schema that has a column naming a person
  (``PERSON_COLUMNS``) is in ``COVERAGE``, which says how erasure reaches it and where the
  export carries it, or why not. A new table with a subject column fails here until someone says
  how it is erased and exported. A service that holds nothing about a person says so (an empty map).
* **the proof**: a subject uses the platform (consents, an HRIS import, a crisis check-in, a
  support request, recommender preferences and interactions); every table the map says is exported
  and that their use filled shows up in their export; every table the map says is erased gets a
  row about them (a synthetic one where their use made none); after the real erasure (through
  consent, every service acknowledging) no text column of any table of any service still holds
  their pseudonym, except where the map says it stays.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.settings import SERVICES
from tests.consent.conftest import Platform, new_sub, wait_until
from tests.consent.test_consent_flow import grant
from tests.consent.test_erasure import erasure_status, request_erasure

# Column names that hold a person's pseudonym (or a ref to a person, or a set of them).
PERSON_COLUMNS = frozenset(
    {"pseudonym", "subject", "actor", "assignee", "employee_id", "owner_hash", "manager_ref", "updated_by", "members"}
)
# Tables whose ``subject`` is a NATS subject, not a person (the payload is checked by the scan).
NATS_SUBJECT_TABLES = frozenset(
    {
        "outbox",
        "outbox_dead",
        "pending_contribution",
        "escalation_pending_contribution",
        "recommender_pending_contribution",
    }
)


@dataclass(frozen=True)
class Covered:
    """How erasure reaches a table (``erased``: the subject's rows go; else why they stay) and
    where the export carries it (a key path in the service's export; else why not)."""

    erased: bool | str
    exported: tuple[str, ...] | str


ERASED = True
AUDIT = Covered(
    "the access log itself: pseudonyms and codes only, hash-chained (deleting breaks it), read through "
    "GET /v1/me/access-log",
    "read through GET /v1/me/access-log, not the export",
)
WEBHOOKS = Covered(ERASED, "a delivery queued to an outside endpoint (a nudge, a page), not data held about them")

COVERAGE: dict[str, dict[str, Covered]] = {
    "consent": {
        "audit_log": AUDIT,
        "consent": Covered(ERASED, ("consents",)),
        "consent_history": Covered(ERASED, ("history",)),  # unlinked: proof of consent stays, pseudonym goes
        "consent_stats_membership": Covered(ERASED, "membership of released k-anonymous statistics"),
        "contact_detail": Covered(ERASED, ("directory",)),
        "directory": Covered(ERASED, ("directory",)),
        "erasure_request": Covered(ERASED, ("erasure_requests",)),  # the pseudonym goes on completion
        "hris_org_unit": Covered(
            "a manager's ref under manager_scope_key, which no pseudonym links to (replaced by the HRIS)",
            "a manager's scope, not data about the subject",
        ),
        "hris_subject": Covered(ERASED, ("hris",)),
    },
    "checkin": {
        "audit_log": AUDIT,
        "checkin": Covered(ERASED, ("checkins",)),
        "checkin_trend": Covered(ERASED, "derived from the check-ins, which are exported"),
        "data_key": Covered(ERASED, "the subject's wrapped data key"),
        "nudge_schedule": Covered(ERASED, ("nudge",)),
        "org_assignment": Covered(ERASED, ("org_assignments",)),
        "signal_day": Covered(ERASED, ("work_pattern_signals",)),
        "webhook_delivery": WEBHOOKS,
    },
    "recommender": {
        "audit_log": AUDIT,
        "declared_attribute": Covered(ERASED, ("fairness_audit", "declared_attributes")),
        "exposure_tally": Covered(ERASED, "weekly counts of what was shown, for the fairness audit"),
        "hris_profile": Covered(ERASED, ("profile", "hris")),
        "interaction": Covered(ERASED, ("profile", "interactions")),
        "need_signal": Covered(ERASED, ("profile", "needs")),
        "path_progress": Covered(ERASED, ("path_progress",)),
        "preference": Covered(ERASED, ("profile", "preferences")),
        "recommender_org_assignment": Covered(ERASED, ("org_assignments",)),
    },
    # The aggregator holds nothing keyed by a person: contributions carry per-period tokens it
    # cannot link to a pseudonym, releases only group figures (docs/aggregator.md).
    "aggregator": {
        "audit_log": AUDIT,
        "manager_scope": Covered(
            "a manager's ref under manager_scope_key, which no pseudonym links to (replaced by the HRIS)",
            "a manager's scope, not data about the subject",
        ),
        "webhook_delivery": Covered(
            "deliveries of group figures (rollups, insights): never about one person", "group figures only"
        ),
    },
    "escalation": {
        "audit_log": AUDIT,
        "case_event": Covered(ERASED, ("cases",)),  # each case's history
        "data_key": Covered(ERASED, "the subject's wrapped data key"),
        "escalation_case": Covered(ERASED, ("cases",)),
        "escalation_org_assignment": Covered(ERASED, ("org_assignments",)),
        "ladder_config": Covered("the admin who last edited the policy or rosters, by pseudonym", "an admin's edit"),
        "webhook_delivery": WEBHOOKS,
    },
}
# Rows the erasure itself makes (so nothing is seeded there); its pseudonym goes on completion.
MADE_BY_ERASURE = {("consent", "erasure_request")}
# Where the subject's pseudonym may stay after erasure (beside the map's kept tables).
KEPT = {(s, t) for s, tables in COVERAGE.items() for t, c in tables.items() if c.erased is not True}


def engine(platform: Platform, service: str) -> Engine:
    return platform.services[service].runtime.engine  # type: ignore[no-any-return]


def person_tables(eng: Engine) -> dict[str, set[str]]:
    """The migrated schema's tables with a person column, and those columns."""
    inspector = sa.inspect(eng)
    found: dict[str, set[str]] = {}
    for table in inspector.get_table_names():
        columns = {c["name"] for c in inspector.get_columns(table)} & PERSON_COLUMNS
        if table in NATS_SUBJECT_TABLES:
            columns.discard("subject")
        if columns:
            found[table] = columns
    return found


def test_every_table_with_a_subject_column_is_mapped_for_erasure_and_export(platform):
    assert set(COVERAGE) == set(SERVICES)  # every service says what it holds, even nothing
    for service in SERVICES:
        found = set(person_tables(engine(platform, service)))
        assert found == set(COVERAGE[service]), (service, "unmapped:", found - set(COVERAGE[service]),
                                                 "gone:", set(COVERAGE[service]) - found)  # fmt: skip


# --- the proof ---------------------------------------------------------------------------------

CRISIS = {"who5_1": 1, "who5_2": 1, "who5_3": 1, "who5_4": 1, "who5_5": 1, "mood": 1}


def use_the_platform(platform: Platform, sub: str) -> None:
    """What an employee's ordinary use leaves in the services."""
    for purpose in ("checkin", "personalization", "escalation"):
        grant(platform, sub, purpose)
    p = platform.pseudonym(sub)
    wait_until(lambda: all(platform.gates(p, "escalation").values()) and all(platform.gates(p, "checkin").values()))
    unit = f"ou-cov-{uuid.uuid4().hex[:8]}"
    events = [
        {"type": "org_unit.created", "org_unit": {"org_unit_id": unit}},
        {"type": "employee.created", "employee": {"employee_id": sub, "org_unit": unit, "country": "PT"}},
    ]
    r = platform.consent.client.post(
        "/v1/hris/import", json={"events": events}, headers=platform.auth("hr-bot", "integration")
    )
    assert r.status_code == 200, r.text
    services = platform.services
    body = {"answers": CRISIS, "talk_to_someone": True, "country": "PT"}
    assert services["checkin"].client.post("/v1/checkins", json=body, headers=platform.auth(sub)).status_code == 201
    r = services["escalation"].client.post("/v1/me/support-requests", json={}, headers=platform.auth(sub))
    assert r.status_code == 201, r.text
    recommender = services["recommender"].client
    prefs = {"language": "es", "topics": ["sleep"], "minutes_available": 10}
    assert recommender.put("/v1/me/preferences", json=prefs, headers=platform.auth(sub)).status_code == 200
    click = {"resource_id": "sleep-caffeine", "kind": "dismissed"}
    assert recommender.post("/v1/me/interactions", json=click, headers=platform.auth(sub)).status_code in (
        200,
        201,
        202,
    )
    # The consumers have caught up once the derived rows are there.
    for service, table in (
        ("checkin", "org_assignment"),
        ("escalation", "escalation_org_assignment"),
        ("recommender", "hris_profile"),
        ("recommender", "need_signal"),
    ):
        wait_until(lambda s=service, t=table: rows_about(engine(platform, s), t, "pseudonym", p), 20)
    wait_until(lambda: rows_about(engine(platform, "escalation"), "escalation_case", "pseudonym", p) >= 2, 20)


def rows_about(eng: Engine, table: str, column: str, pseudonym: str) -> int:
    t = sa.Table(table, sa.MetaData(), autoload_with=eng)
    if isinstance(t.c[column].type, sa.LargeBinary):
        return 0  # encrypted (the directory's employee id): its pseudonym column says whose it is
    with eng.connect() as conn:
        if column == "members":
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(sa.cast(t.c[column], sa.String).contains(pseudonym))
                ).scalar_one()
            )
        return int(conn.execute(sa.select(sa.func.count()).where(t.c[column] == pseudonym)).scalar_one())


def at_path(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def synthetic_value(column: sa.Column, pseudonym: str, person: set[str]) -> Any:
    if column.name in person:
        return json.dumps([pseudonym]) if column.name == "members" else pseudonym  # a JSON list in a text column
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.Float | sa.Numeric):
        return 0.0
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 1, 5)
    if isinstance(kind, sa.Time):
        return time(9, 0)
    if isinstance(kind, sa.JSON):
        return []
    if isinstance(kind, sa.LargeBinary):
        return b"x"
    length = getattr(kind, "length", None) or 32
    return uuid.uuid4().hex[: min(length, 32)]


def insert_synthetic(eng: Engine, table: str, person: set[str], pseudonym: str) -> None:
    """One row about ``pseudonym`` in ``table``, its parents (foreign keys) created first."""
    meta = sa.MetaData()
    t = sa.Table(table, meta, autoload_with=eng)
    with eng.begin() as conn:
        conn.execute(t.insert().values(**row_for(conn, eng, t, person, pseudonym)))


def row_for(conn: Any, eng: Engine, t: sa.Table, person: set[str], pseudonym: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in t.columns:
        if (
            column.primary_key
            and column.autoincrement in (True, "auto")
            and isinstance(column.type, sa.Integer)
            and len(t.primary_key.columns) == 1
        ):
            continue
        fks = list(column.foreign_keys)
        if fks and column.name not in person:  # a person's parent row (the directory's) is theirs already
            parent = sa.Table(fks[0].column.table.name, sa.MetaData(), autoload_with=eng)
            parent_row = row_for(
                conn, eng, parent, set() if parent.name != "escalation_case" else {"pseudonym"}, pseudonym
            )
            result = conn.execute(parent.insert().values(**parent_row))
            values[column.name] = parent_row.get(fks[0].column.name, (result.inserted_primary_key or [None])[0])
            continue
        if column.nullable and column.name not in person and not column.primary_key:
            continue
        values[column.name] = synthetic_value(column, pseudonym, person)
    return values


def text_columns_holding(eng: Engine, pseudonym: str) -> list[tuple[str, str]]:
    """Every (table, column) whose text still contains the pseudonym."""
    meta = sa.MetaData()
    meta.reflect(eng)
    found = []
    with eng.connect() as conn:
        for t in meta.sorted_tables:
            for column in t.columns:
                if not isinstance(column.type, sa.String | sa.Text | sa.JSON):
                    continue
                hit = sa.select(sa.func.count()).where(sa.cast(column, sa.Text).contains(pseudonym))
                if conn.execute(hit).scalar_one():
                    found.append((t.name, column.name))
    return found


def test_every_mapped_table_is_exported_and_erased(platform):
    sub = new_sub()
    p = platform.pseudonym(sub)
    use_the_platform(platform, sub)

    r = platform.consent.client.get("/v1/me/export", headers=platform.auth(sub))
    assert r.status_code == 200 and r.json()["complete"], r.text
    exported = r.json()["services"]
    exercised = set()
    for service, tables in COVERAGE.items():
        person = person_tables(engine(platform, service))
        for table, covered in tables.items():
            if isinstance(covered.exported, tuple) and any(
                rows_about(engine(platform, service), table, c, p) for c in person[table]
            ):
                exercised.add((service, table))
                assert at_path(exported.get(service), covered.exported), (service, table, covered.exported)
    # Their ordinary use reached these; the others are checked by the map and the erasure below.
    assert len(exercised) >= 10, sorted(exercised)

    seeded = []
    for service, tables in COVERAGE.items():
        person = person_tables(engine(platform, service))
        for table, covered in tables.items():
            if covered.erased is not True or (service, table) in MADE_BY_ERASURE:
                continue
            if not any(rows_about(engine(platform, service), table, c, p) for c in person[table]):
                insert_synthetic(engine(platform, service), table, person[table], p)
                seeded.append((service, table))
            assert any(rows_about(engine(platform, service), table, c, p) for c in person[table]), (service, table)

    request_id = request_erasure(platform, sub)
    wait_until(lambda: erasure_status(platform, sub, request_id)["status"] == "completed", 30)
    left = {
        (service, table, column)
        for service in SERVICES
        for table, column in text_columns_holding(engine(platform, service), p)
        if (service, table) not in KEPT
    }
    assert not left, (sorted(left), "seeded:", seeded)
