"""HRIS routes: signed webhooks (no bearer token: the signature authenticates), snapshot import
(admin or integration token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.consent.deps import ContextDep
from services.consent.hris import service as hris
from services.consent.hris.schemas import HrisImported, HrisWebhookAccepted
from shared.auth import Principal, Role, require_roles
from shared.db import SessionDep
from shared.openapi import AUTH, BODY, problems

webhooks = APIRouter(tags=["hris"])
imports = APIRouter(prefix="/v1/hris", tags=["hris"])

ImportPrincipal = Annotated[Principal, Depends(require_roles(Role.admin, Role.integration))]


async def _raw_body(request: Request) -> bytes:
    """The exact bytes that were signed (a parsed and re-serialised body would not verify)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]
_SIGNED = problems(400, 401, 404, 413, 422)
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "See docs/integrations.md."}}},
    }
}


@webhooks.post(
    "/v1/webhooks/hris", summary="Receive an HRIS webhook (Kinwell format)", responses=_SIGNED, openapi_extra=_BODY_DOC
)
def receive_hris_webhook(request: Request, body: RawBody, session: SessionDep, ctx: ContextDep) -> HrisWebhookAccepted:
    """One Kinwell HRIS event or ``{"events": [...]}``, signed per Standard Webhooks
    (``webhook-id``, ``webhook-timestamp`` within 5 minutes, ``webhook-signature``). The webhook id
    is the idempotency key: a replay answers 200 with ``replayed: true`` and changes nothing."""
    return hris.receive_webhook(session, ctx, "kinwell", request.headers, body)


@webhooks.post(
    "/v1/webhooks/hris/{vendor}",
    summary="Receive an HRIS webhook (kinwell, bamboohr or merge shape)",
    responses=_SIGNED,
    openapi_extra=_BODY_DOC,
)
def receive_vendor_hris_webhook(
    vendor: str, request: Request, body: RawBody, session: SessionDep, ctx: ContextDep
) -> HrisWebhookAccepted:
    """A vendor's webhook body (``bamboohr``, ``merge``) mapped into Kinwell HRIS events, signed
    per Standard Webhooks like ``/v1/webhooks/hris`` (a signing relay re-signs vendor webhooks)."""
    return hris.receive_webhook(session, ctx, vendor, request.headers, body)


@imports.post(
    "/import",
    summary="Import a batch of an HRIS snapshot",
    responses=problems(*AUTH, *BODY),
    openapi_extra=_BODY_DOC,
)
def import_hris_snapshot(_: ImportPrincipal, body: RawBody, session: SessionDep, ctx: ContextDep) -> HrisImported:
    """Up to 1,000 events of a snapshot (``[...]``, ``{"events": [...]}`` or ``{"org_units": [...],
    "employees": [...]}``) in one transaction. Records equal to what is stored change nothing and
    publish nothing, so importing the same snapshot again is safe. ``kinwell hris import FILE``
    sends a file of any size as such batches."""
    return hris.import_batch(session, ctx, body)
