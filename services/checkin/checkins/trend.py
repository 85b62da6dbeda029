"""The trend cache: per subject, the latest (WHO-5 index, mood) of each recent week, sealed.

Kept so that answering a check-in with its trend reads one row however many check-ins the subject
has; rebuilt from the check-ins themselves when it is missing or does not open.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pydantic_core import from_json

from services.checkin.checkins.scoring import Scores
from services.checkin.clock import iso_week
from shared.datakeys import CiphertextInvalid, SubjectKey

KEEP_WEEKS = 8


def trend_context(pseudonym: str) -> tuple[str, str, str]:
    return ("checkin_trend", pseudonym, "trend")


def payload_context(row_id: str) -> tuple[str, str, str]:
    return ("checkin", row_id, "payload")


def rebuild_points(key: SubjectKey, rows: list[Any]) -> dict[str, tuple[int, int]]:
    """Latest (WHO-5 index, mood) per week from check-in rows, oldest first."""
    points: dict[str, tuple[int, int]] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        try:
            scores = Scores.from_json(from_json(key.open(row.payload, *payload_context(row.id)))["scores"])
        except CiphertextInvalid:
            continue
        points[row.iso_week] = (scores.who5_index, scores.mood)
    return points


def open_points(key: SubjectKey, sealed: bytes) -> dict[str, tuple[int, int]] | None:
    """The cached points, or None when they do not open under ``key`` (rebuild them)."""
    try:
        raw = from_json(key.open(sealed, *trend_context(key.pseudonym)))
        return {week: (int(v[0]), int(v[1])) for week, v in raw.items()}
    except (CiphertextInvalid, ValueError, KeyError, TypeError, IndexError):
        return None


def since_week(current: date) -> str:
    """The oldest week the cache keeps, for a check-in in the week starting ``current``."""
    return iso_week(current - timedelta(weeks=KEEP_WEEKS))


def trend_window(points: dict[str, tuple[int, int]], current_start: date, weeks: int) -> list[tuple[str, int, int]]:
    first = iso_week(current_start - timedelta(weeks=weeks - 1))
    return [(w, p[0], p[1]) for w, p in sorted(points.items()) if w >= first]
