"""Employee routes: one's own consents, their history and receipts.

Every route derives the subject from the bearer token; no route takes a subject id. Grants and
withdrawals go through the group-commit writer (``writer.py``); reads use their own session.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.consent.consents import service
from services.consent.consents.schemas import (
    Channel,
    ConsentGrant,
    ConsentRead,
    ConsentsRead,
    HistoryRead,
    ReceiptRead,
)
from services.consent.deps import ContextDep
from services.consent.policy.models import DEFAULT_LANGUAGE
from services.consent.writer import WriterDep
from shared.auth import EmployeePrincipal
from shared.db import SessionDep
from shared.events.consent import Purpose
from shared.openapi import AUTH, BODY, problems
from shared.pagination import PageQuery

router = APIRouter(prefix="/v1/me", tags=["my consents"])

CHANGE_PENDING = (
    "``change-pending``: recorded, but not yet confirmed in every service's consent check; it takes effect shortly"
)
Lang = Annotated[str, Query(pattern=r"^[a-z]{2}$", description="Language for titles and summaries.")]


@router.get("/consents", summary="My consents", responses=problems(*AUTH, 422))
def list_consents(
    principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, lang: Lang = DEFAULT_LANGUAGE
) -> ConsentsRead:
    """Every purpose with my current state: ``not_given`` (the default: consent is opt-in),
    ``granted``, ``withdrawn`` or ``lapsed`` (a new policy version changed its terms; ``lapse``
    says which version and what changed)."""
    return service.consents(session, ctx, principal.sub, lang)


@router.put(
    "/consents/{purpose}", summary="Give consent", responses=problems(*AUTH, *BODY, 409, 503, d503=CHANGE_PENDING)
)
async def grant_consent(
    purpose: Purpose, body: ConsentGrant, principal: EmployeePrincipal, ctx: ContextDep, writer: WriterDep
) -> ConsentRead:
    """Consent to ``purpose`` under the policy version I was shown (409 unless it is the current
    one), recording when, through which channel and in which language. With ``escalation`` I may
    give contact preferences, stored encrypted and released only to a counsellor on a confirmed
    case. Returns the new state with the id of its signed receipt."""
    # The change's event is sealed under the subject's event key: fetched (or created) here, on the
    # event loop, so that the writer's transaction finds it cached instead of waiting on the broker.
    await ctx.event_keys.get_or_create(ctx.pseudonym(principal.sub))
    return await writer.run(lambda session: service.grant(session, ctx, principal.sub, purpose, body))


@router.delete(
    "/consents/{purpose}", summary="Withdraw consent", responses=problems(*AUTH, 409, 422, 503, d503=CHANGE_PENDING)
)
async def withdraw_consent(
    purpose: Purpose,
    principal: EmployeePrincipal,
    ctx: ContextDep,
    writer: WriterDep,
    channel: Channel = Channel.web,
    lang: Annotated[str | None, Query(pattern=r"^[a-z]{2}$")] = None,
) -> ConsentRead:
    """Withdraw consent to ``purpose``: as easy as giving it (409 when there is no current
    consent). Withdrawing ``escalation`` deletes my contact details. The answer comes once every
    service's consent check denies (503 ``change-pending`` if that cannot be confirmed in time:
    the withdrawal is recorded and takes effect as soon as it can)."""
    # As for a grant (the key exists since then; a refused withdrawal creates none).
    await ctx.event_keys.get(ctx.pseudonym(principal.sub))
    return await writer.run(lambda session: service.withdraw(session, ctx, principal.sub, purpose, channel, lang))


@router.get("/consents/history", summary="My consent history", responses=problems(*AUTH))
def consent_history(principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, page: PageQuery) -> HistoryRead:
    """Every grant, withdrawal and lapse, oldest first, with receipt ids; in pages (``next_cursor``)."""
    return service.history(session, ctx, principal.sub, page)


@router.get("/receipts/{receipt_id}", summary="Download a consent receipt", responses=problems(*AUTH, 404, 422))
def get_receipt(receipt_id: UUID, principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep) -> ReceiptRead:
    """A signed consent receipt (compact JWS, ES256, Kantara consent-receipt fields) that anyone
    can verify against ``/.well-known/jwks.json``."""
    return service.receipt(session, ctx, principal.sub, receipt_id)
