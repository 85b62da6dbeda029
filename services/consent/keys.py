"""The consent service's encrypted columns (``kinwell keys rewrap --service consent``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.consent.deps import DirectoryCipher
from services.consent.directory.models import ContactDetail, DirectoryEntry
from services.consent.directory.service import EMPLOYEE_ID_FIELD
from shared.crypto import Keyring
from shared.keyrotation import SealedColumn

_cipher = cache(DirectoryCipher)  # one per keyring: the legacy keys are derived once


def _employee_id(keyring: Keyring, row: Any) -> bytes | None:
    return _cipher(keyring).reseal(row.pseudonym, EMPLOYEE_ID_FIELD, row.employee_id)


def _contact(keyring: Keyring, row: Any) -> bytes | None:
    return _cipher(keyring).reseal(row.pseudonym, row.field, row.ciphertext)


def _key_id(keyring: Keyring) -> dict[str, Any]:
    return {"key_id": keyring.current_id}


SEALED_COLUMNS = [
    SealedColumn(
        "consent.directory.employee_id",
        "master_key",
        DirectoryEntry,
        "employee_id",
        ("pseudonym",),
        _employee_id,
        _key_id,
    ),  # fmt: skip
    SealedColumn(
        "consent.contact_detail.ciphertext",
        "master_key",
        ContactDetail,
        "ciphertext",
        ("pseudonym", "field"),
        _contact,
        _key_id,
    ),  # fmt: skip
]
