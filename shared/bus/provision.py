"""Declare every stream and the KV buckets (consent, subject keys) from the topology, as ``ops``.

Services may not create or update streams (a stream config can source any other stream, which
would let a service read beyond its purposes), so this runs before them: ``kinwell up`` calls it,
docker-compose runs it as a one-shot container, Kubernetes as a Job (``kinwell nats provision``).
It is idempotent: existing streams are updated to the topology's configuration.

A cluster that is still forming (a StatefulSet whose pods start together, a node restarting)
answers for a while with "JetStream system temporarily unavailable" (no metadata leader yet) or
"no suitable peers for placement" (a peer not yet seen as online): ``provision_url`` retries those,
and a connection the cluster does not yet accept, for up to ``PROVISION_PATIENCE_S``, then fails
with the last error. Any other refusal (a bad config, a wrong password) fails at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nats
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_exponential

from shared import topology
from shared.bus.connection import tls_context

log = logging.getLogger("kinwell.provision")

DUPLICATE_WINDOW_S = 120.0
PROVISION_PATIENCE_S = 60.0
# JetStream's codes for a placement the cluster cannot make *yet*: no suitable peers (a peer
# offline) and insufficient resources (a peer not yet reporting its storage).
_PLACEMENT_NOT_YET = {10005, 10023}


def stream_config(spec: topology.StreamSpec, replicas: int = 1) -> StreamConfig:
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
        max_age=spec.max_age.total_seconds(),  # sized to the stream's consumers (shared/topology.py)
    )
    if spec.append_only:
        # Audit heads: once anchored, not even ops can take one back (the server refuses both
        # for every user; only deleting the whole stream would, which the alert on a missing
        # anchor catches). Direct get lets a service read its own last anchor.
        config.deny_delete, config.deny_purge, config.allow_direct = True, True, True
    return config


def event_key_stream_config(replicas: int = 1) -> StreamConfig:
    """The event-key bucket, as nats-py's ``create_key_value`` would declare it, but with message
    deletion allowed: erasure deletes a subject's key with ``STREAM.MSG.DELETE``, which overwrites
    it on disk (a KV purge only drops it from the index), and KV buckets deny that by default."""
    return StreamConfig(
        name=topology.EVENT_KEY_STREAM,
        description="Per-subject event keys, wrapped; erased on the subject's erasure (shared.eventkeys)",
        subjects=[f"$KV.{topology.EVENT_KEY_BUCKET}.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        allow_direct=True,
        allow_rollup_hdrs=True,
        deny_delete=False,
        discard=DiscardPolicy.NEW,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_msgs_per_subject=1,
        max_consumers=-1,
        max_msgs=-1,
    )


async def provision(js: JetStreamContext, replicas: int = 1) -> list[str]:
    """Create or update every topology stream and the KV bucket; returns what was declared."""
    declared = []
    configs = [stream_config(spec, replicas) for spec in topology.STREAMS.values()]
    for config in [*configs, event_key_stream_config(replicas)]:
        try:
            await js.stream_info(str(config.name))
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
        declared.append(str(config.name))
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


def cluster_not_ready(exc: BaseException) -> bool:
    """The errors of a cluster that is still forming, which go away without anyone acting."""
    if isinstance(exc, BadRequestError):
        return exc.err_code in _PLACEMENT_NOT_YET
    # 503: no metadata leader yet; no responders: JetStream not yet up on the node we reached.
    return isinstance(exc, ServiceUnavailableError | NoRespondersError | NoServersError | NatsTimeoutError | OSError)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("NATS cluster not ready for provisioning (%s); retrying", type(exc).__name__)


async def provision_url(
    url: str,
    ops_password: str,
    replicas: int = 1,
    tls_ca_file: Path | None = None,
    patience_s: float = PROVISION_PATIENCE_S,
) -> list[str]:
    retrying = AsyncRetrying(
        retry=retry_if_exception(cluster_not_ready),
        stop=stop_after_delay(patience_s),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        before_sleep=_log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _provision_once(url, ops_password, replicas, tls_ca_file)
    raise AssertionError("unreachable: tenacity re-raises the last error")


async def _provision_once(url: str, ops_password: str, replicas: int, tls_ca_file: Path | None) -> list[str]:
    nc = await nats.connect(
        servers=url.split(","),
        user="ops",
        password=ops_password,
        inbox_prefix="_INBOX_ops",
        tls=tls_context(tls_ca_file),
        allow_reconnect=False,
        connect_timeout=2,
    )
    try:
        return await provision(nc.jetstream(), replicas)
    finally:
        await nc.close()
