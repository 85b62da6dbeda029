"""Request and response bodies of check-ins. Requests are strict: unknown fields, wrong types (``true`` for a
score, ``3.0`` for an answer), out-of-range values and oversized notes are 422, never coerced."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from services.checkin.checkins.instruments import NOTE_MAX_CHARS
from services.checkin.checkins.scoring import Step

Lang = Literal["en", "es", "fr"]
Who5 = Annotated[int, Field(strict=True, ge=0, le=5)]
Phq = Annotated[int, Field(strict=True, ge=0, le=3)]
Mood = Annotated[int, Field(strict=True, ge=1, le=5)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WeeklyAnswers(Strict):
    """WHO-5 items (0 = at no time ... 5 = all of the time) and mood (1 very low ... 5 very good)."""

    who5_1: Who5
    who5_2: Who5
    who5_3: Who5
    who5_4: Who5
    who5_5: Who5
    mood: Mood


class CheckinCreate(Strict):
    """The weekly check-in. The app posts step-up answers to ``/v1/checkins/{id}/steps`` after."""

    answers: WeeklyAnswers
    note: str | None = Field(default=None, max_length=NOTE_MAX_CHARS, description="Free text; only you can read it.")
    talk_to_someone: StrictBool = Field(default=False, description="I would like to talk to someone.")
    share_note: StrictBool = Field(default=False, description="Share my note with the counsellor.")
    lang: Lang | None = Field(default=None, description="Form language; default from Accept-Language.")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="For crisis lines (ISO 3166-1).")

    @field_validator("note")
    @classmethod
    def _clean_note(cls, note: str | None) -> str | None:
        if note is None:
            return None
        if "\x00" in note:
            raise ValueError("the note contains a NUL character")
        try:
            note.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the note is not valid Unicode") from None
        return note if note.strip() else None

    @model_validator(mode="after")
    def _share_needs_note(self) -> CheckinCreate:
        if self.share_note and self.note is None:
            raise ValueError("share_note needs a note")
        return self


class Phq2Gad2Answers(Strict):
    """PHQ-9 items 1-2 (the PHQ-2) and GAD-7 items 1-2 (the GAD-2): 0 not at all ... 3 nearly every day."""

    phq9_1: Phq
    phq9_2: Phq
    gad7_1: Phq
    gad7_2: Phq


class Phq9Answers(Strict):
    """PHQ-9 items 3-9 (items 1-2 were answered in the previous step). Item 9 is about self-harm."""

    phq9_3: Phq
    phq9_4: Phq
    phq9_5: Phq
    phq9_6: Phq
    phq9_7: Phq
    phq9_8: Phq
    phq9_9: Phq


class Phq2Gad2Step(Strict):
    instrument: Literal["phq2_gad2"]
    answers: Phq2Gad2Answers


class Phq9Step(Strict):
    instrument: Literal["phq9"]
    answers: Phq9Answers


StepCreate = Annotated[Phq2Gad2Step | Phq9Step, Field(discriminator="instrument")]


class Score(BaseModel):
    who5_raw: int = Field(ge=0, le=25)
    who5_index: int = Field(ge=0, le=100)
    who5_band: Literal["good", "low", "very_low"]
    mood: int
    phq2: int | None = None
    phq2_positive: bool | None = None
    gad2: int | None = None
    gad2_positive: bool | None = None
    phq9: int | None = None
    phq9_band: str | None = None


class TrendPoint(BaseModel):
    iso_week: str
    who5_index: int
    mood: int


class NextStep(BaseModel):
    form: Step
    post_to: str


class CrisisResource(BaseModel):
    name: str
    phone: str | None = None
    sms: str | None = None
    url: str | None = None
    languages: list[str] = Field(default_factory=list)
    hours: str | None = None


class CrisisSupport(BaseModel):
    """Shown at once whenever risk screening fires, whatever other consents say."""

    message: str
    country: str | None
    emergency_number: str | None
    resources: list[CrisisResource]


class CheckinResult(BaseModel):
    id: str
    created_at: datetime
    iso_week: str
    lang: Lang
    score: Score
    trend: list[TrendPoint] = Field(description="Your WHO-5 index and mood, latest per week, oldest first.")
    trend_direction: Literal["up", "down", "steady"] | None
    next_step: NextStep | None
    crisis: CrisisSupport | None
    contact_requested: bool


class StepResult(BaseModel):
    id: str
    score: Score
    next_step: NextStep | None
    crisis: CrisisSupport | None


class CheckinRead(BaseModel):
    id: str
    created_at: datetime
    iso_week: str
    lang: Lang
    complete: bool
    next_step: Step | None
    score: Score
    note: str | None
    talk_to_someone: bool
    share_note: bool
    risk_flagged: bool


class CheckinList(BaseModel):
    items: list[CheckinRead]
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null: last page.")
