"""Contact preferences an employee may give with the escalation purpose."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from services.consent.policy.schemas import Strict

Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"),
]
Hours = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")]
TimeZone = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z]{1,20}(/[A-Za-z0-9_+-]{1,30}){0,2}$")]


class ContactPreferences(Strict):
    """How a counsellor may reach the employee once a crisis case is confirmed (escalation only)."""

    preferred_channel: Literal["phone", "sms", "email"]
    phone: Phone | None = None
    email: Email | None = None
    hours: Hours | None = Field(default=None, description="Local hours, e.g. 09:00-18:00.")
    timezone: TimeZone | None = Field(default=None, description="IANA time zone, e.g. Europe/Paris.")

    @model_validator(mode="after")
    def _reachable(self) -> ContactPreferences:
        needed = "email" if self.preferred_channel == "email" else "phone"
        if getattr(self, needed) is None:
            raise ValueError("the preferred channel needs its contact field")
        return self
