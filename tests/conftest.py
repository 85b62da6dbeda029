"""Shared pytest fixtures. Fixture families live in their own modules and are imported here."""

from tests.dbfixtures import *  # noqa: F403 - throwaway databases (make_db_url, db_url)
from tests.natsfixtures import *  # noqa: F403 - real NATS server (nats_server, nats_connect)
from tests.servicefixtures import *  # noqa: F403 - real services over uvicorn (start_service, token)
