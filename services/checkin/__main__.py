"""``python -m services.checkin``: run the checkin service under uvicorn."""

from __future__ import annotations

import uvicorn

from services.checkin.app import create_app
from services.checkin.config import CheckinSettings


def main() -> None:
    settings = CheckinSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
