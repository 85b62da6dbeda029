"""``python -m services.consent``: run the consent service under uvicorn."""

from __future__ import annotations

import uvicorn

from services.consent.app import create_app
from services.consent.config import ConsentSettings


def main() -> None:
    settings = ConsentSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
