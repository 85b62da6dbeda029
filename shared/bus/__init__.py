"""NATS JetStream plumbing: connection, transactional outbox, durable consumers."""

from shared.bus.connection import Bus
from shared.bus.consumer import Consumer, ProcessedEvent
from shared.bus.outbox import OutboxMessage, OutboxRelay, stage, stage_raw

__all__ = ["Bus", "Consumer", "OutboxMessage", "OutboxRelay", "ProcessedEvent", "stage", "stage_raw"]
