"""Shared pytest fixtures. Fixture families live in their own modules and are imported here."""

import os

from hypothesis import settings

from tests.dbfixtures import *  # noqa: F403 - throwaway databases (make_db_url, db_url)
from tests.natsfixtures import *  # noqa: F403 - real NATS server (nats_server, nats_connect)
from tests.servicefixtures import *  # noqa: F403 - real services over uvicorn (start_service, token)

# Property tests explore new examples on every local run; CI (.ci/run) pins them
# (KINWELL_HYPOTHESIS_PROFILE=ci) so that a landing never hinges on a random draw, nor on how busy
# the machine is (no per-example deadline). What a local run
# finds becomes an explicit regression test.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.load_profile(os.environ.get("KINWELL_HYPOTHESIS_PROFILE", "default"))
