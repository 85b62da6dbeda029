"""The escalation service's encrypted columns (``kinwell keys rewrap --service escalation``).

Only the wrapped data keys are re-sealed on rotation: case notes sealed under a subject's data key
name that data key, which does not change when the master key does. Webhook secrets are added for
every service holding ``webhook_key`` (``shared.keyrotation.sealed_columns``).
"""

from __future__ import annotations

from shared.keyrotation import DATA_KEYS

SEALED_COLUMNS = [DATA_KEYS]
