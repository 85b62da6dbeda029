"""The check-in service's encrypted columns (``kinwell keys rewrap --service checkin``).

Only the wrapped data keys are re-sealed on rotation: the fields sealed under a subject's data key
name that data key, which does not change when the master key does.
"""

from __future__ import annotations

from shared.keyrotation import DATA_KEYS

SEALED_COLUMNS = [DATA_KEYS]
