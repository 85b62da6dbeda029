"""shared.auth: every JWT attack is a 401 problem over HTTP; roles, JWKS, dev tokens and receipts."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from jose import jws, jwt
from pydantic import SecretStr

import shared.auth as auth
from shared.auth import (
    AdminPrincipal,
    CurrentPrincipal,
    Principal,
    ReceiptInvalid,
    ReceiptSigner,
    Role,
    TokenVerifier,
    dev_token,
    require_roles,
    verify_receipt,
)
from shared.errors import ServiceUnavailable, Unauthorized, install_error_handlers
from shared.settings import PlatformSettings

ISSUER = "https://idp.example.test/"
AUDIENCE = "kinwell"
SUB = "emp-7f3a"
STRONG = "k" * 24 + "9Qz!x7Lm"  # 32 characters, not a placeholder
DROP = object()  # a claim value meaning "leave this claim out"


# --- keys and token forging ---------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_jwk(key: Any, kid: str, **extra: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    if isinstance(key, rsa.RSAPrivateKey):
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "kid": kid, "n": b64(n), "e": b64(numbers.e.to_bytes(3, "big")), **extra}
    size = (key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
    x, y = numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big")
    return {"kty": "EC", "crv": crv, "kid": kid, "x": b64(x), "y": b64(y), **extra}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa-1": rsa.generate_private_key(65537, 2048),
        "rsa-2": rsa.generate_private_key(65537, 2048),
        "rsa-foreign": rsa.generate_private_key(65537, 2048),
        "rsa-weak": rsa.generate_private_key(65537, 1024),  # noqa: S505 - the verifier must refuse it
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "ec-2": ec.generate_private_key(ec.SECP256R1()),
        "ec-384": ec.generate_private_key(ec.SECP384R1()),
    }


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUB,
        "roles": ["employee"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "tok-1",
    }
    # Times given as Rel(seconds) are resolved now, not when the module was imported: a long
    # suite would otherwise age a "120 s in the future" token into the leeway.
    base.update({k: (now + v.seconds if isinstance(v, Rel) else v) for k, v in overrides.items()})
    return {k: v for k, v in base.items() if v is not DROP}


@dataclass(frozen=True)
class Rel:
    seconds: int


def forge(header: dict[str, Any], payload: dict[str, Any] | bytes, sign: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand, so that nothing refuses to produce a malicious one."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def hmac_signer(secret: bytes, digest: str = "sha256") -> Callable[[bytes], bytes]:
    return lambda message: hmac.new(secret, message, digest).digest()


def with_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


def flip_signature_char(token: str) -> str:
    # A character in the middle: the last one may only carry padding bits that decoding drops.
    head, signature = token.rsplit(".", 1)
    i = len(signature) // 2
    return f"{head}.{signature[:i]}{'A' if signature[i] != 'A' else 'B'}{signature[i + 1 :]}"


# --- settings and the tiny app ------------------------------------------------------------------


def embedded(data_dir: Path, **kw: Any) -> PlatformSettings:
    return PlatformSettings(mode="embedded", data_dir=data_dir, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **kw)


def production(data_dir: Path, algorithms: list[str], jwks: dict[str, Any] | None, **kw: Any) -> PlatformSettings:
    return PlatformSettings(
        mode="production",
        data_dir=data_dir,
        pseudonym_key=STRONG,
        period_key=STRONG,
        master_key=STRONG,
        event_key_kek=STRONG + "e",
        audit_key=STRONG + "a",
        receipt_signing_key=pem(ec.generate_private_key(ec.SECP256R1())),
        dev_token_issuer=False,
        jwt_algorithms=algorithms,
        jwks_json=json.dumps(jwks) if jwks is not None else None,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        **kw,
    )


@pytest.fixture(scope="module")
def dev_settings(tmp_path_factory: pytest.TempPathFactory) -> PlatformSettings:
    return embedded(tmp_path_factory.mktemp("auth"))


@pytest.fixture(scope="module")
def secret(dev_settings: PlatformSettings) -> bytes:
    return dev_settings.secret("dev_jwt_secret")


def make_client(verifier: TokenVerifier | None) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    if verifier is not None:
        app.state.verifier = verifier

    @app.get("/me")
    def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": principal.sub, "roles": sorted(principal.roles), "jti": principal.token_id}

    @app.get("/admin")
    def admin(principal: AdminPrincipal) -> dict[str, Any]:
        return {"sub": principal.sub}

    @app.get("/care")
    def care(
        principal: Annotated[Principal, Depends(require_roles(Role.counsellor, Role.hr_analyst))],
    ) -> dict[str, Any]:
        return {"sub": principal.sub}

    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(dev_settings: PlatformSettings) -> TestClient:
    return make_client(TokenVerifier(dev_settings))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, token: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    if token:
        assert token not in response.text
        assert all(part not in response.text for part in token.split(".") if len(part) > 8)
        assert SUB not in response.text


# --- every attack on the embedded (HS256) verifier is a 401 -------------------------------------

Forger = Callable[[bytes, dict[str, Any]], str]


def _hs(header: dict[str, Any] | None = None, **claim_overrides: Any) -> Forger:
    return lambda secret, keys: forge(
        header or {"alg": "HS256", "typ": "JWT"}, claims(**claim_overrides), hmac_signer(secret)
    )


HS256_ATTACKS: dict[str, Forger] = {
    "one-segment": lambda s, k: "abc",
    "two-segments": lambda s, k: "eyJhbGciOiJIUzI1NiJ9.e30",
    "four-segments": lambda s, k: _hs()(s, k) + ".e30",
    "bad-characters": lambda s, k: "eyJhbGciOiJIUzI1NiJ9.e3$0.abc",
    "header-bad-base64": lambda s, k: "a.e30.abc",
    "header-not-json": lambda s, k: f"{b64(b'hello')}.e30.abc",
    "header-json-array": lambda s, k: f"{b64(b'[]')}.e30.abc",
    "header-deeply-nested": lambda s, k: f"{b64(b'[' * 2500 + b']' * 2500)}.e30.abc",
    "oversized": _hs(padding="x" * 9000),
    "alg-none": lambda s, k: forge({"alg": "none", "typ": "JWT"}, claims(), None),
    "alg-None": lambda s, k: forge({"alg": "None"}, claims(roles=["admin"]), None),
    "alg-NONE-signed": lambda s, k: forge({"alg": "NONE"}, claims(), hmac_signer(s)),
    "alg-missing": lambda s, k: forge({"typ": "JWT"}, claims(), hmac_signer(s)),
    "alg-not-a-string": lambda s, k: forge({"alg": ["HS256"]}, claims(), hmac_signer(s)),
    "alg-HS512-not-pinned": lambda s, k: forge({"alg": "HS512"}, claims(), hmac_signer(s, "sha512")),
    "alg-RS256-not-pinned": lambda s, k: jwt.encode(claims(), pem(k["rsa-1"]), "RS256", headers={"kid": "rsa-1"}),
    "crit-header": _hs({"alg": "HS256", "crit": ["exp"], "exp": 1}),
    "bad-signature": lambda s, k: flip_signature_char(_hs()(s, k)),
    "signature-stripped": lambda s, k: _hs()(s, k).rsplit(".", 1)[0] + ".",
    "wrong-secret": lambda s, k: forge({"alg": "HS256"}, claims(), hmac_signer(b"w" * 43)),
    "tampered-payload": lambda s, k: with_payload(_hs()(s, k), claims(roles=["admin"])),
    "tampered-sub": lambda s, k: with_payload(_hs()(s, k), claims(sub="emp-other")),
    "payload-not-json": lambda s, k: forge({"alg": "HS256"}, b"hello", hmac_signer(s)),
    "payload-json-array": lambda s, k: forge({"alg": "HS256"}, b"[1]", hmac_signer(s)),
    "expired": _hs(exp=Rel(-3600)),
    "expired-beyond-leeway": _hs(exp=Rel(-45)),
    "nbf-in-future": _hs(nbf=Rel(120)),
    "iat-in-future": _hs(iat=Rel(120)),
    "iat-beyond-clock-skew": _hs(iat=Rel(45)),
    "missing-iat": _hs(iat=DROP),
    # Signed, and absurdly long-lived: a 500 in check-in once (its own cache parsed exp as float).
    "exp-10-to-the-400": _hs(exp=10**400),
    "exp-2-to-the-64": _hs(exp=2**64),
    "lifetime-100-years": _hs(exp=Rel(100 * 365 * 86400)),
    "lifetime-over-max-with-old-iat": _hs(iat=Rel(-2 * 86400), nbf=Rel(-2 * 86400), exp=Rel(600)),
    "wrong-aud": _hs(aud="some-other-api"),
    "aud-list-without-ours": _hs(aud=["a", "b"]),
    "aud-not-a-string": _hs(aud=7),
    "wrong-iss": _hs(iss="https://evil.example/"),
    "missing-exp": _hs(exp=DROP),
    "missing-sub": _hs(sub=DROP),
    "missing-iss": _hs(iss=DROP),
    "missing-aud": _hs(aud=DROP),
    "exp-as-string": _hs(exp=str(int(time.time()) + 600)),
    "exp-null": _hs(exp=None),
    "exp-nan": _hs(exp=float("nan")),
    "exp-infinity": _hs(exp=float("inf")),
    "nbf-as-bool": _hs(nbf=True),
    "iat-as-list": _hs(iat=[1]),
    "sub-empty": _hs(sub=""),
    "sub-not-a-string": _hs(sub=42),
    "sub-too-long": _hs(sub="e" * 300),
    "roles-unknown": _hs(roles=["superuser"]),
    "roles-one-unknown": _hs(roles=["employee", "root"]),
    "roles-a-string": _hs(roles="admin"),
    "roles-not-strings": _hs(roles=[1]),
    "roles-nested-list": _hs(roles=[["admin"]]),
    "roles-an-object": _hs(roles={"admin": True}),
    "roles-null": _hs(roles=None),
}


@pytest.mark.parametrize("name", list(HS256_ATTACKS))
def test_hs256_attack_is_401(name: str, client: TestClient, secret: bytes, keys: dict[str, Any]) -> None:
    token = HS256_ATTACKS[name](secret, keys)
    response = client.get("/me", headers=bearer(token))
    assert_problem(response, 401, token)
    assert response.json()["detail"] in {auth._INVALID, auth._EXPIRED, auth._TOO_LARGE}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["absent", "empty", "no-token", "blank-token", "basic-scheme"],
)
def test_missing_token_is_401(headers: dict[str, str], client: TestClient) -> None:
    response = client.get("/me", headers=headers)
    assert_problem(response, 401)
    assert response.json()["detail"] == auth._MISSING


def test_oversized_token_is_refused_before_any_parsing(
    dev_settings: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(dev_settings)

    def boom(*args: Any, **kw: Any) -> Any:
        raise AssertionError("parsed an oversized token")

    monkeypatch.setattr(auth, "_header", boom)
    monkeypatch.setattr(auth.jwt, "decode", boom)
    monkeypatch.setattr(auth, "_COMPACT", type("Boom", (), {"fullmatch": staticmethod(boom)})())
    for token in ("a" * (dev_settings.max_token_bytes + 1), "é" * (dev_settings.max_token_bytes + 1)):
        with pytest.raises(Unauthorized) as caught:
            verifier.verify(token)
        assert caught.value.detail == auth._TOO_LARGE


def test_non_ascii_token_is_refused(dev_settings: PlatformSettings) -> None:
    token = dev_token(dev_settings, SUB, ["employee"])
    with pytest.raises(Unauthorized):
        TokenVerifier(dev_settings).verify(token[:-1] + "é")


@given(
    st.text(max_size=200)
    | st.lists(st.binary(max_size=60), min_size=2, max_size=4).map(lambda p: ".".join(map(b64, p)))
)
def test_garbage_is_only_ever_unauthorized(dev_settings: PlatformSettings, text: str) -> None:
    with pytest.raises(Unauthorized):
        TokenVerifier(dev_settings).verify(text)


# --- accepted tokens and role guards ------------------------------------------------------------


def test_valid_dev_token_is_accepted(client: TestClient, dev_settings: PlatformSettings) -> None:
    token = dev_token(dev_settings, SUB, [Role.employee, "manager"])
    response = client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == SUB and body["roles"] == ["employee", "manager"] and len(body["jti"]) == 32
    assert client.get("/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": Rel(-10)},
        {"nbf": Rel(20)},
        {"iat": Rel(20)},
        {"aud": ["other", AUDIENCE]},
        {"roles": DROP, "jti": DROP},
    ],
    ids=["exp-within-leeway", "nbf-within-leeway", "iat-within-leeway", "aud-list-with-ours", "no-roles-no-jti"],
)
def test_tolerated_claims_are_accepted(overrides: dict[str, Any], client: TestClient, secret: bytes) -> None:
    token = forge({"alg": "HS256", "typ": "JWT"}, claims(**overrides), hmac_signer(secret))
    assert client.get("/me", headers=bearer(token)).status_code == 200


def test_max_lifetime_and_clock_skew_come_from_settings(tmp_path: Path) -> None:
    settings = embedded(tmp_path, jwt_max_lifetime_seconds=120, jwt_clock_skew_seconds=5)
    verifier = TokenVerifier(settings)
    key = settings.secret("dev_jwt_secret")

    def token(**overrides: Any) -> str:
        return forge({"alg": "HS256"}, claims(**overrides), hmac_signer(key))

    assert verifier.verify(token(exp=Rel(100))).sub == SUB
    for refused in ({"exp": Rel(600)}, {"iat": Rel(20)}, {"exp": Rel(-10)}):
        with pytest.raises(Unauthorized):
            verifier.verify(token(**refused))
    with pytest.raises(ValueError):
        dev_token(settings, SUB, "employee", ttl_seconds=600)


def test_principal_has_any_of_the_roles() -> None:
    principal = Principal("emp-1", frozenset({Role.employee, Role.manager}), None)
    assert principal.has(Role.manager) and principal.has("admin", "employee")
    assert not principal.has(Role.admin, Role.hr_analyst) and not principal.has()


def test_role_guard(client: TestClient, dev_settings: PlatformSettings) -> None:
    employee = dev_token(dev_settings, SUB, ["employee"])
    forbidden = client.get("/admin", headers=bearer(employee))
    assert_problem(forbidden, 403, employee)
    assert client.get("/admin", headers=bearer(dev_token(dev_settings, "adm-1", ["admin"]))).status_code == 200
    assert client.get("/care", headers=bearer(dev_token(dev_settings, "c-1", ["counsellor"]))).status_code == 200
    assert client.get("/care", headers=bearer(dev_token(dev_settings, "h-1", "hr_analyst"))).status_code == 200
    assert_problem(client.get("/care", headers=bearer(employee)), 403)
    # No token, or a bad one, is still 401 on a guarded route.
    assert_problem(client.get("/admin"), 401)
    assert_problem(client.get("/admin", headers=bearer(employee[:-3] + "xyz")), 401)


def test_require_roles_needs_known_roles() -> None:
    with pytest.raises(ValueError):
        require_roles()
    with pytest.raises(ValueError):
        require_roles("superuser")


def test_app_without_verifier_is_a_500_not_an_open_door() -> None:
    response = make_client(None).get("/me", headers=bearer("a.b.c"))
    assert response.status_code == 500


# --- dev tokens and verifier construction -------------------------------------------------------


def test_dev_token_refused_outside_embedded_dev_issuer(tmp_path: Path, keys: dict[str, Any]) -> None:
    prod = production(tmp_path, ["RS256"], {"keys": [public_jwk(keys["rsa-1"], "rsa-1")]})
    with pytest.raises(RuntimeError):
        dev_token(prod, SUB, ["employee"])
    with pytest.raises(RuntimeError):
        dev_token(embedded(tmp_path, dev_token_issuer=False), SUB, ["employee"])
    with pytest.raises(RuntimeError):
        dev_token(embedded(tmp_path, jwt_algorithms=["RS256"], jwks_json='{"keys": []}'), SUB, ["employee"])


def test_dev_token_refuses_unknown_roles_and_bad_ttl(dev_settings: PlatformSettings) -> None:
    with pytest.raises(ValueError):
        dev_token(dev_settings, SUB, ["superuser"])
    with pytest.raises(ValueError):
        dev_token(dev_settings, SUB, ["employee"], ttl_seconds=0)


def test_dev_token_claims(dev_settings: PlatformSettings) -> None:
    token = dev_token(dev_settings, SUB, "employee", ttl_seconds=60)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert jws.get_unverified_header(token)["alg"] == "HS256"
    assert payload.keys() == {"iss", "aud", "sub", "roles", "iat", "nbf", "exp", "jti"}
    assert payload["exp"] - payload["iat"] == 60 and payload["roles"] == ["employee"]


def test_expired_token_says_expired_only_when_the_signature_is_good(client: TestClient, secret: bytes) -> None:
    expired = claims(exp=Rel(-3600))
    good = client.get("/me", headers=bearer(forge({"alg": "HS256"}, expired, hmac_signer(secret))))
    assert good.json()["detail"] == auth._EXPIRED
    forged = client.get("/me", headers=bearer(forge({"alg": "HS256"}, expired, hmac_signer(b"x" * 40))))
    assert forged.json()["detail"] == auth._INVALID


@pytest.mark.parametrize(
    "algorithms",
    [["HS256", "RS256"], ["ES256", "HS256"], ["none"], ["HS256", "none"], ["None"], [], ["HS384"], ["PS256"]],
)
def test_unsafe_algorithm_pins_are_refused(tmp_path: Path, algorithms: list[str]) -> None:
    settings = embedded(tmp_path, jwt_algorithms=algorithms, jwks_json='{"keys": []}')
    with pytest.raises(ValueError):
        TokenVerifier(settings)


def test_unsafe_key_settings_are_refused(tmp_path: Path, keys: dict[str, Any]) -> None:
    prod = production(tmp_path, ["RS256"], {"keys": [public_jwk(keys["rsa-1"], "rsa-1")]})
    dev = embedded(tmp_path)
    unsafe = [
        prod.model_copy(update={"jwt_algorithms": ["HS256"]}),  # HS256 outside embedded mode
        dev.model_copy(update={"dev_jwt_secret": None}),
        dev.model_copy(update={"dev_jwt_secret": SecretStr("too-short")}),
        dev.model_copy(update={"jwt_algorithms": ["RS256"]}),  # no JWKS
        prod.model_copy(update={"jwks_json": None, "jwks_url": "http://idp.example.test/jwks"}),
        prod.model_copy(update={"jwks_json": "not json"}),
        prod.model_copy(update={"jwks_json": '{"no": "keys"}'}),
    ]
    for settings in unsafe:
        with pytest.raises(ValueError):
            TokenVerifier(settings)


# --- production: RS256 / ES256 keys from a JWKS, chosen by kid ----------------------------------


@pytest.fixture(scope="module")
def rs256_client(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Any]) -> TestClient:
    jwks = {
        "keys": [
            public_jwk(keys["rsa-1"], "rsa-1", use="sig", alg="RS256"),
            public_jwk(keys["rsa-2"], "rsa-2"),
            public_jwk(keys["rsa-weak"], "rsa-weak"),
            public_jwk(keys["rsa-foreign"], "rsa-512-only", alg="RS512"),
            public_jwk(keys["rsa-foreign"], "rsa-enc", use="enc"),
            public_jwk(keys["ec-1"], "ec-1"),
        ]
    }
    return make_client(TokenVerifier(production(tmp_path_factory.mktemp("rs"), ["RS256"], jwks)))


def rs256(key: Any, kid: Any, alg: str = "RS256", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), pem(key), algorithm=alg, headers={"kid": kid})


@pytest.mark.parametrize("kid", ["rsa-1", "rsa-2"])
def test_rs256_jwks_key_by_kid(kid: str, rs256_client: TestClient, keys: dict[str, Any]) -> None:
    response = rs256_client.get("/me", headers=bearer(rs256(keys[kid], kid, roles=["integration"])))
    assert response.status_code == 200 and response.json()["roles"] == ["integration"]


RS256_ATTACKS: dict[str, Forger] = {
    "hs256-with-rsa-public-key-as-secret": lambda s, k: forge(
        {"alg": "HS256", "kid": "rsa-1"}, claims(roles=["admin"]), hmac_signer(public_pem(k["rsa-1"]))
    ),
    "hs256-without-kid": lambda s, k: forge({"alg": "HS256"}, claims(), hmac_signer(public_pem(k["rsa-1"]))),
    "alg-none": lambda s, k: forge({"alg": "none", "kid": "rsa-1"}, claims(), None),
    "es256-not-pinned": lambda s, k: rs256(k["ec-1"], "ec-1", alg="ES256"),
    "rs384-not-pinned": lambda s, k: rs256(k["rsa-1"], "rsa-1", alg="RS384"),
    "kid-names-another-key": lambda s, k: rs256(k["rsa-2"], "rsa-1"),
    "unknown-kid": lambda s, k: rs256(k["rsa-1"], "rsa-404"),
    "no-kid": lambda s, k: jwt.encode(claims(), pem(k["rsa-1"]), algorithm="RS256"),
    "kid-not-a-string": lambda s, k: rs256(k["rsa-1"], ["rsa-1"]),
    "signed-by-foreign-key": lambda s, k: rs256(k["rsa-foreign"], "rsa-1"),
    "rsa-key-under-2048-bits": lambda s, k: rs256(k["rsa-weak"], "rsa-weak"),
    "jwk-pinned-to-other-alg": lambda s, k: rs256(k["rsa-foreign"], "rsa-512-only"),
    "jwk-for-encryption": lambda s, k: rs256(k["rsa-foreign"], "rsa-enc"),
    "ec-jwk-with-rs256": lambda s, k: forge({"alg": "RS256", "kid": "ec-1"}, claims(), None),
    "tampered-payload": lambda s, k: with_payload(rs256(k["rsa-1"], "rsa-1"), claims(roles=["admin"])),
    "expired": lambda s, k: rs256(k["rsa-1"], "rsa-1", exp=Rel(-120)),
    "wrong-aud": lambda s, k: rs256(k["rsa-1"], "rsa-1", aud="other"),
    "wrong-iss": lambda s, k: rs256(k["rsa-1"], "rsa-1", iss="kinwell-dev"),
}


@pytest.mark.parametrize("name", list(RS256_ATTACKS))
def test_rs256_attack_is_401(name: str, rs256_client: TestClient, keys: dict[str, Any]) -> None:
    token = RS256_ATTACKS[name](b"", keys)
    assert_problem(rs256_client.get("/me", headers=bearer(token)), 401, token)


def test_es256_jwks_key_by_kid(tmp_path: Path, keys: dict[str, Any]) -> None:
    jwks = {
        "keys": [
            public_jwk(keys["ec-1"], "ec-1", alg="ES256"),
            public_jwk(keys["ec-2"], "ec-2"),
            public_jwk(keys["ec-384"], "ec-384"),
        ]
    }
    client = make_client(TokenVerifier(production(tmp_path, ["ES256"], jwks)))
    for kid in ("ec-1", "ec-2"):
        response = client.get("/me", headers=bearer(rs256(keys[kid], kid, alg="ES256")))
        assert response.status_code == 200 and response.json()["sub"] == SUB
    attacks = [
        rs256(keys["ec-2"], "ec-1", alg="ES256"),  # kid names another key
        rs256(keys["ec-384"], "ec-384", alg="ES256"),  # P-384 key used with ES256
        forge({"alg": "HS256", "kid": "ec-1"}, claims(), hmac_signer(public_pem(keys["ec-1"]))),
        forge({"alg": "ES256", "kid": "ec-1"}, claims(), lambda m: b"\x00" * 64),
        with_payload(rs256(keys["ec-1"], "ec-1", alg="ES256"), claims(sub="emp-other")),
    ]
    for token in attacks:
        assert_problem(client.get("/me", headers=bearer(token)), 401, token)


# --- production: keys fetched from a JWKS URL ---------------------------------------------------


class FakeIdP:
    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks, self.calls, self.status = jwks, 0, 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(self.status, json=self.jwks if self.status == 200 else {})


def url_verifier(tmp_path: Path, idp: FakeIdP, clock: list[float]) -> TokenVerifier:
    settings = production(tmp_path, ["RS256"], None, jwks_url="https://idp.example.test/jwks")
    client = httpx.Client(transport=httpx.MockTransport(idp.handler))
    return TokenVerifier(settings, http_client=client, jwks_ttl_seconds=300, clock=lambda: clock[0])


def test_jwks_url_cached_and_refreshed_once_on_unknown_kid(tmp_path: Path, keys: dict[str, Any]) -> None:
    idp, clock = FakeIdP({"keys": [public_jwk(keys["rsa-1"], "rsa-1")]}), [1000.0]
    verifier = url_verifier(tmp_path, idp, clock)
    assert idp.calls == 0  # nothing is fetched until a token needs a key
    assert verifier.verify(rs256(keys["rsa-1"], "rsa-1")).sub == SUB
    assert verifier.verify(rs256(keys["rsa-1"], "rsa-1")).sub == SUB
    assert idp.calls == 1
    # The IdP rotates to rsa-2; a token with the new kid triggers exactly one refetch.
    idp.jwks = {"keys": [public_jwk(keys["rsa-2"], "rsa-2")]}
    clock[0] += 11
    assert verifier.verify(rs256(keys["rsa-2"], "rsa-2")).sub == SUB
    assert idp.calls == 2
    # Random kids cannot make us hammer the IdP: at most one refetch per interval.
    for _ in range(5):
        with pytest.raises(Unauthorized):
            verifier.verify(rs256(keys["rsa-1"], "rsa-404"))
    assert idp.calls == 2
    clock[0] += 11
    with pytest.raises(Unauthorized):
        verifier.verify(rs256(keys["rsa-1"], "rsa-404"))
    assert idp.calls == 3
    # After the TTL the keys are fetched again even for a known kid.
    clock[0] += 301
    verifier.verify(rs256(keys["rsa-2"], "rsa-2"))
    assert idp.calls == 4


def test_jwks_url_failure_keeps_old_keys_or_is_503(tmp_path: Path, keys: dict[str, Any]) -> None:
    idp, clock = FakeIdP({"keys": [public_jwk(keys["rsa-1"], "rsa-1")]}), [0.0]
    verifier = url_verifier(tmp_path, idp, clock)
    verifier.verify(rs256(keys["rsa-1"], "rsa-1"))
    idp.status, clock[0] = 500, 1000.0
    assert verifier.verify(rs256(keys["rsa-1"], "rsa-1")).sub == SUB  # stale keys beat no keys
    assert idp.calls == 2
    fresh = url_verifier(tmp_path, idp, clock)
    with pytest.raises(ServiceUnavailable):
        fresh.verify(rs256(keys["rsa-1"], "rsa-1"))


# --- consent receipts ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer(dev_settings: PlatformSettings) -> ReceiptSigner:
    return ReceiptSigner(dev_settings)


RECEIPT = {"receipt_id": "r-1", "purpose": "checkin", "granted": True, "at": "2026-05-01T09:00:00Z"}


def test_receipt_signs_and_verifies(signer: ReceiptSigner) -> None:
    token = signer.sign(RECEIPT)
    assert verify_receipt(token, signer.public_jwks()) == RECEIPT
    header = jws.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == signer.kid
    (key,) = signer.public_jwks()["keys"]
    assert key.keys() == {"kty", "crv", "x", "y", "kid", "alg", "use"} and key["use"] == "sig"
    # RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{key["x"]}","y":"{key["y"]}"}}'
    assert key["kid"] == b64(hashlib.sha256(canonical.encode()).digest())
    assert signer.sign({"b": 1, "a": 2}).split(".")[1] == b64(b'{"a":2,"b":1}')  # canonical JSON


def test_receipt_with_any_payload_byte_edited_is_invalid(signer: ReceiptSigner) -> None:
    header, payload, signature = signer.sign(RECEIPT).split(".")
    raw = base64.urlsafe_b64decode(payload + "==")
    for i in range(len(raw)):
        edited = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(ReceiptInvalid):
            verify_receipt(f"{header}.{b64(edited)}.{signature}", signer.public_jwks())


def test_receipt_signed_by_another_key_is_invalid(signer: ReceiptSigner, tmp_path: Path) -> None:
    other = ReceiptSigner(embedded(tmp_path))
    assert other.kid != signer.kid
    with pytest.raises(ReceiptInvalid):
        verify_receipt(other.sign(RECEIPT), signer.public_jwks())
    # Another key claiming our kid.
    other_pem = embedded(tmp_path).secret("receipt_signing_key").decode()
    forged = jws.sign(RECEIPT, other_pem, headers={"kid": signer.kid, "typ": auth.RECEIPT_TYPE}, algorithm="ES256")
    with pytest.raises(ReceiptInvalid):
        verify_receipt(forged, signer.public_jwks())


def test_unsigned_or_confused_receipts_are_invalid(signer: ReceiptSigner, dev_settings: PlatformSettings) -> None:
    valid = signer.sign(RECEIPT)
    public = signer.public_jwks()
    typ = auth.RECEIPT_TYPE
    key_json = json.dumps(public["keys"][0]).encode()
    bad = [
        valid.rsplit(".", 1)[0] + ".",  # signature stripped
        forge({"alg": "none", "kid": signer.kid, "typ": typ}, RECEIPT, None),
        forge({"alg": "HS256", "kid": signer.kid, "typ": typ}, RECEIPT, hmac_signer(key_json)),
        forge({"alg": "ES256", "kid": signer.kid, "typ": typ}, RECEIPT, lambda m: b"\x01" * 64),
        forge({"alg": "ES256", "kid": ["x"], "typ": typ}, RECEIPT, lambda m: b"\x01" * 64),
        forge({"alg": "ES256", "kid": signer.kid, "typ": typ, "crit": ["b64"], "b64": False}, RECEIPT, None),
        flip_signature_char(valid),
        dev_token(dev_settings, SUB, ["admin"]),  # an access token is not a receipt
        # Signed by the receipt key itself, but typed as a JWT: not a consent receipt.
        jws.sign(
            RECEIPT, dev_settings.secret("receipt_signing_key").decode(), headers={"kid": signer.kid}, algorithm="ES256"
        ),
        "not.a.receipt",
        "x" * 70_000,
    ]
    for token in bad:
        with pytest.raises(ReceiptInvalid):
            verify_receipt(token, public)
    for jwks in ({}, {"keys": "nope"}, {"keys": [{"kid": signer.kid, "kty": "RSA"}]}):
        with pytest.raises(ReceiptInvalid):
            verify_receipt(valid, jwks)


def test_receipt_signer_needs_a_p256_key(tmp_path: Path) -> None:
    for key in (pem(ec.generate_private_key(ec.SECP384R1())), pem(rsa.generate_private_key(65537, 2048)), "junk"):
        with pytest.raises(ValueError):
            ReceiptSigner(embedded(tmp_path, receipt_signing_key=key))
