"""OpenAPI ``responses`` entries for the escalation service's problem+json answers, in its words
(the entries themselves, and everything the edge adds, come from ``shared.openapi``)."""

from __future__ import annotations

from typing import Any

from shared.openapi import problems as shared_problems

DESCRIPTIONS = {
    401: "Missing, invalid or expired bearer token.",
    403: "Your role does not allow this, or another counsellor holds the case.",
    404: "No such case.",
    409: "Not allowed in the case's state (closed, not acknowledged, wrong step).",
    422: "The body or a parameter failed validation.",
    503: "A service this needs did not answer; retry shortly.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return shared_problems(*statuses, **{f"d{status}": text for status, text in DESCRIPTIONS.items()})
