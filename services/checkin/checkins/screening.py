"""Risk screening, needs from a note, crisis resources, and the request's language and country.

Lexicons and crisis lines are data files in ``data/`` so that clinicians and operators can review
and extend them without touching code. Text is matched case- and accent-insensitively on whole
words, so "Suicidé" in a French note and "suicide" in the lexicon meet, but "sonnet" never
matches "son". The note itself never leaves this module's callers in the clear.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from services.checkin.checkins.scoring import PHQ9_SEVERE_AT, WHO5_VERY_LOW_AT_MOST, Scores
from shared.language import preferred_tags

DATA = Path(__file__).parent / "data"
SUPPORTED_LANGS: tuple[str, ...] = ("en", "es", "fr")
DEFAULT_LANG = "en"
_NON_WORD = re.compile(r"[^a-z0-9']+")
_LANG_TAG = re.compile(r"^([a-zA-Z]{2,3})(?:-([a-zA-Z]{2}))?$")


def normalise(text: str) -> str:
    """Casefold, strip accents, keep letters/digits/apostrophes; padded for whole-word search.

    Accents go by decomposing and dropping what is not ASCII: the lexicons are Latin-script, so
    text in other scripts cannot match them either way.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    return " " + _NON_WORD.sub(" ", ascii_only).strip() + " "


@dataclass(frozen=True)
class Lexicon:
    """Phrases -> labels, split for speed: one-word phrases by set lookup, longer ones by search."""

    words: dict[str, frozenset[str]]
    phrases: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, pairs: list[tuple[str, str]]) -> Lexicon:
        words: dict[str, set[str]] = {}
        phrases = []
        for phrase, label in pairs:
            norm = normalise(phrase)
            if norm.count(" ") == 2:  # " word "
                words.setdefault(norm.strip(), set()).add(label)
            else:
                phrases.append((norm, label))
        return cls({w: frozenset(v) for w, v in words.items()}, tuple(phrases))

    def labels(self, text: str) -> set[str]:
        """Labels of every phrase found in ``text`` (already normalised)."""
        found: set[str] = set()
        for word in set(text.split()) & self.words.keys():
            found |= self.words[word]
        found.update(label for phrase, label in self.phrases if phrase in text)
        return found


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    data.pop("_about", None)
    return data


CRISIS = "__crisis__"


def _crisis_pairs() -> list[tuple[str, str]]:
    return [(p, CRISIS) for words in _load("crisis_lexicon.json").values() for p in words]


def _needs_pairs() -> list[tuple[str, str]]:
    by_lang = _load("needs_lexicon.json").values()
    return [(p, need) for by_need in by_lang for need, words in by_need.items() for p in words]


@cache
def crisis_lexicon() -> Lexicon:
    """Every language's crisis phrases (a note is checked against all of them)."""
    return Lexicon.build(_crisis_pairs())


@cache
def needs_lexicon() -> Lexicon:
    """Every language's need words (people mix languages)."""
    return Lexicon.build(_needs_pairs())


@cache
def note_lexicon() -> Lexicon:
    """Both, for one pass over a note: needs by name, crisis phrases as :data:`CRISIS`."""
    return Lexicon.build(_crisis_pairs() + _needs_pairs())


RESOURCE_FIELDS = ("name", "phone", "sms", "url", "languages", "hours")


@cache
def crisis_resources_data() -> dict[str, Any]:
    """The crisis lines, each with every field of ``CrisisResource`` (absent ones as null)."""
    data = _load("crisis_resources.json")

    def full(resource: dict[str, Any]) -> dict[str, Any]:
        return {k: resource.get(k, [] if k == "languages" else None) for k in RESOURCE_FIELDS}

    for entry in (*data["countries"].values(), data["international"]):
        entry["resources"] = [full(r) for r in entry["resources"]]
    return data


def mentions_crisis(note: str | None) -> bool:
    return bool(note) and bool(crisis_lexicon().labels(normalise(note or "")))


def needs_from_note(note: str | None) -> set[str]:
    """Needs named in the note, in any supported language."""
    return needs_lexicon().labels(normalise(note)) if note else set()


@dataclass(frozen=True)
class NoteSignals:
    """What screening takes from a note (normalised once): crisis language and named needs."""

    crisis: bool
    needs: frozenset[str]

    @classmethod
    def of(cls, note: str | None) -> NoteSignals:
        if not note:
            return cls(False, frozenset())
        found = note_lexicon().labels(normalise(note))
        crisis = CRISIS in found
        found.discard(CRISIS)
        return cls(crisis, frozenset(found))


def needs_from_scores(scores: Scores) -> set[str]:
    a = scores.answers
    needs: set[str] = set()
    if a.get("who5_4", 5) <= 1 or a.get("phq9_3", 0) >= 2:
        needs.add("sleep")
    if a.get("who5_2", 5) <= 1:
        needs.add("stress")
    if (scores.gad2 or 0) >= 3:
        needs.add("anxiety")
    if a.get("who5_3", 5) <= 1 or a.get("phq9_4", 0) >= 2:
        needs.add("energy")
    if scores.mood <= 2 or (scores.phq2 or 0) >= 3:
        needs.add("low_mood")
    return needs


def risk_reasons(scores: Scores, crisis_language: bool) -> list[str]:
    """Why risk screening fires for this check-in so far (empty: it does not)."""
    reasons = []
    if (scores.phq9_item9 or 0) > 0:
        reasons.append("self_harm_item")
    if crisis_language:
        reasons.append("crisis_language")
    if scores.who5_raw <= WHO5_VERY_LOW_AT_MOST:
        reasons.append("who5_very_low")
    if (scores.phq9 or 0) >= PHQ9_SEVERE_AT:
        reasons.append("phq9_severe")
    return reasons


def severity(reasons: list[str]) -> str:
    if "self_harm_item" in reasons or "crisis_language" in reasons:
        return "critical"
    if "who5_very_low" in reasons or "phq9_severe" in reasons:
        return "high"
    return "routine"


@dataclass(frozen=True)
class Locale:
    lang: str
    country: str | None


def resolve_locale(lang: str | None, country: str | None, accept_language: str | None) -> Locale:
    """Language: the body's, else the first supported one in Accept-Language, else English.

    Country: the body's, else the first region found in Accept-Language (``es-MX`` -> MX).
    """
    matches = [m for m in map(_LANG_TAG.match, preferred_tags(accept_language)) if m]
    tags = [(m.group(1).lower(), m.group(2).upper() if m.group(2) else None) for m in matches]
    if lang is None:
        lang = next((t[0] for t in tags if t[0] in SUPPORTED_LANGS), DEFAULT_LANG)
    if country is None:
        country = next((t[1] for t in tags if t[1]), None)
    return Locale(lang, country)


def crisis_resources(locale: Locale) -> dict[str, Any]:
    """Hotlines for the country (those in the user's language first), then international ones."""
    data = crisis_resources_data()
    entry = data["countries"].get(locale.country or "", {})
    local = sorted(entry.get("resources", []), key=lambda r: locale.lang not in r.get("languages", []))
    return {
        "message": data["messages"].get(locale.lang, data["messages"][DEFAULT_LANG]),
        "country": locale.country if entry else None,
        "emergency_number": entry.get("emergency"),
        "resources": [*local, *data["international"]["resources"]],
    }
