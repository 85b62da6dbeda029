"""Who sees what: the organisation-wide view (hr_analyst), a manager's own subtree at the
managers' k, an employee's team view; everyone else 403.

A manager is matched to units by the reference the consent service puts on
``hris.org.manager_scope.v1``: the manager's pseudonym under ``manager_scope_key`` (not the platform
pseudonym key, which the aggregator does not hold), computed here from the token for the request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from services.aggregator.org import repository as org_repo
from services.aggregator.org import service as org
from shared.auth import CurrentPrincipal, Role
from shared.crypto import pseudonym
from shared.errors import Forbidden


@dataclass(frozen=True)
class View:
    """``units`` None means every unit; ``managers`` selects the managers' decisions (k=10)."""

    managers: bool
    roots: tuple[str, ...] | None

    def units(self, session: Session, day: date) -> set[str] | None:
        """The units this view covers in the tree as of ``day``."""
        if self.roots is None:
            return None
        return org.subtree(org.tree_on(session, day), list(self.roots))


def reporting_view(request: Request, principal: CurrentPrincipal) -> View:
    if Role.hr_analyst in principal.roles:
        return View(managers=False, roots=None)
    if Role.manager in principal.roles:
        platform = request.app.state.settings.platform
        ref = pseudonym(platform.secret("manager_scope_key"), platform.tenant, principal.sub)
        with Session(request.app.state.engine) as session:
            roots = org_repo.scope_of(session, ref)
        return View(managers=True, roots=tuple(sorted(roots)))
    raise Forbidden("reporting needs the hr_analyst or manager role")


ReportingView = Annotated[View, Depends(reporting_view)]
