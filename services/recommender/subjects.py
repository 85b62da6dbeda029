"""What the recommender holds about one person, by purpose: forgetting, erasure and export.

Each sub-domain declares its own ``delete_of``/``export_of``; this module is the one list of them,
so a table with a subject column that is not covered here fails ``tests/recommender``'s coverage
test.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.recommender.audits import repository as audits_repo
from services.recommender.audits import service as audits
from services.recommender.engagement.models import CONTRIBUTIONS
from services.recommender.paths import repository as paths_repo
from services.recommender.paths import service as paths
from services.recommender.profiles import repository as profiles_repo
from services.recommender.profiles import service as profiles

# Purpose -> the sub-domains whose rows exist only for it.
FORGET = {
    "personalization": (profiles_repo.delete_of, paths_repo.delete_of),
    "fairness_audit": (audits_repo.delete_of,),
}


def forget(session: Session, pseudonym: str, purpose: str) -> int:
    """Delete the data held only for ``purpose`` (its consent ended)."""
    return sum(delete(session, pseudonym) for delete in FORGET.get(purpose, ()))


def erase(session: Session, pseudonym: str) -> int:
    removed = sum(forget(session, pseudonym, purpose) for purpose in FORGET)
    return removed + CONTRIBUTIONS.erase(session, pseudonym)  # the org-unit history


def export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {
        "profile": profiles.export_of(session, pseudonym),
        "path_progress": paths.export_of(session, pseudonym),
        "fairness_audit": audits.export_of(session, pseudonym),
        "org_assignments": CONTRIBUTIONS.export(session, pseudonym),
    }
