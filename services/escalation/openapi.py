"""OpenAPI ``responses`` entries for the escalation service's problem+json answers."""

from __future__ import annotations

from typing import Any

DESCRIPTIONS = {
    401: "Missing, invalid or expired bearer token.",
    403: "Your role does not allow this, or another counsellor holds the case.",
    404: "No such case.",
    409: "Not allowed in the case's state (closed, not acknowledged, wrong step).",
    422: "The body or a parameter failed validation.",
    503: "A service this needs did not answer; retry shortly.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": DESCRIPTIONS[status], "content": {"application/problem+json": {}}}
        for status in statuses
    }
