"""Check-in's contributions to the aggregator, through the platform's one producer mechanism.

``shared.contributions.Producer`` over check-in's own tables: the org unit history of each subject
(``hris.subject.>``), the org tree (``hris.org.>``) and the contributions held until the next
shuffled release. Check-ins and closed work-pattern weeks hold their contributions here; a
withdrawal of ``aggregate_insights`` retracts the week's token.
"""

from __future__ import annotations

from shared.contributions.producer import Producer

CONTRIBUTIONS = Producer(
    "checkin", assignments="org_assignment", pending="pending_contribution", org_units="checkin_org_unit"
)
