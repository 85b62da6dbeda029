"""Cursor pagination: one way for every list endpoint to answer in bounded pages.

A list endpoint takes :data:`PageQuery` (``limit``, default 50, at most 200; ``cursor``, opaque),
asks its repository for ``limit + 1`` rows after the cursor's key in a stable order, and answers
with :func:`page`: the first ``limit`` rows and ``next_cursor`` (null on the last page); lists
answered as a bare JSON array (the webhook admin lists) give the next page's URL in a
``Link: <…>; rel="next"`` header instead (:func:`next_link`). The cursor is the last row's sort
key, base64url JSON: it only says where to continue in the caller's own rows, so it needs no
signature; a cursor that does not decode, or does not fit the endpoint's key, is 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from starlette.datastructures import URL

from shared.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None

    def after(self, *types: type) -> tuple[Any, ...] | None:
        """The cursor's key, checked against ``types`` (one per key part); None on the first page."""
        if self.cursor is None:
            return None
        try:
            key = json.loads(base64.urlsafe_b64decode(self.cursor + "=" * (-len(self.cursor) % 4)))
        except (ValueError, binascii.Error):
            key = None
        if (
            not isinstance(key, list)
            or len(key) != len(types)
            or not all(type(part) is kind for part, kind in zip(key, types, strict=True))
        ):
            raise invalid_cursor()
        return tuple(key)


def _page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=512, pattern=r"^[A-Za-z0-9_-]+$", description="``next_cursor`` of the previous page."),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, cursor)


PageQuery = Annotated[PageRequest, Depends(_page_request)]


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).rstrip(b"=").decode()


def next_link(url: URL, cursor: str | None) -> dict[str, str]:
    """Headers for a list answered as a bare JSON array: ``Link: <...>; rel="next"`` (RFC 8288)."""
    if cursor is None:
        return {}
    return {"Link": f'<{url.include_query_params(cursor=cursor)}>; rel="next"'}


def invalid_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid for this list.", code="invalid-cursor")


def cursor_time(value: str) -> datetime:
    """A time inside a cursor key (400, like any cursor that is not ours, if it is not one)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise invalid_cursor() from None


def cursor_date(value: str) -> date:
    """A date inside a cursor key (400 if it is not one)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_cursor() from None


def after_time(request: PageRequest) -> tuple[datetime, str] | None:
    """The (created_at, id) key of a list ordered by time then id."""
    after = request.after(str, str)
    return (cursor_time(after[0]), after[1]) if after else None


def time_key(row: Any) -> tuple[str, str]:
    return (row.created_at.isoformat(), row.id)


def page(rows: Sequence[T], request: PageRequest, key: Callable[[T], tuple[Any, ...]]) -> tuple[list[T], str | None]:
    """The rows of this page (of ``limit + 1`` fetched) and the cursor of the next, if any."""
    items = list(rows[: request.limit])
    more = len(rows) > request.limit
    return items, (encode_cursor(*key(items[-1])) if more and items else None)
