"""``GET /v1/me/recommendations``: your list, in your language, each with the reason shown."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import Session

from services.recommender.audits import service as audits
from services.recommender.columns import utcnow
from services.recommender.deps import Ctx, RecommenderContext
from services.recommender.profiles import service as profiles
from services.recommender.profiles.schemas import UiLanguage
from services.recommender.ranking import reasons
from services.recommender.ranking.schemas import RecommendationList
from services.recommender.ranking.service import rank
from shared.db import SessionDep, in_worker
from shared.language import preferred_tags
from shared.subject import CurrentSubject, Subject, gate_allows

router = APIRouter(tags=["recommendations"])


def negotiate(header: str | None) -> str | None:
    """The first language of ``Accept-Language`` (by quality) that the lists are written in."""
    languages = (tag[:2].lower() for tag in preferred_tags(header))
    return next((lang for lang in languages if lang in reasons.LANGUAGES), None)


@router.get("/v1/me/recommendations", response_model=RecommendationList, summary="Your recommendations")
async def get_recommendations(
    request: Request,
    session: SessionDep,
    ctx: Ctx,
    subject: CurrentSubject,
    lang: UiLanguage | None = None,
    limit: Annotated[int, Query(ge=3, le=20)] = 10,
) -> RecommendationList:
    """Personalised with the ``personalization`` consent (from what you told us in preferences
    and check-ins, and how you rated resources); otherwise the same starting list everyone gets.
    Language: ``lang``, else your preference, else ``Accept-Language``, else English; a resource
    not written in it says so. Professional help is near the top when your recent check-ins show
    moderate or worse needs, and the counsellor request is always in the list."""
    # One thread hop for the reads, the ranking and the commit. As a sync endpoint it took three:
    # FastAPI also validates a sync endpoint's return value in the thread pool.
    return await in_worker(session, _recommendations, request, session, ctx, subject, lang, limit)


def _recommendations(
    request: Request, session: Session, ctx: RecommenderContext, subject: Subject, lang: str | None, limit: int
) -> RecommendationList:
    snapshot = ctx.catalogue.snapshot(session)
    personal = gate_allows(request, subject, "personalization")
    signals = profiles.signals(session, subject.pseudonym, snapshot.by_id) if personal else None
    language = lang or (signals.language if signals else None) or negotiate(request.headers.get("accept-language"))
    language = language if language in reasons.LANGUAGES else "en"
    items, professional = rank(snapshot.index, signals, language, limit)
    if gate_allows(request, subject, "fairness_audit"):
        audits.note_exposure(session, subject.pseudonym, audits.iso_week(utcnow()), [i.kind for i in items])
    why = None if personal else ("consent-state-unavailable" if personal is None else "no-consent")
    return RecommendationList(
        personalised=signals is not None,
        why_not_personalised=why,
        language=language,
        professional_help_included=professional,
        items=items,
    )
