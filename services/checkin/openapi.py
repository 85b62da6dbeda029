"""HTTP plumbing of the check-in endpoints: hand-parsed bodies and their OpenAPI documentation,
problem+json responses in OpenAPI."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class Problem(BaseModel):
    """application/problem+json (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    purpose: str | None = None


_NOT_JSON = {"loc": ("body",), "type": "model_attributes_type", "msg": "Input should be a JSON object"}


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
    schema.pop("$defs", None)  # registered as components by services.checkin.app
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """Schemas the manual bodies refer to, for ``components.schemas``."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def problems(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers."""
    default = {
        401: "Missing, invalid or expired bearer token.",
        403: "Your role does not allow this, or a consent is missing (the body names the purpose).",
        404: "Not found (or not yours).",
        409: "Conflicts with the check-in's state.",
        410: "The data was erased: its key no longer exists.",
        422: "The body failed validation.",
        503: "Consent state is not available yet (the gate fails closed); retry shortly.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = descriptions.get(f"d{status}", default[status])
        out[status] = {"model": Problem, "description": text, "content": {"application/problem+json": {}}}
    return out
