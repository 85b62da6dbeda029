"""The recommender's long-lived parts, built once in ``create_app`` (``app.state.recommender``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.recommender.catalogue.service import CatalogueCache
from services.recommender.config import RecommenderSettings
from shared.eventkeys import EventKeyring


@dataclass
class RecommenderContext:
    settings: RecommenderSettings
    catalogue: CatalogueCache
    event_keys: EventKeyring  # opens the sealed facts of checkin.personalization.submitted.v2


async def _context(request: Request) -> RecommenderContext:
    ctx: RecommenderContext = request.app.state.recommender
    return ctx


Ctx = Annotated[RecommenderContext, Depends(_context)]
