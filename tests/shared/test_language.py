"""shared.language.preferred_tags: one reading of Accept-Language for check-in and recommender."""

from __future__ import annotations

from services.checkin.checkins import screening
from services.recommender.ranking.endpoints import negotiate
from shared.language import MAX_TAGS, preferred_tags


def test_tags_by_quality_then_order() -> None:
    assert preferred_tags("de-CH;q=0.9, es-MX, en;q=0.5, fr") == ["es-MX", "fr", "de-CH", "en"]
    assert preferred_tags("en;q=x, es") == ["es", "en"]  # an unreadable q ranks last
    assert preferred_tags(None) == [""]


def test_long_headers_are_read_only_so_far() -> None:
    assert len(preferred_tags(",".join(["de"] * 100))) == MAX_TAGS
    assert "es" not in preferred_tags("x" * 600 + ",es")


def test_both_services_pick_the_same_supported_language() -> None:
    header = "de-CH;q=0.9, es-MX;q=0.95, fr;q=0.2"
    assert screening.resolve_locale(None, None, header) == screening.Locale("es", "MX")
    assert negotiate(header) == "es"
    assert negotiate("de, zz") is None
