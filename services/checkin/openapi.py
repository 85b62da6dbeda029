"""OpenAPI ``responses`` entries for the check-in service's problem+json answers, in its words
(the entries themselves, and everything the edge adds, come from ``shared.openapi``)."""

from __future__ import annotations

from typing import Any

from shared.openapi import problems as shared_problems

_WORDS = {
    "d409": "Conflicts with the check-in's state.",
    "d503": "Consent state is not available yet (the gate fails closed); retry shortly.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return shared_problems(*codes, **_WORDS)
