"""The aggregator beside a real check-in service on the test's own nats-server and databases.

Contributions come from real check-ins of employees whose consent is in the KV bucket (written as
the consent service writes it, with the check-in harness); org units, triggers and managers'
scopes are published as the consent service publishes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from services.aggregator.contributions.models import Cell
from services.aggregator.releases import tasks
from shared.crypto import pseudonym
from shared.events.hris import ManagerScopeChanged, OrgUnitChanged
from shared.release.rules import ReleaseRules
from tests.checkin.conftest import FAST, Harness
from tests.servicefixtures import RunningService, bearer

# Nearly noise-free rules, so system tests can assert exact decisions; the rules' behaviour under
# real noise is proved in tests/shared/test_release_rules.py.
QUIET = ReleaseRules(k=5, manager_k=10, rho_count=8.0, rho_sum=8.0, rho_cap=100.0)


@dataclass
class Stack:
    checkin: Harness
    aggregator: RunningService
    make_token: Callable[..., str]

    def as_role(self, sub: str, role: str) -> dict[str, str]:
        return bearer(self.make_token(sub, role))

    def org(self, units: dict[str, str | None]) -> None:
        for unit, parent in units.items():
            self.checkin.publish_as_consent(
                OrgUnitChanged(org_unit=unit, parent=parent, state="active", effective_from=date(2020, 1, 1))
            )

    def manager_of(self, sub: str, *units: str) -> None:
        self.checkin.publish_as_consent(
            ManagerScopeChanged(
                manager_ref=pseudonym(
                    self.checkin.platform.secret("manager_scope_key"), self.checkin.platform.tenant, sub
                ),
                org_units=list(units),
                effective_from=date(2020, 1, 1),
            )
        )

    def contributors(self, metric: str = "who5_index") -> int:
        with Session(self.aggregator.runtime.engine) as session:
            total = session.exec(select(func.sum(Cell.count)).where(Cell.metric == metric)).one()
        return int(total or 0)

    def release_now(self) -> int:
        """Run the scheduler's release job once (with the aggregator's own clock and settings)."""
        app = self.aggregator.app
        return tasks.release_job(self.aggregator.runtime, self.aggregator.settings, app.state.clock)

    def get(self, path: str, sub: str, role: str, **params: Any) -> Any:
        return self.aggregator.client.get(path, params=params, headers=self.as_role(sub, role))


@pytest.fixture
def stack(service_nats, start_service, platform_settings, token) -> Stack:
    checkin = Harness(service_nats, platform_settings, start_service("checkin", **FAST), token)
    # Releases run when the test says (release_now); a week closes at once (clock two weeks ahead).
    aggregator = start_service(
        "aggregator", release=QUIET, release_check_seconds=3600, clock_offset_days=14, grace_hours=0
    )
    return Stack(checkin, aggregator, token)
