"""Consent rates for HR: per purpose, only for groups of at least k subjects.

The group is a set of pseudonyms (an org unit once HRIS data arrives); ``None`` is the whole
tenant. Group size counts subjects in the directory; below k, every figure is suppressed,
including the size itself.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session

from services.consent import repository as repo
from services.consent.schemas import ConsentRates, PurposeRate
from shared.events.consent import Purpose


def consent_rates(session: Session, group: Collection[str] | None, k: int) -> ConsentRates:
    size = repo.count_directory(session, group)
    if size < k:
        return ConsentRates(
            k=k,
            group_size=None,
            suppressed=True,
            purposes=[PurposeRate(purpose=p, rate=None, suppressed=True) for p in Purpose],
        )
    granted = repo.granted_counts(session, group)
    return ConsentRates(
        k=k,
        group_size=size,
        suppressed=False,
        purposes=[
            PurposeRate(purpose=p, rate=round(granted.get(p.value, 0) / size, 4), suppressed=False) for p in Purpose
        ],
    )
