"""What a consumer does with a failed delivery: wait, retry for as long as it takes, or dead-letter.

Four kinds, decided from the exception alone:

* ``not_yet``: the event cannot be judged yet (:class:`NotYet`, e.g. the consent projection is
  still loading). Redelivered after a short delay; never counted, never dead-lettered.
* ``infrastructure``: the database or NATS is unavailable (connection errors, timeouts, a locked
  SQLite file). Nothing is wrong with the event, so it is retried with capped exponential backoff
  for as long as the outage lasts (hours if need be) and never dead-lettered.
* ``deterministic``: the event can never be applied (a contract violation, a handler's domain
  error: a :class:`~shared.errors.ProblemError`). Dead-lettered at once: retrying cannot help.
* ``unexpected``: anything else (a bug, a constraint race). Retried a bounded number of times,
  counted by the consumer, then dead-lettered.

The server is told ``max_deliver=-1``: only this code ends a message, so JetStream can never drop
one that was not dead-lettered first. Backoff delays come from tenacity's wait strategies (the one
retry library), applied to the delivery count.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import tenacity
from pydantic import ValidationError

Kind = Literal["not_yet", "infrastructure", "deterministic", "unexpected"]


class NotYet(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a handler when the event cannot be judged yet; the consumer redelivers it later
    without counting the delivery toward the dead-letter limit."""


def _infrastructure_types() -> tuple[type[BaseException], ...]:
    import nats.errors
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.OperationalError,  # connection refused or lost, database locked, server gone
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,  # connection pool exhausted
        sqlalchemy.exc.DisconnectionError,
        nats.errors.TimeoutError,
        nats.errors.ConnectionClosedError,
        nats.errors.NoServersError,
        nats.errors.StaleConnectionError,
        nats.errors.OutboundBufferLimitError,
        asyncio.TimeoutError,
        TimeoutError,
        ConnectionError,
    )


_INFRA: tuple[type[BaseException], ...] | None = None


def classify(exc: BaseException) -> Kind:
    """The kind of failure ``exc`` is (see the module docstring)."""
    global _INFRA
    if _INFRA is None:
        _INFRA = _infrastructure_types()
    from sqlalchemy.exc import DBAPIError

    from shared.errors import ProblemError

    if isinstance(exc, NotYet):
        return "not_yet"
    if isinstance(exc, _INFRA):
        return "infrastructure"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "infrastructure"  # a DBAPI error that dropped the connection: a disconnect
    if isinstance(exc, ValidationError | ProblemError):
        return "deterministic"
    return "unexpected"


def retry_delay(attempt: int, *, initial: float = 0.5, cap: float = 60.0) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential from ``initial``, capped at
    ``cap``, with up to ``initial`` of jitter so that a fleet does not retry in lockstep."""
    wait = tenacity.wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial)
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    return float(min(cap, wait(state)))
