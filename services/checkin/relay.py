"""The check-in service's outbox relay: the shared pipelined relay, with a linger.

``shared.bus.outbox.OutboxRelay`` publishes a whole batch in outbox order on one connection and
counts the acknowledgements (it began here and moved to ``shared`` for every service). Every
commit wakes it; check-in ingest commits in bursts, so a moment's wait lets a burst go out as one
batch (one read, one delete) instead of many small ones.
"""

from __future__ import annotations

from shared.bus.outbox import ACK_TIMEOUT_S, OutboxRelay

LINGER_S = 0.02

__all__ = ["ACK_TIMEOUT_S", "LINGER_S", "PipelinedOutboxRelay"]


class PipelinedOutboxRelay(OutboxRelay):
    linger = LINGER_S
