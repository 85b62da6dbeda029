"""problem+json in the OpenAPI document: every error a route can answer is declared.

``shared.errors`` renders every error as ``application/problem+json``; FastAPI would document
its own 422 shape as ``application/json`` instead. Routes declare their errors with
:func:`problems`, and :func:`finish_openapi` leaves only the problem+json media type on them and
adds the bearer scheme, so generated clients and schema-driven tests see what is really sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import PROBLEM_JSON

_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    400: "Malformed request (for example a body that is not JSON)",
    401: "Missing, invalid or expired bearer token",
    403: "The caller's role does not allow this",
    404: "Not found (or not the caller's)",
    409: "Conflicts with the current state",
    413: "Body too large",
    422: "Request failed validation",
    503: "Not ready",
}
AUTH = (401, 403)
BODY = (400, 413, 422)


class Problem(BaseModel):
    """RFC 9457 problem details; some problems add members (``errors``, ``current_version``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the problem type.")
    title: str
    status: int
    detail: str
    instance: str | None = None


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for ``codes``, each a problem+json document."""
    return {
        code: {"model": Problem, "description": _DESCRIPTIONS[code], "content": {PROBLEM_JSON: {"schema": _REF}}}
        for code in sorted(set(codes))
    }


def finish_openapi(app: FastAPI, secured_prefixes: tuple[str, ...]) -> None:
    """Install an ``app.openapi`` that drops ``application/json`` from error responses and
    declares bearer authentication on the routes under ``secured_prefixes``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = doc.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
        }
        for path, operations in doc.get("paths", {}).items():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code[0] in "45" and PROBLEM_JSON in content:
                        content.pop("application/json", None)
                if path.startswith(secured_prefixes):
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
