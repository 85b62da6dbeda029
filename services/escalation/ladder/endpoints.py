"""Admin API of the ladder: the escalation policy and the on-call rosters (``admin`` role)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from services.escalation.deps import Ctx
from services.escalation.ladder import repository as repo
from services.escalation.ladder.schemas import Policy, PolicyRead, Rosters, RostersRead
from services.escalation.openapi import problems
from shared.auth import AdminPrincipal
from shared.db import SessionDep
from shared.errors import Conflict, Unprocessable
from shared.pagination import PageQuery
from shared.pagination import page as paged

router = APIRouter(prefix="/v1", tags=["ladder"])
ERRORS = problems(401, 403, 422)


def _rosters(session: SessionDep) -> tuple[int, Rosters]:
    row = repo.get_config(session, "rosters")
    return (row.version, Rosters.model_validate_json(row.document)) if row else (0, Rosters())


@router.get("/policies", summary="The escalation policy in force", responses=ERRORS)
def get_policy(admin: AdminPrincipal, ctx: Ctx, session: SessionDep) -> PolicyRead:
    row = repo.get_config(session, "policy")
    if row is None:
        return PolicyRead(version=0, policy=Policy.model_validate(ctx.settings.default_policy))
    return PolicyRead(version=row.version, policy=Policy.model_validate_json(row.document))


@router.put("/policies", summary="Replace the escalation policy", responses=ERRORS)
def put_policy(body: Policy, admin: AdminPrincipal, ctx: Ctx, session: SessionDep) -> PolicyRead:
    """Applies to cases opened from now on: a running case keeps the copy it opened with."""
    _, rosters = _rosters(session)
    known = {r.name for r in rosters.rosters}
    if any(t.roster and t.roster not in known for rule in body.rules for t in rule.targets):
        raise Unprocessable("A rule names a roster that does not exist; PUT /v1/rosters first.", code="unknown-roster")
    row = repo.put_config(session, "policy", body.model_dump_json(), datetime.now(UTC), ctx.pseudonym(admin.sub))
    return PolicyRead(version=row.version, policy=body)


@router.get("/rosters", summary="The on-call rosters", responses=problems(400, 401, 403, 409, 422))
def get_rosters(admin: AdminPrincipal, session: SessionDep, page: PageQuery) -> RostersRead:
    """By name, in pages (``next_cursor``) of one version: a cursor from before a PUT is 409
    (start again, so that no walk mixes two versions)."""
    version, rosters = _rosters(session)
    after = page.after(int, str)
    if after is not None and after[0] != version:
        raise Conflict("The rosters changed since the first page; read them again.", code="rosters-changed")
    ordered = sorted(rosters.rosters, key=lambda r: r.name)
    rows, next_cursor = paged(
        [r for r in ordered if after is None or r.name > after[1]], page, lambda r: (version, r.name)
    )
    return RostersRead(version=version, rosters=rows, next_cursor=next_cursor)


@router.put("/rosters", summary="Replace the on-call rosters", responses=ERRORS)
def put_rosters(body: Rosters, admin: AdminPrincipal, ctx: Ctx, session: SessionDep) -> RostersRead:
    """Shifts by day of week and local time, in each roster's own time zone. Running cases keep
    the rosters they opened with."""
    row = repo.put_config(session, "rosters", body.model_dump_json(), datetime.now(UTC), ctx.pseudonym(admin.sub))
    return RostersRead(version=row.version, rosters=body.rosters)
