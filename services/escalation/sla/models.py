"""Tables of the SLA figures: the shared contribution producer's (org units from HRIS, the org
tree, contributions held back), under escalation's own names."""

from __future__ import annotations

from shared.contributions.producer import Producer

CONTRIBUTIONS = Producer(
    "escalation",
    assignments="escalation_org_assignment",
    pending="escalation_pending_contribution",
    org_units="escalation_org_unit",
)
