"""``python -m services.escalation``: run the escalation service under uvicorn."""

from __future__ import annotations

from services.escalation.app import create_app
from services.escalation.config import EscalationSettings
from shared.launch import load_settings
from shared.server import run


def main() -> None:
    settings = load_settings(EscalationSettings)
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
