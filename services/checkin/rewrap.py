"""``python -m services.checkin.rewrap``: re-wrap every data key under the current master key.

Master key rotation: set the new key as ``KINWELL_MASTER_KEY`` with a new ``KINWELL_MASTER_KEY_ID``,
keep the old one in ``KINWELL_OLD_MASTER_KEYS='{"<old id>": "<old key>"}'``, restart the service
(it can read both), run this command, then drop the old key. Only the small wrapped data keys are
rewritten; the data sealed under them is untouched. Safe to run again (it skips current keys).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlmodel import Session

from services.checkin.config import CheckinSettings
from shared.datakeys import DataKeyStore, MasterKeys
from shared.db import make_engine, run_migrations


def rewrap(settings: CheckinSettings) -> int:
    """Re-wrap every data key of the service's database; returns how many were re-wrapped."""
    assert settings.database_url is not None
    run_migrations(settings.database_url, Path(__file__).parent / "migrations")
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with Session(engine) as session:
            return DataKeyStore(MasterKeys.from_settings(settings.platform)).rewrap_all(session)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.checkin.rewrap", description=__doc__)
    parser.parse_args(argv)
    settings = CheckinSettings()
    count = rewrap(settings)
    print(f"re-wrapped {count} data key(s) under master key {settings.platform.master_key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
