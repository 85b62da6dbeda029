"""Small normalisers the vendor adapters share: ids, role families, countries, languages, dates."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

_ORG_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_LANGUAGE = re.compile(r"^([a-z]{2,3})(?:[-_]([a-z]{2}))?$", re.IGNORECASE)

# Country names HR systems commonly send instead of ISO codes; anything else must be a code.
_COUNTRY_NAMES = {
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "canada": "CA",
    "mexico": "MX",
    "brazil": "BR",
    "united kingdom": "GB",
    "uk": "GB",
    "great britain": "GB",
    "ireland": "IE",
    "france": "FR",
    "germany": "DE",
    "deutschland": "DE",
    "spain": "ES",
    "portugal": "PT",
    "italy": "IT",
    "netherlands": "NL",
    "belgium": "BE",
    "switzerland": "CH",
    "austria": "AT",
    "sweden": "SE",
    "norway": "NO",
    "denmark": "DK",
    "finland": "FI",
    "poland": "PL",
    "india": "IN",
    "japan": "JP",
    "china": "CN",
    "singapore": "SG",
    "australia": "AU",
    "new zealand": "NZ",
    "south africa": "ZA",
}


def slug(value: Any, max_length: int = 48) -> str | None:
    """``"Customer Success (EMEA)"`` -> ``"customer-success-emea"``; None when nothing is left."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:max_length].strip("-")
    return text or None


def org_unit_id(value: Any) -> str | None:
    """An HRIS unit id or name as a Kinwell org unit id (ids pass through, names become slugs)."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None
    text = str(value).strip()
    return text if _ORG_UNIT.fullmatch(text) else slug(text, 64)


def country(value: Any) -> str | None:
    """ISO 3166-1 alpha-2 from a code or a common English name; None if unknown (dropped, not guessed)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) == 2 and text.isalpha() and text.isascii():
        return text.upper()
    return _COUNTRY_NAMES.get(text.lower())


def language(value: Any) -> str | None:
    """``"de"``, ``"pt_br"`` -> ``"pt-BR"``; None unless it looks like a BCP 47 language tag."""
    if not isinstance(value, str):
        return None
    match = _LANGUAGE.fullmatch(value.strip())
    if match is None:
        return None
    lang, region = match.group(1).lower(), match.group(2)
    return f"{lang}-{region.upper()}" if region else lang


def to_date(value: Any) -> date | None:
    """A date from ``2026-01-31``, ``2026-01-31T18:42:00+0000`` or ``...Z``; None if unparseable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if re.fullmatch(r".*[+-]\d{4}", text):  # BambooHR's "+0000"
        text = text[:-2] + ":" + text[-2:]
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None


def ref_id(value: Any) -> str | None:
    """A reference that is either an id string or an expanded object with an ``id``."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    ok = text.isascii() and text.isprintable() and " " not in text
    return text if text and ok and len(text) <= 128 else None
