"""Learning paths: ordered modules with prerequisites, and your progress through them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModuleStatus = Literal["completed", "skipped", "available", "locked"]


class ProgressCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    module_id: str = Field(pattern=r"^m[0-9]{1,2}$")
    status: Literal["completed", "skipped"]
    feedback: Literal["helpful", "not_helpful", "too_hard"] | None = None


class ModuleRead(BaseModel):
    id: str
    resource_id: str
    title: str
    requires: list[str]
    status: ModuleStatus


class NextStep(BaseModel):
    module_id: str
    resource_id: str
    title: str
    gentler: bool = Field(description="A gentler resource for this module, after feedback that the last was hard.")


class PathRead(BaseModel):
    id: str
    topic: str
    title: str
    modules: list[ModuleRead]
    next: NextStep | None = Field(description="What to do next; null once every module is done.")
    completed: int
    total: int


class PathList(BaseModel):
    personalised: bool = Field(description="False without the personalization consent: no progress is kept.")
    items: list[PathRead]
