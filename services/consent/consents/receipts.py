"""Consent receipts: Kantara Consent Receipt v1.1 fields, signed as compact ES256 JWS.

The subject is named by pseudonym (``piiPrincipalId``), never by employee id. Anyone can verify
a receipt against ``/.well-known/jwks.json`` with ``shared.auth.verify_receipt``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from services.consent.consents.schemas import Channel
from services.consent.deps import ConsentContext
from services.consent.policy.models import PolicyVersion
from shared.events.consent import ConsentState

RECEIPT_VERSION = "KI-CR-v1.1.0"
SPI_CATEGORY = "health"


def receipt_payload(
    ctx: ConsentContext,
    *,
    receipt_id: str,
    subject: str,
    policy: PolicyVersion,
    state: str,
    at: datetime,
    channel: str,
    language: str,
) -> dict[str, Any]:
    settings = ctx.settings
    return {
        # Kantara Consent Receipt Specification v1.1 (field names as specified)
        "version": RECEIPT_VERSION,
        "jurisdiction": settings.jurisdiction,
        "consentTimestamp": int(at.timestamp()),
        "collectionMethod": channel,
        "consentReceiptID": receipt_id,
        "language": language,
        "piiPrincipalId": subject,
        "piiControllers": [{"piiController": settings.controller_name, "contact": settings.controller_contact}],
        "policyUrl": ctx.url(f"/v1/policy/{policy.purpose}/versions"),
        "services": [
            {
                "service": "kinwell",
                "purposes": [
                    {
                        "purpose": policy.purpose,
                        "purposeCategory": [policy.purpose],
                        "consentType": "EXPLICIT",
                        "piiCategory": list(policy.data_categories),
                        "primaryPurpose": True,
                        "termination": f"P{policy.retention_days}D",
                        "recipients": list(policy.recipients),
                    }
                ],
            }
        ],
        "sensitive": True,
        "spiCat": [SPI_CATEGORY],
        # Kinwell extensions: what this receipt records.
        "tenant": ctx.tenant,
        "purpose": policy.purpose,
        "policyVersion": policy.version,
        "legalBasis": policy.legal_basis,
        "state": state,
        "timestamp": at.isoformat(),
    }


def sign_receipt(
    ctx: ConsentContext,
    *,
    subject: str,
    policy: PolicyVersion,
    state: ConsentState,
    at: datetime,
    channel: Channel,
    language: str,
) -> tuple[str, str]:
    """A new receipt id and its signed receipt (compact JWS)."""
    receipt_id = str(uuid4())
    payload = receipt_payload(
        ctx,
        receipt_id=receipt_id,
        subject=subject,
        policy=policy,
        state=state,
        at=at,
        channel=channel.value,
        language=language,
    )
    return receipt_id, ctx.signer.sign(payload)
