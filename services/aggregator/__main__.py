"""``python -m services.aggregator``: run the aggregator service under uvicorn."""

from __future__ import annotations

import uvicorn

from services.aggregator.app import create_app
from services.aggregator.config import AggregatorSettings


def main() -> None:
    settings = AggregatorSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
