"""How a confirmed case's holder reaches the employee: the request's own details, or consent's.

Asked only when a counsellor who holds the case confirms it. A support request may carry contact
details itself (sealed in this service under the employee's data key; the read is audited here);
otherwise the consent service's directory releases them over ``rpc.consent.contact.v1`` and
audits the release there. Either way the employee sees the access in ``GET /v1/me/access-log``.
Nothing is kept: the details are shown once, in the answer to ``confirm``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session

from services.escalation.cases import repository as repo
from services.escalation.cases import service
from services.escalation.cases.models import Case
from services.escalation.deps import EscalationContext
from shared.errors import ServiceUnavailable
from shared.events.escalation import ContactReply, ContactRequest

CONTACT_SUBJECT = "rpc.consent.contact.v1"


def given_with_request(session: Session, ctx: EscalationContext, case: Case) -> dict[str, str] | None:
    for row in reversed(repo.history(session, case.id)):
        if row.action == "contact_given":
            text = service.open_text(session, ctx, case, row)
            return json.loads(text) if text else None
    return None


async def from_directory(ctx: EscalationContext, case: Case, counsellor: str) -> ContactReply:
    rt: Any = ctx.runtime
    if rt is None or rt.bus.nc is None or not rt.bus.connected:
        raise ServiceUnavailable("The consent service cannot be reached; try again.", headers={"Retry-After": "2"})
    req = ContactRequest(
        pseudonym=case.pseudonym,
        counsellor=counsellor,
        case_id=uuid.UUID(case.id),
        basis=case.basis,  # type: ignore[arg-type]
    )
    try:
        msg = await rt.bus.nc.request(
            CONTACT_SUBJECT, req.model_dump_json().encode(), timeout=ctx.settings.contact_timeout_seconds
        )
        reply = ContactReply.model_validate_json(msg.data)
    except Exception:  # noqa: BLE001 - timeout, no responders, a malformed answer: all "try again"
        raise ServiceUnavailable(
            "The consent service did not answer; try again.", headers={"Retry-After": "2"}
        ) from None
    if reply.outcome == "error":
        raise ServiceUnavailable("The consent service could not answer; try again.", headers={"Retry-After": "2"})
    return reply
