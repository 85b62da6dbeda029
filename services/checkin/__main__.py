"""``python -m services.checkin``: run the checkin service under uvicorn."""

from __future__ import annotations

from services.checkin.app import create_app
from services.checkin.config import CheckinSettings
from shared.launch import load_settings
from shared.server import run


def main() -> None:
    settings = load_settings(CheckinSettings)
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
