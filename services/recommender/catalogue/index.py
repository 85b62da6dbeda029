"""Lookup structures over one catalogue snapshot, built once per catalogue version.

Ranking scores only *candidates*: for each key a person's signals name (a need or chosen topic, a
preferred format) the first ``PER_KEY`` resources of that key, plus the first ``PER_KEY`` starters.
Each key's resources are ordered by what does not depend on the person: made for that topic first
(it is their first topic), then general, then shorter. With a catalogue of a few hundred resources
a person's candidates are most of it; with ten thousand, the ranking reads at most ``PER_KEY`` per
key (a list shows ten, at most four led by one topic), which is what keeps the ranking itself under a
millisecond with 10,000 resources (docs/benchmarks.md, recommender).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.recommender.catalogue.entry import Entry

PER_KEY = 24


def _prior(topic: str | None) -> Callable[[Entry], tuple[int, int, int, str]]:
    def key(e: Entry) -> tuple[int, int, int, str]:
        return (
            0 if topic is not None and e.topics[0] == topic else 1,
            0 if "general" in e.topics else 1,
            e.duration_minutes,
            e.id,
        )

    return key


def starter_score(e: Entry) -> float:
    """The same for everyone: general and short resources first."""
    return (1.0 if "general" in e.topics else 0.0) + (0.5 if e.duration_minutes <= 10 else 0.0)


@dataclass(frozen=True)
class Index:
    rankable: tuple[Entry, ...]  # everything but professional help (placed by rule, never by score)
    professional: tuple[Entry, ...]
    by_topic: dict[str, tuple[Entry, ...]]
    by_format: dict[str, tuple[Entry, ...]]
    starters: tuple[Entry, ...]

    @classmethod
    def build(cls, entries: Iterable[Entry]) -> Index:
        rankable = tuple(e for e in entries if not e.professional_help)
        topics: dict[str, list[Entry]] = defaultdict(list)
        formats: dict[str, list[Entry]] = defaultdict(list)
        for e in rankable:
            for t in e.topics:
                topics[t].append(e)
            formats[e.format].append(e)
        return cls(
            rankable=rankable,
            professional=tuple(e for e in entries if e.professional_help),
            by_topic={t: tuple(sorted(es, key=_prior(t))) for t, es in topics.items()},
            by_format={f: tuple(sorted(es, key=_prior(None))) for f, es in formats.items()},
            starters=tuple(sorted(rankable, key=lambda e: (-starter_score(e), e.id))),
        )

    def candidates(self, topics: Iterable[str], formats: Iterable[str]) -> list[Entry]:
        found: dict[str, Entry] = {e.id: e for e in self.starters[:PER_KEY]}
        for t in topics:
            found.update((e.id, e) for e in self.by_topic.get(t, ())[:PER_KEY])
        for f in formats:
            found.update((e.id, e) for e in self.by_format.get(f, ())[:PER_KEY])
        return list(found.values())
