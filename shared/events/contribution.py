"""De-identified contributions to the aggregator (``contribution.<purpose>.<event>.v<N>``)."""

from __future__ import annotations
