"""Ranking: pure functions from the catalogue and a person's signals to an ordered, explained list.

* Score: needs from recent check-ins (newest week weighs most, halving each week back), topics
  and formats the person chose, the time they have, topics of resources they found helpful.
  Country and role family only filter (a resource's audience), and no demographic attribute is
  read at all: the self-declared attributes of fairness audits never reach this module.
* Fresh: dismissed and "not helpful" resources never come back; completed ones sink.
* Diverse: greedy selection that discounts a candidate for each already chosen resource sharing
  a topic, and at most ``ceil(limit / 3)`` resources per leading topic.
* Professional help (an EAP the person can use, else the counsellor request) is placed in the
  top three whenever the latest check-in shows moderate or worse needs: a positive anxiety or
  depression screen (``anxiety``, ``low_mood``) or three needs at once.
* Hotlines are not ranked: check-in shows crisis lines at once whenever screening fires.
* Language: each resource in the list's language, else English, else any version, with a note.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from operator import attrgetter
from typing import NamedTuple

from services.recommender.catalogue.entry import Entry
from services.recommender.catalogue.index import PER_KEY, Index, starter_score
from services.recommender.profiles.service import Signals
from services.recommender.ranking import reasons
from services.recommender.ranking.schemas import Reason, Recommendation

SERIOUS_NEEDS = frozenset({"anxiety", "low_mood"})
DEFAULT_LIMIT = 10


class Scored(NamedTuple):
    entry: Entry
    score: float
    reason: str
    detail: str | None


def needs_moderate_or_worse(signals: Signals) -> bool:
    latest = set(signals.needs_by_week[0]) if signals.needs_by_week else set()
    return bool(latest & SERIOUS_NEEDS) or len(latest) >= 3


def _need_weights(signals: Signals) -> dict[str, float]:
    weights: dict[str, float] = defaultdict(float)
    for age, week in enumerate(signals.needs_by_week):
        for need in week:
            weights[need] += 0.5**age
    return weights


def _scored(entries: list[Entry], signals: Signals, needs: dict[str, float]) -> list[Scored]:
    """Each entry's score, and the strongest positive part of it as the reason (the first on a
    tie). One loop over the candidates with the person's signals read once (it runs for ~130
    candidates on every request)."""
    chosen_topics, formats, minutes = signals.topics, signals.formats, signals.minutes_available
    helpful, completed = signals.helpful_topics, signals.completed
    out = []
    for entry in entries:
        topics = entry.topics
        score = 0.3 if "general" in topics else 0.0
        best, reason, detail = 0.0, "start", None
        need_sum, top_weight, top_need = 0.0, 0.0, ""
        for t in topics:
            w = needs.get(t, 0.0)
            need_sum += w
            if w > top_weight:
                top_weight, top_need = w, t
        if top_need:
            part = 3.0 * min(need_sum, 2.5) + (0.5 if topics[0] == top_need else 0.0)  # made for the need
            score += part
            best, reason, detail = part, "need", top_need
        for t in topics:
            if t in chosen_topics:
                score += 1.5
                if best < 1.5:
                    best, reason, detail = 1.5, "topic", t
                break
        if entry.format in formats:
            score += 1.0
            if best < 1.0:
                best, reason, detail = 1.0, "format", entry.format
        if minutes is not None:
            part = 0.6 if entry.duration_minutes <= minutes else -1.0
            score += part
            if part > best:
                best, reason, detail = part, "time", str(minutes)
        if helpful:
            liked = sum(helpful[t] for t in topics)
            if liked:
                part = 0.4 * min(liked, 3)
                score += part
                if part > best:
                    best, reason, detail = part, "helpful", None
        if entry.id in completed:
            score -= 2.0
        out.append(Scored(entry, score, reason, detail))
    return out


_BY_ID, _BY_SCORE = attrgetter("entry.id"), attrgetter("score")


def _diverse(scored: list[Scored], limit: int) -> list[Scored]:
    """Greedy: each step takes the candidate of highest value, its score less 0.8 for each chosen
    resource sharing its most chosen topic (the first in score, then id, order on a tie), at most
    ``ceil(limit / 3)`` led by one topic.

    Incremental: each candidate's discount is kept and raised only when a pick shares one of its
    topics, a topic that reaches its cap drops the candidates it leads, and a step scans the
    pool in score order only until no later score can beat the best value found.
    """
    per_topic_cap = math.ceil(limit / 3)
    pool = sorted(scored, key=_BY_ID)
    pool.sort(key=_BY_SCORE, reverse=True)  # stable: score descending, then id
    scores = [s.score for s in pool]
    leads = [s.entry.topics[0] for s in pool]
    discount = [0.0] * len(pool)  # 0.8 x the most chosen of its topics, as chosen so far
    holders: defaultdict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(pool):
        for t in s.entry.topics:
            holders[t].append(i)
    left = list(range(len(pool)))  # in pool order
    chosen: list[Scored] = []
    lead_count: Counter[str] = Counter()
    seen_topics: Counter[str] = Counter()
    while left and len(chosen) < limit:
        best_at, best_value = -1, -math.inf
        for at, i in enumerate(left):
            score = scores[i]
            if score <= best_value:
                break  # the pool is in score order and a discount only lowers a value
            value = score - discount[i]
            if value > best_value:
                best_at, best_value = at, value
        if best_at < 0:
            break
        item = pool[left.pop(best_at)]
        chosen.append(item)
        topics = item.entry.topics
        lead_count[topics[0]] += 1
        if lead_count[topics[0]] >= per_topic_cap:
            left = [i for i in left if leads[i] != topics[0]]
        for t in topics:  # a topic listed twice counts twice
            seen_topics[t] += 1
            value = 0.8 * seen_topics[t]
            for i in holders[t]:
                if discount[i] < value:
                    discount[i] = value
    return chosen


def _professional(index: Index, signals: Signals) -> Entry | None:
    """An EAP the person can use (not dismissed), else the counsellor request: at moderate need
    professional help stays in the list even if it was dismissed once (safety over freshness)."""
    reachable = [e for e in index.professional if e.kind in ("eap", "counsellor") and e.reaches(signals.country, None)]
    eaps = [e for e in reachable if e.kind == "eap" and e.id not in signals.dismissed]
    counsellor = [e for e in reachable if e.kind == "counsellor"]
    return (eaps or counsellor or [None])[0]  # type: ignore[list-item]


def rank(
    index: Index, signals: Signals | None, lang: str, limit: int = DEFAULT_LIMIT
) -> tuple[list[Recommendation], bool]:
    """The list in ``lang`` and whether professional help was placed near the top.

    ``signals`` is ``None`` without the personalization consent: the list is the same for
    everyone in a language (short, general and diverse first). Every list ends with the
    counsellor request unless professional help already stands near the top. Only the index's
    candidates for the person's needs, topics and formats are scored (``catalogue/index.py``).
    """
    person = signals or Signals()
    needs = _need_weights(person)
    pool = list(index.starters[:PER_KEY])
    if signals is not None:
        pool = index.candidates(sorted({*needs, *person.topics, *person.helpful_topics}), person.formats)
    dismissed, not_helpful, country, role_family = (
        person.dismissed,
        person.not_helpful,
        person.country,
        person.role_family,
    )
    kept = [e for e in pool if e.id not in dismissed and e.id not in not_helpful and e.reaches(country, role_family)]
    if signals is None:
        candidates = [Scored(e, starter_score(e), "start", None) for e in kept]
    else:
        candidates = _scored(kept, person, needs)
    picked = _diverse(candidates, limit - 1)
    pro, at = None, len(picked)
    if signals is not None and needs_moderate_or_worse(person):
        pro, at = _professional(index, person), 1
    reason = "professional" if at == 1 else "always"
    if pro is None:
        pro = next((e for e in index.professional if e.kind == "counsellor"), None)
    if pro is not None:
        picked.insert(min(at, len(picked)), Scored(pro, 0.0, reason, None))
    return [_render(i + 1, s, lang) for i, s in enumerate(picked)], pro is not None and at == 1


def _render(rank_no: int, scored: Scored, lang: str) -> Recommendation:
    entry = scored.entry
    shown = lang if lang in entry.versions else ("en" if "en" in entry.versions else sorted(entry.versions)[0])
    version = entry.versions[shown]
    fallback = shown != lang
    return Recommendation(
        rank=rank_no,
        resource_id=entry.id,
        kind=entry.kind,
        format=entry.format,
        topics=list(entry.topics),
        duration_minutes=entry.duration_minutes,
        professional_help=entry.professional_help,
        title=version["title"],
        summary=version["summary"],
        url=version.get("url"),
        language=shown,
        language_fallback=fallback,
        fallback_note=reasons.fallback_note(lang, shown) if fallback else None,
        reason=Reason(code=scored.reason, text=reasons.text(lang, scored.reason, scored.detail)),  # type: ignore[arg-type]
    )
