"""Declare every stream and the consent KV bucket from the topology, as the ``ops`` user.

Services may not create or update streams (a stream config can source any other stream, which
would let a service read beyond its purposes), so this runs before them: ``kinwell up`` calls it,
docker-compose runs it as a one-shot container, Kubernetes as a Job (``kinwell nats provision``).
It is idempotent: existing streams are updated to the topology's configuration.
"""

from __future__ import annotations

from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from shared import topology
from shared.bus.connection import tls_context

DUPLICATE_WINDOW_S = 120.0


def stream_config(spec: topology.StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        max_age=spec.max_age.total_seconds(),  # sized to the stream's consumers (shared/topology.py)
    )


async def provision(js: JetStreamContext, replicas: int = 1) -> list[str]:
    """Create or update every topology stream and the KV bucket; returns what was declared."""
    declared = []
    for spec in topology.STREAMS.values():
        config = stream_config(spec, replicas)
        try:
            await js.stream_info(spec.name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
        declared.append(spec.name)
    try:
        await js.key_value(topology.KV_BUCKET)
    except (NotFoundError, BadRequestError):
        await js.create_key_value(
            KeyValueConfig(
                bucket=topology.KV_BUCKET,
                history=1,
                storage=StorageType.FILE,
                replicas=replicas,
                description="Current consent per <pseudonym>.<purpose>; written only by consent",
            )
        )
    declared.append(topology.KV_STREAM)
    return declared


async def provision_url(url: str, ops_password: str, replicas: int = 1, tls_ca_file: Path | None = None) -> list[str]:
    nc = await nats.connect(
        servers=url.split(","),
        user="ops",
        password=ops_password,
        inbox_prefix="_INBOX_ops",
        tls=tls_context(tls_ca_file),
    )
    try:
        return await provision(nc.jetstream(), replicas)
    finally:
        await nc.close()
