"""Catalogue API: public browsing, admin changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from services.recommender.catalogue import service
from services.recommender.catalogue.schemas import (
    LANG_PATTERN,
    RESOURCE_ID_PATTERN,
    Format,
    ResourceCreate,
    ResourcePage,
    ResourceRead,
    ResourceUpdate,
    Topic,
)
from shared.auth import AdminPrincipal
from shared.db import SessionDep
from shared.errors import NotFound
from shared.openapi import problems
from shared.pagination import PageQuery, page

router = APIRouter(tags=["catalogue"])
ResourceId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN)]


def _cache(request: Request) -> service.CatalogueCache:
    cache: service.CatalogueCache = request.app.state.recommender.catalogue
    return cache


@router.get("/v1/resources", response_model=ResourcePage, summary="Browse the catalogue")
def list_resources(
    request: Request,
    session: SessionDep,
    paging: PageQuery,
    lang: Annotated[str | None, Query(pattern=LANG_PATTERN)] = None,
    topic: Topic | None = None,
    format: Format | None = None,
) -> ResourcePage:
    """Public: every resource, filterable by language (resources with a version in it), topic
    and format; ordered by id, a page at a time."""
    found = service.browse(_cache(request).entries(session), lang=lang, topic=topic, format=format)
    if (after := paging.after(str)) is not None:
        found = [e for e in found if e.id > after[0]]
    rows, cursor = page(found[: paging.limit + 1], paging, lambda e: (e.id,))
    return ResourcePage(items=[service.read_model(e) for e in rows], next_cursor=cursor)


@router.get("/v1/resources/{resource_id}", response_model=ResourceRead, summary="One resource", responses=problems(404))
def get_resource(request: Request, session: SessionDep, resource_id: ResourceId) -> ResourceRead:
    entry = _cache(request).snapshot(session).by_id.get(resource_id)
    if entry is None:
        raise NotFound("No such resource.")
    return service.read_model(entry)


@router.post(
    "/v1/resources",
    status_code=201,
    response_model=ResourceRead,
    summary="Add a resource (admin)",
    responses=problems(409),
)
def create_resource(session: SessionDep, _: AdminPrincipal, body: ResourceCreate) -> ResourceRead:
    return service.create(session, body)


@router.put(
    "/v1/resources/{resource_id}",
    response_model=ResourceRead,
    summary="Replace a resource (admin)",
    responses=problems(404),
)
def replace_resource(
    session: SessionDep, _: AdminPrincipal, resource_id: ResourceId, body: ResourceUpdate
) -> ResourceRead:
    return service.replace(session, resource_id, body)


@router.delete(
    "/v1/resources/{resource_id}", status_code=204, summary="Remove a resource (admin)", responses=problems(404)
)
def delete_resource(session: SessionDep, _: AdminPrincipal, resource_id: ResourceId) -> Response:
    service.delete(session, resource_id)
    return Response(status_code=204)
