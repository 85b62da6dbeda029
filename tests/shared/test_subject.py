"""shared.subject and the role guards of shared.auth: who is calling, each as one flat dependency.

In process (no services): the answers (401, 403 for the role, 503 while the gate is blind, 403
``consent-required``) and that every caller dependency is a single FastAPI dependency that still
authenticates a route before its body is read.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.utils import get_dependant
from fastapi.testclient import TestClient
from pydantic import BaseModel

from services.checkin.auth import CheckinConsented, Counsellor
from services.escalation.deps import Employee as EscalationEmployee
from shared.auth import (
    AdminPrincipal,
    AuthenticateBeforeBody,
    Principal,
    Role,
    TokenVerifier,
    body_routes_needing_principal,
    dev_token,
    limited_read,
    require_roles,
)
from shared.crypto import pseudonym
from shared.errors import install_error_handlers
from shared.settings import PlatformSettings
from shared.subject import CurrentSubject, Subject, consented, current_subject

SUB = "emp-flat-1"


class Gate:
    def __init__(self) -> None:
        self.synced, self.granted = True, {"personalization"}

    def allowed(self, _pseudonym: str, purpose: str) -> bool:
        return purpose in self.granted


class Body(BaseModel):
    n: int


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> PlatformSettings:
    return PlatformSettings(mode="embedded", data_dir=Path(tmp_path_factory.mktemp("subject")))


@pytest.fixture(scope="module")
def app(settings: PlatformSettings) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = TokenVerifier(settings)
    app.state.settings = SimpleNamespace(platform=settings)
    app.state.runtime = SimpleNamespace(gate=Gate(), settings=app.state.settings)
    router = APIRouter()

    @router.get("/me")
    async def me(subject: CurrentSubject) -> dict[str, Any]:
        return {"sub": subject.principal.sub, "pseudonym": subject.pseudonym}

    @router.get("/personal")
    async def personal(subject: Annotated[Subject, Depends(consented("personalization"))]) -> dict[str, Any]:
        return {"pseudonym": subject.pseudonym}

    @router.get("/audit")
    async def audit(subject: Annotated[Subject, Depends(consented("fairness_audit"))]) -> dict[str, Any]:
        return {"pseudonym": subject.pseudonym}

    @router.post("/admin")
    async def admin(principal: AdminPrincipal, body: Body) -> dict[str, Any]:
        return {"n": body.n}

    app.include_router(router)
    app.state.body_routes = body_routes_needing_principal([router])
    app.add_middleware(AuthenticateBeforeBody, routes=app.state.body_routes)
    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def token(settings: PlatformSettings, *roles: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(settings, SUB, roles)}"}


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def test_the_subject_is_the_verified_employee_and_their_pseudonym(client: TestClient, settings: PlatformSettings):
    answer = client.get("/me", headers=token(settings, Role.employee))
    assert answer.status_code == 200, answer.text
    key = settings.secret("pseudonym_key")
    assert answer.json() == {"sub": SUB, "pseudonym": pseudonym(key, settings.tenant, SUB)}


def test_no_token_is_401_and_another_role_is_403(client: TestClient, settings: PlatformSettings):
    for path in ("/me", "/personal"):
        assert problem(client.get(path), 401)["status"] == 401
        assert client.get(path).headers["www-authenticate"].startswith("Bearer")
        assert problem(client.get(path, headers=token(settings, Role.counsellor)), 403)["type"].endswith("/forbidden")


def test_consent_is_checked_after_the_role_and_fails_closed_while_blind(
    app: FastAPI, client: TestClient, settings: PlatformSettings
):
    employee = token(settings, Role.employee)
    assert client.get("/personal", headers=employee).status_code == 200
    refused = problem(client.get("/audit", headers=employee), 403)
    assert refused["type"].endswith("/consent-required") and refused["purpose"] == "fairness_audit"
    app.state.runtime.gate.synced = False
    try:
        assert problem(client.get("/personal", headers=employee), 503)["status"] == 503
        assert problem(client.get("/personal", headers=token(settings, Role.manager)), 403)["type"].endswith(
            "/forbidden"
        )
    finally:
        app.state.runtime.gate.synced = True


def test_a_route_with_a_body_authenticates_before_reading_it(
    app: FastAPI, client: TestClient, settings: PlatformSettings
):
    assert [methods for _, methods in app.state.body_routes] == [{"POST"}]
    assert problem(client.post("/admin", content=b"{not json"), 401)["status"] == 401
    admin = token(settings, Role.admin)
    assert problem(client.post("/admin", content=b"{not json", headers=admin), 422)["status"] == 422
    assert client.post("/admin", json={"n": 3}, headers=admin).json() == {"n": 3}


@pytest.mark.parametrize(
    "dependency",
    [
        require_roles(Role.employee),
        require_roles(Role.hr_analyst, Role.admin),
        current_subject,
        consented("personalization"),
        limited_read,
    ],
)
def test_each_caller_dependency_is_flat(dependency: Any):
    # FastAPI resolves every nested dependency anew per request: these take the request only.
    dependant = get_dependant(path="/x", call=dependency)
    assert dependant.dependencies == [] and dependant.request_param_name == "request"
    assert getattr(dependency, "__kinwell_authenticates__", False)


@pytest.mark.parametrize("alias", [CheckinConsented, Counsellor, EscalationEmployee])
def test_services_name_their_callers_through_shared_subject(alias: Any):
    (depends,) = alias.__metadata__
    assert alias.__origin__ is Subject
    dependant = get_dependant(path="/x", call=depends.dependency)
    assert dependant.dependencies == [] and getattr(depends.dependency, "__kinwell_authenticates__", False)


def test_principal_aliases_stay_principals():
    (depends,) = AdminPrincipal.__metadata__
    assert AdminPrincipal.__origin__ is Principal
    assert get_dependant(path="/x", call=depends.dependency).dependencies == []
