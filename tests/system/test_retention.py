"""Every provisioned stream has the retention the topology sizes for its consumers (issue 11 item 4):
nothing, dead letters included, is kept forever; the consent bucket keeps current state only."""

from __future__ import annotations

import asyncio

from shared import topology
from shared.natsserver import NatsServer


def test_provisioned_streams_expire_messages_as_the_topology_says(nats_server: NatsServer) -> None:
    async def body() -> dict[str, tuple[float, int]]:
        import nats

        nc = await nats.connect(**nats_server.connect_kwargs("ops"))
        try:
            js = nc.jetstream()
            seen = {}
            for name in (*topology.STREAMS, topology.KV_STREAM):
                config = (await js.stream_info(name)).config
                seen[name] = (config.max_age or 0.0, config.max_msgs_per_subject or 0)
            return seen
        finally:
            await nc.close()

    seen = asyncio.run(body())
    for name, spec in topology.STREAMS.items():
        assert seen[name][0] == spec.max_age.total_seconds() > 0, name
    # The bucket: no age limit (a grant must not lapse by itself), one value per key.
    assert seen[topology.KV_STREAM] == (0.0, 1)
