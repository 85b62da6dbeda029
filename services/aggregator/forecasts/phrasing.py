"""The timing around a playbook suggestion, in en, es and fr (the suggestion itself is the
playbook's text for the trigger's kind)."""

from __future__ import annotations

from datetime import date

LEAD = {
    "en": "From {advise_on}, {days} days before {trigger} ({starts_on}): {suggestion}",
    "es": "A partir del {advise_on}, {days} días antes {trigger} ({starts_on}): {suggestion}",
    "fr": "À partir du {advise_on}, {days} jours avant {trigger} ({starts_on}) : {suggestion}",
}
KINDS = {
    "deadline": {"en": "the deadline", "es": "de la fecha límite", "fr": "l'échéance"},
    "reorganisation": {"en": "the reorganisation", "es": "de la reorganización", "fr": "la réorganisation"},
    "layoff_announcement": {
        "en": "the layoff announcement",
        "es": "del anuncio de despidos",
        "fr": "l'annonce de licenciements",
    },
    "policy_change": {"en": "the policy change", "es": "del cambio de política", "fr": "le changement de politique"},
}


def timed(lang: str, kind: str, label: str | None, starts_on: date, advise_on: date, suggestion: str) -> str:
    trigger = KINDS.get(kind, KINDS["deadline"]).get(lang) or KINDS["deadline"]["en"]
    if label:
        trigger = f"{trigger} “{label}”"
    return LEAD.get(lang, LEAD["en"]).format(
        advise_on=advise_on.isoformat(),
        days=(starts_on - advise_on).days,
        trigger=trigger,
        starts_on=starts_on.isoformat(),
        suggestion=suggestion,
    )
