"""De-identified contributions to the aggregator: the one producer mechanism every producer uses.

Check-in (WHO-5, mood, work-pattern features), escalation (SLA hours) and the recommender
(engagement counters) each build a :class:`~shared.contributions.producer.Producer` over three
tables of their own database (``tables.ContributionTables``):

* the org-unit history of every subject HRIS places (``hris.subject.>``): a contribution names the
  unit in force on the Monday of its ISO week;
* the org tree (``hris.org.unit_changed.v1``): each unit's parent, for the tiny-unit roll-up;
* contributions held back (``contribution.aggregate.recorded.v1`` / ``.retracted.v1``), released by
  a periodic task in one shuffled batch through the outbox with no trace headers.

Tiny units (issue 11.6): when a held contribution is released, the producer counts the members of
each unit on that week's Monday from the assignments it holds (a unit's members include those of
its sub-units). A unit with fewer than ``k`` members (the platform's ``k_anonymity``) contributes
under its nearest ancestor with at least ``k``; with no such ancestor the contribution is dropped.
So no input to the aggregator names a group small enough to single anyone out (``rollup.py``;
test: ``tests/privacy/test_tiny_units.py``).
"""
