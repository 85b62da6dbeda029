"""The NATS topology of Kinwell: one source of truth for streams, consumers and their owners.

Pure data, no I/O. The provisioner (``kinwell nats provision``, as the ``ops`` user) declares the
streams from it; services create their consumers from it; ``shared.natsperm`` renders the
broker's permission file from it, so the broker enforces purpose limitation: a service can only
read the subjects of the consumers listed here and only publish under its own prefix. Services
may not create or update streams at all: a service that could would be able to give its own
stream another stream as a source and so read data outside its purposes.

Subjects are named ``<producer>.<purpose>.<event>.v<N>`` (e.g. ``checkin.personalization.
submitted.v1``). The consumer filters select a *purpose*, so a new purpose is never delivered to a
service until it is added here (and the permission file regenerated). The one exception to the
producer prefix is ``contribution.>``: de-identified contributions that checkin, recommender and
escalation publish and that only the aggregator reads.

Consumers are created with ``ConsumerConfig(name=spec.name, durable_name=spec.name,
filter_subject=spec.filter_subject)`` (``js.pull_subscribe(spec.filter_subject, durable=spec.name,
stream=spec.stream)`` does exactly that). nats-py then uses the API subject
``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``, the only consumer-create form the broker
allows, because it names the filter and the server rejects a body whose filter differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.settings import SERVICES


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its subjects and the services that publish into it.

    ``declared_by`` names the services that own (publish into) the stream and check at start-up
    that it exists; only the provisioner creates or updates it. ``max_age`` is how long a message
    (dead letters included) is kept: long enough for its consumers (see ``CONSUMER_OUTAGE``), no
    longer, since streams hold facts about people that erasure cannot reach inside a message.
    """

    name: str
    subjects: tuple[str, ...]
    declared_by: tuple[str, ...]
    max_age: timedelta = timedelta(days=7)
    # Nobody, the ops user included, may delete or purge its messages (deny_delete, deny_purge).
    append_only: bool = False


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer a service reads one purpose through."""

    service: str
    stream: str
    filter_subject: str

    @property
    def name(self) -> str:
        """Durable consumer name, derived so that it is unique per (service, filter)."""
        return consumer_name(self.service, self.filter_subject)


def consumer_name(service: str, filter_subject: str) -> str:
    """``("recommender", "checkin.personalization.>")`` -> ``recommender__checkin_personalization``.

    Consumer names may not contain ``.``, ``*`` or ``>``, hence the substitutions.
    """
    filt = filter_subject.removesuffix(".>")
    filt = "all" if filt == ">" else filt
    return f"{service}__{filt.replace('.', '_').replace('*', 'any')}"


# Least privilege for platform secrets: what each service holds, and nothing else (settings drop
# the rest; production requires exactly these; `kinwell up` hands each process only these). The
# aggregator must not hold the pseudonym, period or master key: with them and a list of employee
# ids it could link contributions back to people. dev_jwt_secret (embedded only) is not listed.
SERVICE_SECRETS: dict[str, tuple[str, ...]] = {
    # pseudonyms, the directory (master key), signed consent receipts
    "consent": ("pseudonym_key", "master_key", "receipt_signing_key", "manager_scope_key"),
    # pseudonyms, per-period contribution tokens, subjects' data keys, outbound webhooks
    "checkin": ("pseudonym_key", "period_key", "master_key", "webhook_key"),
    # pseudonyms of the employees asking for their own recommendations and profile, per-period
    # tokens of engagement counters
    "recommender": ("pseudonym_key", "period_key"),
    # outbound webhooks; the managers' scope references (never a pseudonym)
    "aggregator": ("webhook_key", "manager_scope_key"),
    # pseudonyms (counsellors' and employees' tokens), per-period tokens of SLA contributions,
    # subjects' data keys (sealed case notes), webhooks
    "escalation": ("pseudonym_key", "period_key", "master_key", "webhook_key"),
}
# Every service keys its own audit chain (shared.audit); the services that seal or open event
# fields hold the key that unwraps subjects' event keys (shared.eventkeys) — never the aggregator.
for _service in SERVICE_SECRETS:
    SERVICE_SECRETS[_service] += ("audit_key",)
for _service in ("consent", "checkin", "recommender", "escalation"):
    SERVICE_SECRETS[_service] += ("event_key_kek",)

KV_BUCKET = "consent"
"""Consent state: stream ``KV_consent``, written only by consent, watched by the services below."""
KV_STREAM = f"KV_{KV_BUCKET}"
KV_WRITER = "consent"
KV_WATCHERS: tuple[str, ...] = ("checkin", "recommender", "escalation")

EVENT_KEY_BUCKET = "subject_keys"
"""Per-subject event keys (``shared.eventkeys``): stream ``KV_subject_keys``. A sealed event field
opens only while its subject's key is here; consent erases the key on erasure."""
EVENT_KEY_STREAM = f"KV_{EVENT_KEY_BUCKET}"
# Producers of sealed events create a subject's key if it is missing; consumers only read it.
EVENT_KEY_WRITERS: tuple[str, ...] = ("consent", "checkin")
EVENT_KEY_READERS: tuple[str, ...] = ("consent", "checkin", "recommender", "escalation")
EVENT_KEY_ERASER = "consent"

