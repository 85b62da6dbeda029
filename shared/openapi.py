"""Every service's OpenAPI document says what the service answers, generated here, in one place.

``shared.errors`` renders every 4xx/5xx as ``application/problem+json``, and the edge adds answers
no route declares itself: 401/403 from authentication, 400/413/422 from body parsing, 404 for an
unknown id in the path, 429 from the rate limits. :func:`install_openapi` (called by the app
factory) adds those to each operation from what the route is (secured, has a body, parameters,
writes), documents every error as problem+json only (FastAPI says ``application/json`` for its
422), and declares the bearer scheme on the operations that need a token. Routes declare only
what is particular to them, with :func:`problems`.

Routes that parse their body by hand (the check-in hot path, signals) document it with
:func:`request_body` and parse it with :func:`parse_body`, and say they need a token with
``openapi_extra=BEARER``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.auth import needs_principal
from shared.errors import PROBLEM_JSON

M = TypeVar("M", bound=BaseModel)

DESCRIPTIONS = {
    400: "Malformed request (for example a body that is not JSON).",
    401: "Missing, invalid or expired bearer token.",
    403: "The caller's role does not allow this, or a consent is missing (the body names the purpose).",
    404: "Not found (or not the caller's).",
    409: "Conflicts with the current state.",
    410: "The data was erased: its key no longer exists.",
    413: "The body is too large.",
    415: "Unsupported media type.",
    422: "The request failed validation.",
    429: "Too many requests from this caller or source; retry after ``Retry-After`` seconds.",
    503: "Not ready, or a dependency (consent state, another service) is unavailable; retry shortly.",
}
AUTH = (401, 403)
BODY = (400, 413, 422)
WRITES = frozenset({"post", "put", "patch", "delete"})
BEARER: dict[str, Any] = {"security": [{"bearer": []}]}
_REF = {"$ref": "#/components/schemas/Problem"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
_NOT_JSON = {"loc": ("body",), "type": "model_attributes_type", "msg": "Input should be a JSON object"}


class Problem(BaseModel):
    """RFC 9457 problem details; some problems add members (``errors``, ``purpose``, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the problem type.")
    title: str
    status: int
    detail: str
    instance: str | None = None


def problems(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for ``codes``; ``d409="..."`` overrides one description."""
    return {
        code: {
            "model": Problem,
            "description": descriptions.get(f"d{code}", DESCRIPTIONS[code]),
            "content": {PROBLEM_JSON: {"schema": _REF}},
        }
        for code in sorted(set(codes))
    }


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate a JSON body into ``model`` as FastAPI would: 400 malformed JSON, 422 otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise RequestValidationError([_NOT_JSON])
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that validates with :func:`parse_body`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # registered as components by install_openapi(extra_models=...)
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _component_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _secured(routers: Iterable[APIRouter]) -> set[tuple[str, str]]:
    """(path, method) of the operations that need a bearer token."""
    out: set[tuple[str, str]] = set()
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and needs_principal(route.dependant):
                out.update((route.path, method.lower()) for method in route.methods or ())
    return out


def _edge_codes(path: str, method: str, operation: dict[str, Any], secured: bool) -> set[int]:
    """The answers the edge may give an operation whatever the route does."""
    codes: set[int] = set()
    params = operation.get("parameters", [])
    if secured:
        codes |= {*AUTH}
    if "requestBody" in operation:
        codes |= {*BODY}
    if params:  # 422 for a value of the wrong type, 400 for values that disagree (from > to)
        codes |= {400, 422}
    if any(p.get("in") == "path" for p in params):
        codes.add(404)
    if method in WRITES:
        codes.add(429)
    return codes


def _finish_operation(path: str, method: str, operation: dict[str, Any], secured: bool) -> None:
    responses = operation.setdefault("responses", {})
    for code in _edge_codes(path, method, operation, secured):
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for code, response in responses.items():
        if code[0] in "45":  # every error is problem+json, and only that
            response["content"] = {PROBLEM_JSON: {"schema": _REF}}
            if code == "429":
                response["headers"] = _RETRY_AFTER
    if secured:
        operation["security"] = BEARER["security"]


def install_openapi(app: FastAPI, routers: Iterable[APIRouter], extra_models: Iterable[type[BaseModel]] = ()) -> None:
    """Install ``app.openapi``: the document of ``app`` completed as the module docstring says."""
    routers, extra_models = list(routers), list(extra_models)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        secured = _secured(routers)
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                declared = operation.get("security") == BEARER["security"]
                _finish_operation(path, method, operation, declared or (path, method) in secured)
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(_component_schemas([Problem, *extra_models]))
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced above
            schemas.pop(unused, None)
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
