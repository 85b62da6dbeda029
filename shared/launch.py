"""Start-up of a service process: settings that are unsafe stop it with one clear line.

A pydantic traceback buries the reason under forty lines of frames; an operator needs the
setting's name (never its value: the settings hide input in their errors).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from shared.settings import ServiceSettings, SettingsError

S = TypeVar("S", bound=ServiceSettings)


def _reason(exc: ValidationError | SettingsError) -> str:
    if isinstance(exc, SettingsError):
        return str(exc)
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_settings(cls: type[S]) -> S:
    """``cls()`` from the environment, or exit (status 1) naming what is wrong."""
    try:
        return cls()
    except (ValidationError, SettingsError) as exc:
        raise SystemExit(
            f"kinwell: refusing to start: {_reason(exc)} "
            "(settings come from KINWELL_<SETTING> and KINWELL_<SERVICE>_<SETTING>; see docs/operations.md)"
        ) from None
