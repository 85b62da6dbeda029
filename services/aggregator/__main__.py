"""``python -m services.aggregator``: run the aggregator service under uvicorn."""

from __future__ import annotations

from services.aggregator.app import create_app
from services.aggregator.config import AggregatorSettings
from shared.launch import load_settings
from shared.server import run


def main() -> None:
    settings = load_settings(AggregatorSettings)
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
