"""The base of every event contract.

An event is a past-tense fact, versioned in its ``type`` (``<producer>.<event>.v<N>``) and in the
NATS subject it travels on (``<producer>.<purpose>.<event>.v<N>``). A breaking change is a new
``.vN`` type, never an edit. Contracts forbid unknown fields so that a producer cannot smuggle
data past a consumer's validation.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base class: an id (the JetStream de-duplication key) and a ``type`` literal per subclass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Subject template; ``{field}`` placeholders are filled from the event's own fields.
    subject_template: ClassVar[str] = ""

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; the NATS de-duplication key.")

    @property
    def subject(self) -> str:
        """The NATS subject this event is published on."""
        template = self.subject_template or str(self.type)  # type: ignore[attr-defined]
        return template.format(**{k: getattr(self, k) for k in type(self).model_fields})
