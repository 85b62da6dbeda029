"""``python -m services.recommender``: run the recommender service under uvicorn."""

from __future__ import annotations

import uvicorn

from services.recommender.app import create_app
from services.recommender.config import RecommenderSettings


def main() -> None:
    settings = RecommenderSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
