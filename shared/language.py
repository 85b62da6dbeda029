"""``Accept-Language``: the language tags a caller prefers, best first."""

from __future__ import annotations

MAX_HEADER_CHARS = 512  # a header is read this far, and only its first MAX_TAGS tags
MAX_TAGS = 20


def preferred_tags(accept_language: str | None) -> list[str]:
    """The header's tags by quality (``q``, 1 when absent, 0 when unreadable), ties in the order
    given; each service then keeps the tags it can serve."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:MAX_HEADER_CHARS].split(",")[:MAX_TAGS]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]
