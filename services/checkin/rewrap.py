"""``python -m services.checkin.rewrap``: kept for old runbooks; use ``kinwell keys rewrap --service checkin``.

Re-seals every encrypted column of the check-in database under the current keys (see
``shared.keyrotation`` and docs/operations.md). Safe to run again.
"""

from __future__ import annotations

import sys

from shared.cli import main as kinwell


def main(argv: list[str] | None = None) -> int:
    return kinwell(["keys", "rewrap", "--service", "checkin", *(argv or [])])


if __name__ == "__main__":
    sys.exit(main())
