"""Learning paths for mental-health literacy, adapting to your progress and feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from services.recommender.deps import Ctx
from services.recommender.paths import repository as repo
from services.recommender.paths import service
from services.recommender.paths.schemas import PathList, PathRead, ProgressCreate
from services.recommender.profiles.schemas import UiLanguage
from shared.db import SessionDep
from shared.openapi import problems
from shared.subject import CurrentSubject, Subject, consented, gate_allows

router = APIRouter(tags=["learning paths"])
PathId = Annotated[str, Path(pattern=r"^[a-z0-9-]{1,64}$")]
Personalizing = Annotated[Subject, Depends(consented("personalization"))]


@router.get("/v1/me/paths", response_model=PathList, summary="Learning paths and your next step")
def list_paths(
    request: Request, session: SessionDep, ctx: Ctx, subject: CurrentSubject, lang: UiLanguage = "en"
) -> PathList:
    personal = bool(gate_allows(request, subject, "personalization"))
    progress = repo.progress_of(session, subject.pseudonym) if personal else []
    by_id = ctx.catalogue.snapshot(session).by_id
    return PathList(personalised=personal, items=[service.view(p, progress, by_id, lang) for p in service.paths()])


@router.post(
    "/v1/me/paths/{path_id}/progress",
    response_model=PathRead,
    summary="Record progress on a path",
    responses=problems(404, 409, 503),
)
def post_progress(
    session: SessionDep,
    ctx: Ctx,
    subject: Personalizing,
    path_id: PathId,
    body: ProgressCreate,
    lang: UiLanguage = "en",
) -> PathRead:
    """Mark a module completed or skipped, with optional feedback; ``too_hard`` or
    ``not_helpful`` makes the next step a gentler resource where the path has one. A module whose
    prerequisites are not completed answers 409."""
    service.record(session, subject.pseudonym, path_id, body)
    session.flush()
    progress = repo.progress_of(session, subject.pseudonym)
    return service.view(service.find(path_id), progress, ctx.catalogue.snapshot(session).by_id, lang)
