"""Scoring, cut-offs and the step-up path of the check-in instruments (sources: docs/checkin.md).

* WHO-5 Well-Being Index: five items scored 0-5, raw 0-25, index = raw x 4 (0-100).
  Raw < 13 indicates poor well-being and is the usual trigger for depression screening; raw <= 7
  (index <= 28) indicates likely depression (Topp et al. 2015).
* PHQ-2 (PHQ-9 items 1-2) and GAD-2 (GAD-7 items 1-2): 0-6 each, positive at >= 3
  (Kroenke et al. 2003; Kroenke et al. 2007).
* PHQ-9: 0-27; 5/10/15/20 are the mild / moderate / moderately severe / severe thresholds
  (Kroenke et al. 2001); item 9 asks about thoughts of death or self-harm.

Step-up: weekly (WHO-5 + mood) -> if WHO-5 raw < 13: ``phq2_gad2`` -> if PHQ-2 >= 3: ``phq9``
(items 3-9 only: items 1-2 were just answered as the PHQ-2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

WHO5_ITEMS: tuple[str, ...] = tuple(f"who5_{i}" for i in range(1, 6))
PHQ9_ITEMS: tuple[str, ...] = tuple(f"phq9_{i}" for i in range(1, 10))
GAD2_ITEMS: tuple[str, ...] = ("gad7_1", "gad7_2")
PHQ2_ITEMS: tuple[str, ...] = PHQ9_ITEMS[:2]

_WHO5, _PHQ2, _GAD2, _PHQ9 = (frozenset(items) for items in (WHO5_ITEMS, PHQ2_ITEMS, GAD2_ITEMS, PHQ9_ITEMS))

WHO5_ITEM_MAX = 5
PHQ_ITEM_MAX = 3
MOOD_RANGE = (1, 5)

WHO5_STEP_UP_BELOW = 13
WHO5_VERY_LOW_AT_MOST = 7
PHQ2_POSITIVE_AT = 3
GAD2_POSITIVE_AT = 3
PHQ9_SEVERE_AT = 20
PHQ9_BANDS: tuple[tuple[int, str], ...] = (
    (20, "severe"),
    (15, "moderately_severe"),
    (10, "moderate"),
    (5, "mild"),
    (0, "minimal"),
)


class Step(StrEnum):
    """A step-up form the app posts to ``/v1/checkins/{id}/steps``."""

    phq2_gad2 = "phq2_gad2"
    phq9 = "phq9"


STEP_ITEMS: dict[Step, tuple[str, ...]] = {
    Step.phq2_gad2: (*PHQ2_ITEMS, *GAD2_ITEMS),
    Step.phq9: PHQ9_ITEMS[2:],
}


def who5_raw(answers: dict[str, int]) -> int:
    return sum(answers[item] for item in WHO5_ITEMS)


def who5_index(raw: int) -> int:
    return raw * 4


def who5_band(raw: int) -> str:
    if raw <= WHO5_VERY_LOW_AT_MOST:
        return "very_low"
    return "low" if raw < WHO5_STEP_UP_BELOW else "good"


def phq9_band(total: int) -> str:
    return next(name for threshold, name in PHQ9_BANDS if total >= threshold)


@dataclass
class Scores:
    """Everything scored so far for one check-in (stored encrypted, never in the clear).

    Sums are computed when answers arrive (they are read several times per request); add
    answers with :meth:`add` so that they stay current.
    """

    answers: dict[str, int] = field(default_factory=dict)
    mood: int = 3
    next_step: Step | None = None
    who5_raw: int = field(init=False, default=0)
    phq2: int | None = field(init=False, default=None)
    gad2: int | None = field(init=False, default=None)
    phq9: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._derive()

    def add(self, answers: dict[str, int]) -> None:
        self.answers.update(answers)
        self._derive()

    def _derive(self) -> None:
        self.who5_raw = self._sum(WHO5_ITEMS, _WHO5) or 0
        self.phq2 = self._sum(PHQ2_ITEMS, _PHQ2)
        self.gad2 = self._sum(GAD2_ITEMS, _GAD2)
        self.phq9 = self._sum(PHQ9_ITEMS, _PHQ9)

    def _sum(self, items: tuple[str, ...], required: frozenset[str]) -> int | None:
        answers = self.answers
        if not required <= answers.keys():
            return None
        return sum(map(answers.__getitem__, items))

    @property
    def who5_index(self) -> int:
        return who5_index(self.who5_raw)

    @property
    def phq9_item9(self) -> int | None:
        return self.answers.get("phq9_9")

    # --- step-up -------------------------------------------------------------------------------

    def after_weekly(self) -> Step | None:
        return Step.phq2_gad2 if self.who5_raw < WHO5_STEP_UP_BELOW else None

    def after_step(self, step: Step) -> Step | None:
        if step is Step.phq2_gad2:
            phq2 = self.phq2
            return Step.phq9 if phq2 is not None and phq2 >= PHQ2_POSITIVE_AT else None
        return None

    def summary(self) -> dict[str, Any]:
        """The scores an employee sees (and exports)."""
        raw = self.who5_raw
        out: dict[str, Any] = {"who5_raw": raw, "who5_index": raw * 4, "who5_band": who5_band(raw), "mood": self.mood}
        if self.phq2 is not None:
            out["phq2"] = self.phq2
            out["phq2_positive"] = self.phq2 >= PHQ2_POSITIVE_AT
        if self.gad2 is not None:
            out["gad2"] = self.gad2
            out["gad2_positive"] = self.gad2 >= GAD2_POSITIVE_AT
        if self.phq9 is not None:
            out["phq9"] = self.phq9
            out["phq9_band"] = phq9_band(self.phq9)
        return out

    # --- storage -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"answers": self.answers, "mood": self.mood, "next_step": self.next_step}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scores:
        step = data.get("next_step")
        return cls(answers=dict(data["answers"]), mood=int(data["mood"]), next_step=Step(step) if step else None)
