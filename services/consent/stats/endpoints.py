"""HR's consent rates, per purpose and per org unit (hr_analyst)."""

from __future__ import annotations

from fastapi import APIRouter

from services.consent.deps import ContextDep
from services.consent.stats import service as stats
from services.consent.stats.schemas import ConsentRates, OrgUnitRatesRead
from shared.auth import HRAnalystPrincipal
from shared.db import SessionDep
from shared.openapi import AUTH, problems
from shared.pagination import PageQuery

router = APIRouter(prefix="/v1/stats", tags=["statistics"])


@router.get("/consent-rates", summary="Consent rates per purpose", responses=problems(*AUTH))
def consent_rates(_: HRAnalystPrincipal, session: SessionDep, ctx: ContextDep) -> ConsentRates:
    """Share of the tenant's subjects consenting to each purpose, from this ISO week's stored
    release (the first reading of a week releases it; later ones replay it): noised counts
    (OpenDP), every figure null and ``suppressed`` when the group is below k, or when it would
    differ from an earlier release by fewer than k people (docs/aggregator.md)."""
    return stats.consent_rates(session, ctx.release_rules)


@router.get("/consent-rates/org-units", summary="Consent rates per org unit", responses=problems(*AUTH))
def consent_rates_by_org_unit(
    _: HRAnalystPrincipal, session: SessionDep, ctx: ContextDep, page: PageQuery
) -> OrgUnitRatesRead:
    """Per active org unit (with its sub-units), the share of its employees consenting to each
    purpose, from this ISO week's stored release, under the shared release rules: below k,
    complementary suppression (no subtraction isolates fewer than k people), no release differing
    from an earlier one by fewer than k people, noised counts (docs/aggregator.md). By unit id,
    in pages (``next_cursor``)."""
    return stats.consent_rates_by_org_unit(session, ctx.release_rules, request=page)
