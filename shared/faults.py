"""Test-only fault points: the process kills itself (SIGKILL) at a named point in the bus.

System tests arm one with ``KINWELL_TEST_FAULT=<point>[:<n>]`` in a real service process, to die
exactly where a crash hurts most, the ``n``-th time (default 1) the point is reached:

* ``outbox_before_publish``: outbox rows are committed, nothing of them published yet;
* ``consumer_before_ack``: a consumer's effect is committed, the message not acknowledged.

Refused in production mode: a service whose environment arms a fault there does not start
(:func:`refuse_in_production`, called when the app starts). Unarmed, a point is one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "KINWELL_TEST_FAULT"
POINTS = ("outbox_before_publish", "consumer_before_ack")


def _armed() -> tuple[str, int] | None:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    name, _, count = raw.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}: unknown fault point {name!r}; known: {', '.join(POINTS)}")
    return name, int(count or 1)


_ARMED = _armed()
_hits: dict[str, int] = {}


def refuse_in_production(mode: str) -> None:
    """Raise if a fault is armed in production mode (it is a test-only setting)."""
    if os.environ.get(ENV) and mode == "production":
        raise RuntimeError(f"{ENV} is a test-only setting and is refused in production mode")


def point(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed point and this is its ``n``-th hit."""
    if _ARMED is None or _ARMED[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _ARMED[1]:
        os.kill(os.getpid(), signal.SIGKILL)
