"""The release rules shared by the aggregator and the consent statistics (docs/aggregator.md).

``rules`` (k, the budget), ``noise`` (OpenDP measurements), ``suppression`` (minimum group size
and complementary suppression up the org tree), ``guard`` (no release differing from an
overlapping earlier one by fewer than k), ``ledger`` (the zCDP budget per unit and period) and
``audit`` (the exact rank test that proves no suppressed figure can be recovered).
"""
