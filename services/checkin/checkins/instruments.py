"""The check-in forms an app renders, in each supported language.

Texts come from ``data/instruments.json``; item ids, value ranges and the order of options come
from :mod:`services.checkin.scoring`, so a translation can never change how anything is scored.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from services.checkin.checkins.scoring import GAD2_ITEMS, PHQ9_ITEMS, STEP_ITEMS, WHO5_ITEMS, Step
from services.checkin.checkins.screening import DATA, SUPPORTED_LANGS

NOTE_MAX_CHARS = 2000


@cache
def _texts() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "instruments.json").read_text(encoding="utf-8"))
    data.pop("_about", None)
    return data


def _scale(labels: list[str], values: range) -> list[dict[str, Any]]:
    return [{"value": v, "label": labels[v - values.start]} for v in values]


def _items(t: dict[str, Any], ids: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for item_id in ids:
        instrument, _, number = item_id.partition("_")
        text = t[instrument]["items"][int(number) - 1]
        top = 5 if instrument == "who5" else 3
        # WHO-5 lists "All of the time" (5) first, as on the published form.
        options = _scale(t[instrument]["options"], range(0, top + 1))
        if instrument == "who5":
            options.reverse()
        out.append({"id": item_id, "instrument": instrument, "type": "choice", "text": text, "options": options})
    return out


@cache
def forms(lang: str) -> dict[str, Any]:
    """All forms in ``lang`` (one of :data:`SUPPORTED_LANGS`)."""
    t = _texts()[lang]
    weekly = [
        *_items(t, WHO5_ITEMS),
        {
            "id": "mood",
            "instrument": "mood",
            "type": "choice",
            "text": t["mood"]["text"],
            "options": _scale(t["mood"]["options"], range(1, 6)),
        },
        {"id": "note", "type": "text", "text": t["note"]["text"], "required": False, "max_length": NOTE_MAX_CHARS},
        {"id": "talk_to_someone", "type": "boolean", "text": t["talk_to_someone"]["text"], "required": False},
        {"id": "share_note", "type": "boolean", "text": t["share_note"]["text"], "required": False},
    ]
    steps = {step: _items(t, STEP_ITEMS[step]) for step in Step}
    step_stems = {Step.phq2_gad2: t["forms"]["phq2_gad2"], Step.phq9: t["forms"]["phq9"]}
    return {
        "lang": lang,
        "forms": [
            {
                "id": "weekly",
                "post_to": "/v1/checkins",
                **t["forms"]["weekly"],
                "stem": t["who5"]["stem"],
                "items": weekly,
            },
            *(
                {"id": step.value, "post_to": "/v1/checkins/{id}/steps", **step_stems[step], "items": steps[step]}
                for step in Step
            ),
        ],
    }


def check_complete() -> None:
    """Every language has every text (run at start-up and by the tests): ValueError otherwise."""
    expected = {"who5": (len(WHO5_ITEMS), 6), "phq9": (len(PHQ9_ITEMS), 4), "gad7": (len(GAD2_ITEMS), 4)}
    for lang in SUPPORTED_LANGS:
        t = _texts().get(lang)
        if t is None:
            raise ValueError(f"instruments.json has no '{lang}' texts")
        for instrument, (items, options) in expected.items():
            if len(t[instrument]["items"]) < items or len(t[instrument]["options"]) != options:
                raise ValueError(f"instruments.json: '{lang}' {instrument} is incomplete")
        if len(t["mood"]["options"]) != 5:
            raise ValueError(f"instruments.json: '{lang}' mood is incomplete")
        forms(lang)
