"""De-identified engagement counters for the aggregator (issue 16), through ``shared.contributions``.

An interaction posted to ``/v1/me/interactions`` counts, under ``aggregate_insights`` (the purpose
of every contribution; ``personalization`` only decides whether the interaction itself is kept):

* ``viewed`` -> ``resource_viewed`` = 1, ``completed`` -> ``resource_completed`` = 1;
* either, of a professional-help resource (EAP, hotline, counsellor) -> also ``eap_referred`` = 1.

Each is a 0/1 figure of the subject's ISO week with the per-period token, once per subject, metric
and week however often they interact (the event id is derived from token and metric), naming only
the org unit HRIS placed them in (rolled up when tiny) and held back for the shuffled release.
Other kinds (helpful, not helpful, dismissed) count nothing.
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from services.recommender.engagement.models import CONTRIBUTIONS
from shared.contributions.producer import PURPOSE
from shared.events.checkin import ConsentView

METRIC_OF_INTERACTION = {  # kinds not named here count nothing
    "viewed": "resource_viewed",
    "completed": "resource_completed",
}


def count(
    session: Session,
    gate: ConsentView | None,
    period_key: bytes,
    pseudonym: str,
    kind: str,
    professional: bool,
    today: date,
) -> bool:
    """Hold the counters of one interaction; False when none may or can be contributed."""
    metric = METRIC_OF_INTERACTION.get(kind)
    if metric is None or gate is None or not gate.allowed(pseudonym, PURPOSE):
        return False
    metrics = [metric, "eap_referred"] if professional else [metric]
    return CONTRIBUTIONS.hold(session, period_key, pseudonym, today, [(m, 1.0) for m in metrics], once=True)
