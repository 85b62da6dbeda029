"""Public policy and receipt keys; admin management of policy versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from services.consent.deps import ContextDep
from services.consent.policy import service as policy
from services.consent.policy.models import DEFAULT_LANGUAGE
from services.consent.policy.schemas import (
    PolicyRead,
    PolicyVersionCreate,
    PolicyVersionPublished,
    PolicyVersionsPage,
    PolicyVersionsRead,
)
from shared.auth import AdminPrincipal
from shared.db import SessionDep
from shared.events.consent import Purpose
from shared.openapi import AUTH, BODY, problems
from shared.pagination import PageQuery, next_link

public = APIRouter(tags=["policy"])
admin = APIRouter(prefix="/v1/admin", tags=["admin"])

Lang = Annotated[str, Query(pattern=r"^[a-z]{2}$", description="Language (falls back to en).")]


@public.get("/v1/policy", summary="Current privacy policy", responses=problems(422))
def get_policy(session: SessionDep, ctx: ContextDep, lang: Lang = DEFAULT_LANGUAGE) -> PolicyRead:
    """Machine-readable policy: each purpose's current version with its description, data
    categories, recipients, retention and legal basis, in the requested language."""
    return policy.public_policy(session, ctx, lang)


@public.get("/v1/policy/{purpose}/versions", summary="Policy versions of a purpose", responses=problems(404, 422))
def get_policy_versions(
    purpose: Purpose, session: SessionDep, page: PageQuery, lang: Lang = DEFAULT_LANGUAGE
) -> PolicyVersionsPage:
    """Every version of one purpose, oldest first, with what each changed; in pages (``next_cursor``)."""
    return policy.versions(session, purpose, lang, page)


@public.get("/.well-known/jwks.json", summary="Consent receipt keys")
def receipt_jwks(ctx: ContextDep) -> dict[str, Any]:
    """The public keys (JWKS) that verify consent receipts."""
    return ctx.signer.public_jwks()


@admin.get("/purposes", summary="All purposes and versions", responses=problems(*AUTH, 422))
def list_purposes(
    _: AdminPrincipal,
    session: SessionDep,
    page: PageQuery,
    request: Request,
    response: Response,
    lang: Lang = DEFAULT_LANGUAGE,
) -> list[PolicyVersionsRead]:
    """Every purpose with its policy versions, by purpose then version, ``limit`` versions a
    page; the next page's URL is in the ``Link`` header (``rel="next"``)."""
    purposes, cursor = policy.all_versions(session, lang, page)
    response.headers.update(next_link(request.url, cursor))
    return purposes


@admin.post(
    "/purposes/{purpose}/versions",
    summary="Publish a policy version",
    status_code=status.HTTP_201_CREATED,
    responses=problems(*AUTH, *BODY),
)
def publish_policy_version(
    purpose: Purpose, body: PolicyVersionCreate, _: AdminPrincipal, session: SessionDep, ctx: ContextDep
) -> PolicyVersionPublished:
    """Publish the next version of a purpose's terms (texts in at least en, es and fr). A version
    that changes data categories, recipients, retention or legal basis, or is marked ``material``,
    lapses every consent to the purpose: gates deny until the employee consents again."""
    return policy.publish_version(session, ctx, purpose, body)
