"""``python -m services.recommender``: run the recommender service under uvicorn."""

from __future__ import annotations

from services.recommender.app import create_app
from services.recommender.config import RecommenderSettings
from shared.launch import load_settings
from shared.server import run


def main() -> None:
    settings = load_settings(RecommenderSettings)
    run(create_app(settings), settings)


if __name__ == "__main__":
    main()
