"""The subject directory: employee id -> pseudonym, and contact preferences for escalation.

Both the employee id and each contact field are sealed with AES-GCM (see ``DirectoryCipher``).
Contact details are held only for the escalation purpose: withdrawing it or erasure deletes
them, and they leave this service only through :func:`release_contact`, which is audited.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import Session

from services.consent.clock import as_utc, utcnow
from services.consent.consents import repository as consents_repo
from services.consent.consents.models import GRANTED
from services.consent.deps import ConsentContext
from services.consent.directory import repository as repo
from services.consent.directory.models import ContactDetail
from services.consent.directory.schemas import ContactPreferences
from shared import audit
from shared.auth import Role
from shared.errors import ConsentRequired, NotFound
from shared.events.consent import Purpose

EMPLOYEE_ID_FIELD = "employee_id"


def enter_subject(session: Session, ctx: ConsentContext, employee_id: str) -> str:
    """The subject's pseudonym, with its directory entry created if missing and locked."""
    subject = ctx.pseudonym(employee_id)
    sealed = ctx.cipher.seal(subject, EMPLOYEE_ID_FIELD, employee_id)
    ctx.hold_write_lock(session)
    repo.lock_subject(session, subject, sealed, ctx.cipher.key_id, utcnow())
    return subject


def store_contact(session: Session, ctx: ConsentContext, subject: str, prefs: ContactPreferences) -> None:
    """Replace the subject's contact preferences (each field sealed on its own)."""
    repo.delete_contact(session, subject)
    now = utcnow()
    repo.add_contact(
        session,
        [
            ContactDetail(
                pseudonym=subject,
                field=field,
                ciphertext=ctx.cipher.seal(subject, field, str(value)),
                key_id=ctx.cipher.key_id,
                updated_at=now,
            )
            for field, value in prefs.model_dump(exclude_none=True).items()
        ],
    )


def read_contact(session: Session, ctx: ConsentContext, subject: str) -> dict[str, str]:
    return {d.field: ctx.cipher.open(subject, d.field, d.ciphertext) for d in repo.contact_of(session, subject)}


def directory_export(session: Session, ctx: ConsentContext, subject: str) -> dict[str, Any]:
    """What the directory holds about the subject, opened, for their own export."""
    entry = repo.get_directory(session, subject)
    if entry is None:
        return {}
    return {
        "pseudonym": subject,
        "employee_id": ctx.cipher.open(subject, EMPLOYEE_ID_FIELD, entry.employee_id),
        "created_at": as_utc(entry.created_at).isoformat(),
        "contact": read_contact(session, ctx, subject),
    }


def release_contact(
    session: Session, pseudonym: str, counsellor_sub: str, case_id: UUID | str, *, ctx: ConsentContext
) -> dict[str, str]:
    """A confirmed case's counsellor obtains the subject's chosen contact details.

    Only while the escalation consent is granted; the release is written to the hash-chained
    audit log (counsellor by pseudonym, the case id in the action) in the caller's transaction,
    so a release that is not committed is not logged and vice versa. The escalation service asks
    for it over NATS request/reply (``services.consent.contact``); there is no HTTP route to it.
    """
    return release_contact_to(session, pseudonym, ctx.pseudonym(counsellor_sub), case_id, ctx=ctx)


def release_contact_to(
    session: Session, pseudonym: str, counsellor: str, case_id: UUID | str, *, ctx: ConsentContext
) -> dict[str, str]:
    """:func:`release_contact` for a counsellor already named by pseudonym (the escalation
    service's request, ``rpc.consent.contact.v1``: counsellors' ids never travel on the bus)."""
    case = str(UUID(str(case_id)))  # a UUID or ValueError: never free text in the audit log
    consent = consents_repo.get_consent(session, pseudonym, Purpose.escalation.value)
    if consent is None or consent.state != GRANTED:
        raise ConsentRequired(Purpose.escalation.value)
    details = read_contact(session, ctx, pseudonym)
    if not details:
        raise NotFound("The subject has given no contact details.")
    audit.append(
        session,
        actor=counsellor,
        actor_role=Role.counsellor.value,
        subject=pseudonym,
        action=f"contact.released:{case}",
        purpose=Purpose.escalation.value,
    )
    return details
