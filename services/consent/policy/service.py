"""Purposes and their policy versions: the public policy, and publishing a new version.

A version is never edited. Publishing one that changes a purpose's terms (data categories,
recipients, retention, legal basis) or that the admin marks ``material`` lapses every consent
given to the purpose: the gates deny at once and the employee is asked again, with the change
summary as the reason.
"""

from __future__ import annotations

from sqlmodel import Session

from services.consent.clock import as_utc, utcnow
from services.consent.consents import changes
from services.consent.deps import ConsentContext
from services.consent.policy import repository as repo
from services.consent.policy.models import DEFAULT_LANGUAGE, PolicyVersion
from services.consent.policy.schemas import (
    Controller,
    PolicyRead,
    PolicyVersionCreate,
    PolicyVersionPublished,
    PolicyVersionsPage,
    PolicyVersionsRead,
    PurposePolicy,
)
from shared.errors import NotFound
from shared.events.consent import Purpose
from shared.pagination import PageRequest, page

TERMS = ("data_categories", "recipients", "retention_days", "legal_basis")


def to_read(policy: PolicyVersion, lang: str, current: bool) -> PurposePolicy:
    used, text = policy.text(lang)
    return PurposePolicy(
        purpose=Purpose(policy.purpose),
        version=policy.version,
        current=current,
        language=used,
        languages=sorted(policy.texts),
        title=text["title"],
        description=text["description"],
        change_summary=text.get("change_summary"),
        data_categories=list(policy.data_categories),
        recipients=list(policy.recipients),
        retention_days=policy.retention_days,
        legal_basis=policy.legal_basis,  # type: ignore[arg-type]
        material=policy.material,
        published_at=as_utc(policy.published_at),
    )


def _order(policy: PolicyVersion) -> int:
    return list(Purpose).index(Purpose(policy.purpose))


def public_policy(session: Session, ctx: ConsentContext, lang: str) -> PolicyRead:
    settings = ctx.settings
    return PolicyRead(
        tenant=ctx.tenant,
        controller=Controller(
            name=settings.controller_name, contact=settings.controller_contact, jurisdiction=settings.jurisdiction
        ),
        language=lang,
        receipts_jwks_uri=ctx.url("/.well-known/jwks.json"),
        purposes=[to_read(p, lang, True) for p in sorted(repo.current_versions(session), key=_order)],
    )


def versions(session: Session, purpose: Purpose, lang: str, request: PageRequest) -> PolicyVersionsPage:
    """One page of the purpose's versions, oldest first."""
    after = request.after(int)
    row = repo.get_purpose(session, purpose.value)
    if row is None:
        raise NotFound("Unknown purpose.")
    found = repo.versions_of(session, purpose.value, after[0] if after else None, request.limit + 1)
    found, next_cursor = page(found, request, lambda p: (p.version,))
    return PolicyVersionsPage(
        purpose=purpose,
        versions=[to_read(p, lang, p.version == row.current_version) for p in found],
        next_cursor=next_cursor,
    )


def all_versions(session: Session, lang: str, request: PageRequest) -> tuple[list[PolicyVersionsRead], str | None]:
    """One page of every purpose's versions (``limit`` counts versions), grouped by purpose; a
    purpose whose versions span two pages appears on both."""
    after = request.after(str, int)
    found, cursor = page(
        repo.versions_after(session, (after[0], after[1]) if after else None, request.limit + 1),
        request,
        lambda item: (item[0].purpose, item[0].version),
    )
    grouped: dict[str, list[PurposePolicy]] = {}
    for policy, current in found:
        grouped.setdefault(policy.purpose, []).append(to_read(policy, lang, policy.version == current))
    return [PolicyVersionsRead(purpose=Purpose(name), versions=reads) for name, reads in grouped.items()], cursor


def publish_version(
    session: Session, ctx: ConsentContext, purpose: Purpose, body: PolicyVersionCreate
) -> PolicyVersionPublished:
    """Add the next version of ``purpose``; lapse its consents when the change is material."""
    now = utcnow()
    row = repo.lock_purpose(session, purpose.value, now)
    if row is None:
        raise NotFound("Unknown purpose.")
    previous = repo.get_version(session, purpose.value, row.current_version)
    terms = body.model_dump(include=set(TERMS), mode="json")
    changed = previous is None or any(getattr(previous, name) != terms[name] for name in TERMS)
    new = PolicyVersion(
        purpose=purpose.value,
        version=row.current_version + 1,
        texts={lang: text.model_dump(exclude_none=True) for lang, text in body.texts.by_language().items()},
        material=body.material or changed,
        published_at=now,
        **terms,
    )
    row.current_version, row.updated_at = new.version, now
    repo.save(session, new, row)
    lapsed = changes.lapse(session, ctx.event_keys, purpose, new.version, now) if new.material else 0
    session.flush()
    return PolicyVersionPublished(policy=to_read(new, DEFAULT_LANGUAGE, True), lapsed_consents=lapsed)
