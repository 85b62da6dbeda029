"""``python -m services.escalation``: run the escalation service under uvicorn."""

from __future__ import annotations

import uvicorn

from services.escalation.app import create_app
from services.escalation.config import EscalationSettings


def main() -> None:
    settings = EscalationSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
