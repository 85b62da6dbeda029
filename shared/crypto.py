"""Keyed hashing for pseudonyms and per-period contribution tokens.

* A subject inside the platform is ``HMAC-SHA256(pseudonym key, tenant|employee id)``: stable, so
  services agree on it without asking anyone, and irreversible without the key. Only the consent
  service keeps the directory that maps a pseudonym back to an employee.
* A contribution to the aggregator carries ``HMAC-SHA256(period key, pseudonym|period)``: one
  person counts once per period, and tokens of two periods cannot be linked to each other.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, tenant: str, employee_id: str) -> str:
    """The subject's pseudonym (64 hex characters)."""
    return hmac.new(key, f"{tenant}|{employee_id}".encode(), hashlib.sha256).hexdigest()


def period_token(key: bytes, subject: str, period: str) -> str:
    """One token per subject and period (e.g. ISO week ``2026-W48``)."""
    return hmac.new(key, f"{subject}|{period}".encode(), hashlib.sha256).hexdigest()
