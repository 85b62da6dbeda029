"""The check-in service's encrypted columns (``kinwell keys rewrap --service checkin``).

Only the wrapped data keys are re-sealed on rotation: the fields sealed under a subject's data key
name that data key, which does not change when the master key does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.crypto import Keyring
from shared.datakeys import DataKey, MasterKeys
from shared.keyrotation import SealedColumn, now_utc

_master = cache(MasterKeys.from_keyring)


def _wrapped(keyring: Keyring, row: Any) -> bytes | None:
    master = _master(keyring)
    if master.is_current(row):
        return None
    return master.wrap(master.unwrap(row), row.pseudonym, row.key_id)[1]


def _kek(keyring: Keyring) -> dict[str, Any]:
    return {"kek_id": keyring.current_id, "rewrapped_at": now_utc()}


SEALED_COLUMNS = [
    SealedColumn("checkin.data_key.wrapped", "master_key", DataKey, "wrapped", ("key_id",), _wrapped, _kek)
]
