"""The recommender's long-lived parts, built once in ``create_app`` (``app.state.recommender``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.recommender.catalogue.service import CatalogueCache
from services.recommender.config import RecommenderSettings


@dataclass
class RecommenderContext:
    settings: RecommenderSettings
    catalogue: CatalogueCache


async def _context(request: Request) -> RecommenderContext:
    ctx: RecommenderContext = request.app.state.recommender
    return ctx


Ctx = Annotated[RecommenderContext, Depends(_context)]