AUDIT_STREAM = "AUDIT"
"""Heads of every service's keyed audit chain (``shared.audit``): ``audit.<service>.head.v1``.
Declared with deny_delete and deny_purge, so a service cannot take back what it anchored."""

# Producers of de-identified contributions; all of them may declare the (identical) stream.
CONTRIBUTORS: tuple[str, ...] = ("checkin", "recommender", "escalation")
CONTRIBUTION_READER = "aggregator"
# Services that answer consent's export / access-log requests about a data subject.
SUBJECT_REQUEST_RESPONDERS: tuple[str, ...] = tuple(s for s in SERVICES if s != "consent")


# Retention. A durable consumer that is down longer than its stream's max_age misses what expired
# meanwhile, so every stream keeps messages for at least the longest outage a consumer is expected
# to survive unattended (a long weekend plus a working week to notice and repair), dead letters
# included (operators get a metric and an alert the moment one is written: docs/operations.md).
# SUBJECT can be shorter: consent re-publishes every open erasure request until each service has
# acknowledged it (erasure_retry_after_seconds), so a consumer back after it expired gets the
# next copy. The KV bucket has no age limit: it is the current consent, not history (history=1).
CONSUMER_OUTAGE = timedelta(days=7)
# Audit heads hold no personal data (a service, a sequence number, a MAC). A rewrite of the access
# log is checked against the newest anchor only, and services re-anchor their head periodically
# even when it has not moved, so the newest is never older than that period: a month is plenty.
AUDIT_ANCHORS_KEPT = timedelta(days=31)
RESENT_UNTIL_ACKED = timedelta(days=3)


def _own(service: str) -> StreamSpec:
    # Each service's own stream also holds its dead letters (<svc>.dlq.>) and erasure acks.
    return StreamSpec(service.upper(), (f"{service}.>",), (service,), CONSUMER_OUTAGE)


STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        _own("consent"),
        StreamSpec("SUBJECT", ("subject.erasure.>",), ("consent",), RESENT_UNTIL_ACKED),
        StreamSpec("HRIS", ("hris.>",), ("consent",), CONSUMER_OUTAGE),
        _own("checkin"),
        _own("recommender"),
        _own("aggregator"),
        _own("escalation"),
        StreamSpec("CONTRIBUTION", ("contribution.>",), (*CONTRIBUTORS, CONTRIBUTION_READER), CONSUMER_OUTAGE),
        StreamSpec(AUDIT_STREAM, ("audit.>",), SERVICES, AUDIT_ANCHORS_KEPT, append_only=True),
    )
}

