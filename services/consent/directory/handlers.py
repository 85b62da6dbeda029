"""Answers the escalation service's ``rpc.consent.contact.v1``: contact details for a confirmed case.

The escalation service asks only when a counsellor who holds a case confirms it. The release is
audited in this service's hash-chained log in the same transaction (the employee sees it in
``GET /v1/me/access-log``); without a current ``escalation`` consent nothing is released.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from services.consent.deps import ConsentContext
from services.consent.directory.service import release_contact_to
from shared.errors import ConsentRequired, NotFound
from shared.events.escalation import ContactReply, ContactRequest
from shared.topology import requests_to

log = logging.getLogger("kinwell.consent")


def _release(rt: Any, ctx: ConsentContext, req: ContactRequest) -> ContactReply:
    with Session(rt.engine) as session:
        try:
            details = release_contact_to(session, req.pseudonym, req.counsellor, req.case_id, ctx=ctx)
        except ConsentRequired:
            return ContactReply(outcome="consent_required")
        except NotFound:
            return ContactReply(outcome="none_given")
        session.commit()  # the audit entry: no release without it
    return ContactReply(outcome="released", contact=details)


def start_contact_responder(ctx: ConsentContext) -> Any:
    """An ``on_start`` hook subscribing (queue group: one replica answers) to the contact request."""

    async def on_start(rt: Any) -> None:
        async def handle(msg: Any) -> None:
            try:
                req = ContactRequest.model_validate_json(msg.data)
                reply = await asyncio.to_thread(_release, rt, ctx, req)
            except ValidationError:
                reply = ContactReply(outcome="error")
            except Exception as exc:  # noqa: BLE001 - answer, never leave the counsellor waiting
                log.warning("contact release failed", extra={"error_type": type(exc).__name__})
                reply = ContactReply(outcome="error")
            await msg.respond(reply.model_dump_json().encode())

        assert rt.bus.nc is not None
        for spec in requests_to("consent"):
            await rt.bus.nc.subscribe(spec.subject, queue="consent", cb=handle)

    return on_start
