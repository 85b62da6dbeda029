"""``python -m services.consent``: run the consent service under uvicorn."""

from __future__ import annotations

from services.consent.app import create_app
from services.consent.config import ConsentSettings
from shared.launch import load_settings
from shared.server import run


def main() -> None:
    settings = load_settings(ConsentSettings)
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
