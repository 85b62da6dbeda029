"""Start-up of a service process: ``python -m services.<name>``, and settings that are unsafe
stop it with one clear line.

A pydantic traceback buries the reason under forty lines of frames; an operator needs the
setting's name (never its value: the settings hide input in their errors).
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar, get_args, get_type_hints

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


def settings_type(create_app: Any) -> type[ServiceSettings]:
    """The settings class a service's ``create_app(settings: XSettings | None = None)`` takes."""
    hint = get_type_hints(create_app)["settings"]
    found = [a for a in (get_args(hint) or (hint,)) if isinstance(a, type) and issubclass(a, ServiceSettings)]
    if len(found) != 1:
        raise TypeError(f"{create_app.__module__}.create_app must take one ServiceSettings subclass")
    return found[0]


def serve(package: str) -> None:
    """Run the service ``package`` (``services.<name>``) under uvicorn: every service's ``__main__``.

    What differs between services is in their ``app.create_app``, including which settings it
    takes (its signature), so the entry point is this one function rather than a copy per service.
    """
    from shared.server import run

    create_app = importlib.import_module(f"{package}.app").create_app
    settings = load_settings(settings_type(create_app))
    run(create_app(settings), settings)
