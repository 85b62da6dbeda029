"""The configurable playbook: which intervention to suggest for a change, in en, es and fr.

Rules map a trigger kind (or none) to a code; texts map each code to a sentence per language.
``KINWELL_AGGREGATOR_PLAYBOOK_PATH`` points at a replacement file of the same shape; it is
validated at start-up (every code used must have all three languages).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, model_validator

LANGUAGES = ("en", "es", "fr")
DEFAULT_PATH = Path(__file__).with_name("playbook.json")


class PlaybookRule(BaseModel):
    trigger_kind: str | None
    code: str


class Playbook(BaseModel):
    rules: list[PlaybookRule]
    texts: dict[str, dict[str, str]]

    @model_validator(mode="after")
    def _complete(self) -> Playbook:
        for rule in self.rules:
            missing = [lang for lang in LANGUAGES if lang not in self.texts.get(rule.code, {})]
            if missing:
                raise ValueError(f"playbook code {rule.code} lacks {','.join(missing)}")
        if not any(r.trigger_kind is None for r in self.rules):
            raise ValueError("the playbook needs a rule for changes with no trigger")
        return self

    def code_for(self, trigger_kind: str | None) -> str:
        for rule in self.rules:
            if rule.trigger_kind == trigger_kind:
                return rule.code
        return next(r.code for r in self.rules if r.trigger_kind is None)

    def text(self, code: str, lang: str) -> str:
        texts = self.texts.get(code, {})
        return texts.get(lang) or texts.get("en", "")


@lru_cache(maxsize=8)
def load(path: Path | None = None) -> Playbook:
    return Playbook.model_validate(json.loads((path or DEFAULT_PATH).read_text(encoding="utf-8")))
