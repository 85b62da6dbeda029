"""The recommender over real NATS with the real consent and check-in services (one platform for
the package: consents are changed through consent's API, needs arrive from real check-ins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.consent.conftest import CONSENT_OVERRIDES, Platform, running_platform, wait_until

RECOMMENDER_OVERRIDES: dict[str, Any] = {"fairness_weekly_rho": 0.75, "min_group_size": 3}


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    overrides = {"consent": CONSENT_OVERRIDES, "recommender": RECOMMENDER_OVERRIDES}
    root = tmp_path_factory.mktemp("recommender-platform")
    with running_platform(root, ("consent", "checkin", "recommender"), overrides) as plat:
        yield plat


class Recommender:
    """What an employee, an admin or HR does with the recommender, through the real APIs."""

    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.svc = platform.services["recommender"]

    def set_consent(self, sub: str, purpose: str, granted: bool) -> None:
        client, auth = self.p.consent.client, self.p.auth(sub)
        if granted:
            version = next(p["version"] for p in client.get("/v1/policy").json()["purposes"] if p["purpose"] == purpose)
            r = client.put(f"/v1/me/consents/{purpose}", json={"policy_version": version}, headers=auth)
        else:
            r = client.delete(f"/v1/me/consents/{purpose}", headers=auth)
        assert r.status_code == 200, r.text
        gate = self.svc.runtime.gate
        wait_until(lambda: gate.allowed(self.p.pseudonym(sub), purpose) == granted)

    def get(self, path: str, sub: str, *roles: str, **params: Any) -> Any:
        return self.svc.client.get(path, params=params, headers=self.p.auth(sub, *roles))

    def recommendations(self, sub: str, **params: Any) -> dict[str, Any]:
        r = self.get("/v1/me/recommendations", sub, **params)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def rec(platform: Platform) -> Recommender:
    return Recommender(platform)
