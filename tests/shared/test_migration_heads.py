"""Each service's migrations form one line (parallel branches adding revisions on the same parent
would leave two heads, and ``upgrade head`` would refuse to run); every service has the platform's
parked-outbox table."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize("service", SERVICES)
def test_one_head_and_the_outbox_dead_table(service: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(ROOT / service / "migrations"))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, script.get_heads()
    assert f"{service}_outbox_dead" in {rev.revision for rev in script.walk_revisions()}