CONSUMERS: tuple[ConsumerSpec, ...] = (
    # consent collects every service's erasure acknowledgements.
    ConsumerSpec("consent", "CHECKIN", "checkin.erasure.>"),
    ConsumerSpec("consent", "RECOMMENDER", "recommender.erasure.>"),
    ConsumerSpec("consent", "AGGREGATOR", "aggregator.erasure.>"),
    ConsumerSpec("consent", "ESCALATION", "escalation.erasure.>"),
    ConsumerSpec("checkin", "SUBJECT", "subject.erasure.>"),
    ConsumerSpec("checkin", "HRIS", "hris.subject.>"),
    ConsumerSpec("checkin", "HRIS", "hris.org.>"),  # org tree: tiny-unit roll-up of contributions
    ConsumerSpec("checkin", "CONSENT", "consent.>"),
    ConsumerSpec("recommender", "CHECKIN", "checkin.personalization.>"),
    ConsumerSpec("recommender", "SUBJECT", "subject.erasure.>"),
    ConsumerSpec("recommender", "HRIS", "hris.personalization.>"),
    ConsumerSpec("recommender", "HRIS", "hris.subject.>"),  # org units of engagement counters
    ConsumerSpec("recommender", "HRIS", "hris.org.>"),  # and their tree (tiny-unit roll-up)
    ConsumerSpec("recommender", "CONSENT", "consent.>"),
    ConsumerSpec("aggregator", "CONTRIBUTION", "contribution.>"),
    ConsumerSpec("aggregator", "HRIS", "hris.org.>"),
    ConsumerSpec("aggregator", "HRIS", "hris.trigger.>"),
    ConsumerSpec("aggregator", "SUBJECT", "subject.erasure.>"),
    ConsumerSpec("escalation", "CHECKIN", "checkin.escalation.>"),
    ConsumerSpec("escalation", "SUBJECT", "subject.erasure.>"),
    ConsumerSpec("escalation", "HRIS", "hris.subject.>"),  # org units of SLA contributions
    ConsumerSpec("escalation", "HRIS", "hris.org.>"),  # and their tree (tiny-unit roll-up)
    ConsumerSpec("escalation", "CONSENT", "consent.>"),
)


@dataclass(frozen=True)
class RequestSpec:
    """A core request/reply subject between two services (outside every stream, never stored)."""

    subject: str
    requester: str
    responder: str


# Point-to-point questions whose answer is decided at the moment it is asked (so not an event):
# ``rpc.<responder>.<what>.v<N>``. The requester may only publish it, the responder only subscribe
# and answer once (allow_responses).
REQUESTS: tuple[RequestSpec, ...] = (
    RequestSpec("rpc.consent.contact.v1", requester="escalation", responder="consent"),
    RequestSpec("rpc.escalation.casenote.v1", requester="checkin", responder="escalation"),
)


def requests_by(service: str) -> tuple[RequestSpec, ...]:
    return tuple(r for r in REQUESTS if r.requester == service)


def requests_to(service: str) -> tuple[RequestSpec, ...]:
    return tuple(r for r in REQUESTS if r.responder == service)


def consumers_for(service: str) -> tuple[ConsumerSpec, ...]:
    """The consumers ``service`` creates and reads from."""
    return tuple(c for c in CONSUMERS if c.service == service)


def streams_declared_by(service: str) -> tuple[StreamSpec, ...]:
    """The streams ``service`` publishes into and waits for at start-up (not the KV stream)."""
    return tuple(s for s in STREAMS.values() if service in s.declared_by)


def _covers(pattern: str, subject: str) -> bool:
    """True if the stream subject ``pattern`` (``*``/``>`` wildcards) matches ``subject``."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, part in enumerate(pat):
        if part == ">":
            return len(sub) > i
        if i >= len(sub) or part not in ("*", sub[i]):
            return False
    return len(pat) == len(sub)


def stream_for_subject(subject: str) -> StreamSpec:
    """The stream that stores ``subject``; ``KeyError`` if no stream does (e.g. core requests)."""
    for spec in STREAMS.values():
        if any(_covers(pattern, subject) for pattern in spec.subjects):
            return spec
    raise KeyError(subject)


def dlq_subject(service: str, original_subject: str) -> str:
    """Where ``service`` parks a message it cannot process: its own stream, so it owns the data."""
    return f"{service}.dlq.{original_subject}"


def audit_head_subject(service: str) -> str:
    """Where ``service`` anchors the head of its audit chain (the stream keeps every anchor)."""
    return f"audit.{service}.head.v1"


def export_subject(service: str) -> str:
    """Core request/reply subject consent uses to collect ``service``'s data-subject export."""
    return f"subject.export.{service}.v1"


def access_log_subject(service: str) -> str:
    """Core request/reply subject consent uses to collect ``service``'s access log."""
    return f"subject.accesslog.{service}.v1"
