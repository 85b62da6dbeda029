"""Tables of the engagement counters: the shared contribution producer's (org units from HRIS,
the org tree, counters held back), under the recommender's own names."""

from __future__ import annotations

from shared.contributions.producer import Producer

CONTRIBUTIONS = Producer(
    "recommender",
    assignments="recommender_org_assignment",
    pending="recommender_pending_contribution",
    org_units="recommender_org_unit",
)
