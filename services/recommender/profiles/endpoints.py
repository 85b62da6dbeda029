"""Your preferences, your interactions, and everything the recommender holds about you."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from services.recommender import subjects
from services.recommender.audits import repository as audits_repo
from services.recommender.columns import as_utc, utcnow
from services.recommender.deps import Ctx
from services.recommender.engagement import service as engagement
from services.recommender.paths import repository as paths_repo
from services.recommender.profiles import repository as repo
from services.recommender.profiles import service
from services.recommender.profiles.schemas import (
    AttributeRead,
    HrisRead,
    InteractionAccepted,
    InteractionCreate,
    InteractionRead,
    NeedsRead,
    PreferencesRead,
    PreferencesUpdate,
    ProfileRead,
    ProgressRead,
)
from shared.db import SessionDep
from shared.openapi import problems
from shared.subject import CurrentSubject, Subject, consented, gate_allows

router = APIRouter(tags=["profile"])
Personalizing = Annotated[Subject, Depends(consented("personalization"))]


@router.get("/v1/me/preferences", response_model=PreferencesRead, summary="Your preferences")
def get_preferences(session: SessionDep, subject: CurrentSubject) -> PreferencesRead:
    return service.preferences(session, subject.pseudonym)


@router.put(
    "/v1/me/preferences", response_model=PreferencesRead, summary="Set your preferences", responses=problems(503)
)
def put_preferences(session: SessionDep, subject: Personalizing, body: PreferencesUpdate) -> PreferencesRead:
    """Needs the ``personalization`` consent (403 names it; 503 while consent state is unknown)."""
    return service.set_preferences(session, subject.pseudonym, body)


@router.post(
    "/v1/me/interactions",
    status_code=202,
    response_model=InteractionAccepted,
    summary="Tell us how it went",
    responses=problems(404),
)
def post_interaction(
    request: Request, session: SessionDep, ctx: Ctx, subject: CurrentSubject, body: InteractionCreate
) -> InteractionAccepted:
    """viewed, completed, helpful, not_helpful or dismissed. Stored only with the
    ``personalization`` consent (``recorded: false`` says the interaction was not kept); dismissed
    and not-helpful resources stop coming back. With ``aggregate_insights``, a view or completion
    also counts, de-identified, in the programme's engagement figures (``engagement.service``)."""
    entry = ctx.catalogue.snapshot(session).by_id.get(body.resource_id)
    known = entry is not None
    if entry is not None:
        gate, period_key = request.app.state.runtime.gate, ctx.settings.platform.secret("period_key")
        today = utcnow().date()
        engagement.count(session, gate, period_key, subject.pseudonym, body.kind, entry.professional_help, today)
    if not gate_allows(request, subject, "personalization"):
        if not known:
            service.record_interaction(session, subject.pseudonym, body, known)  # 404, as with consent
        return InteractionAccepted(recorded=False)
    service.record_interaction(session, subject.pseudonym, body, known)
    return InteractionAccepted(recorded=True)


@router.get("/v1/me/profile", response_model=ProfileRead, summary="Everything the recommender holds about you")
def get_profile(request: Request, session: SessionDep, subject: CurrentSubject) -> ProfileRead:
    p = subject.pseudonym
    hris = repo.hris_profile(session, p)
    pref = repo.preference(session, p)
    return ProfileRead(
        personalization=bool(gate_allows(request, subject, "personalization")),
        preferences=service.preferences(session, p) if pref else None,
        needs=[NeedsRead(iso_week=n.iso_week, needs=n.needs) for n in repo.needs(session, p)],
        hris=HrisRead(role_family=hris.role_family, country=hris.country, language=hris.language) if hris else None,
        interactions=[
            InteractionRead(resource_id=i.resource_id, kind=i.kind, at=as_utc(i.at))  # type: ignore[arg-type]
            for i in repo.interactions(session, p)
        ],
        path_progress=[
            ProgressRead(
                path_id=r.path_id, module_id=r.module_id, status=r.status, feedback=r.feedback, at=as_utc(r.at)
            )
            for r in paths_repo.progress_of(session, p)
        ],
        declared_attributes=[AttributeRead(name=a.name, value=a.value) for a in audits_repo.attributes_of(session, p)],
    )


@router.delete("/v1/me/profile", status_code=204, summary="Reset everything the recommender holds about you")
def delete_profile(session: SessionDep, subject: CurrentSubject) -> Response:
    """Your consents stay as they are; recommendations start afresh."""
    subjects.erase(session, subject.pseudonym)
    return Response(status_code=204)
