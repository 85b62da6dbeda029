"""``adapt(vendor, body)``: a vendor's webhook body as Kinwell HRIS events.

``kinwell`` is the native format (:mod:`shared.hris.schema`); ``bamboohr`` and ``merge`` map those
vendors' payloads into it. Values an adapter cannot map are dropped, never guessed.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.errors import NotFound, Unprocessable
from shared.hris.adapters.bamboohr import BambooHrOptions, adapt_bamboohr
from shared.hris.adapters.merge import MergeOptions, adapt_merge
from shared.hris.schema import load_json, parse_hris, safe_errors

VENDORS = ("kinwell", "bamboohr", "merge")


def adapt(vendor: str, body: bytes | str | Any, *, options: BambooHrOptions | MergeOptions | None = None) -> list[Any]:
    """Kinwell HRIS events from a vendor's webhook body (bytes/str are parsed as JSON first).

    NotFound for an unknown vendor, BadRequest for a body that is not JSON, Unprocessable (422) for
    one that does not fit the vendor's shape (or, for ``kinwell``, an unknown event type).
    """
    if vendor not in VENDORS:
        raise NotFound("Unknown HRIS vendor.", code="unknown-vendor")
    data = load_json(body) if isinstance(body, bytes | str) else body
    if vendor == "kinwell":
        return parse_hris(data)
    try:
        if vendor == "bamboohr":
            return adapt_bamboohr(data, options if isinstance(options, BambooHrOptions) else None)
        return adapt_merge(data, options if isinstance(options, MergeOptions) else None)
    except ValidationError as exc:
        # A vendor value that survived normalisation but not the Kinwell format: the location only.
        raise Unprocessable("The vendor payload could not be mapped.", errors=safe_errors(exc)) from None


__all__ = ["VENDORS", "BambooHrOptions", "MergeOptions", "adapt", "adapt_bamboohr", "adapt_merge"]
