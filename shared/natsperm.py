"""Render the NATS permission file (``deploy/nats/auth.conf``) from ``shared.topology``.

One NATS user per service, allow-lists only, so the broker itself enforces purpose limitation:
a service can publish only under its own prefix, create and read only the consumers the topology
gives it, and subscribe only to its own inbox and request subjects. An ``ops`` user has full
access for operators and test inspection; services never use it.

    python -m shared.natsperm > deploy/nats/auth.conf   # regenerate
    python -m shared.natsperm --check                   # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shared import topology as t
from shared.settings import SERVICES, nats_password_env

OPS_USER = "ops"
AUTH_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "auth.conf"
JS_API = "$JS.API"


def inbox_prefix(user: str) -> str:
    """The per-user inbox prefix clients must connect with (replies land only in one's own)."""
    return f"_INBOX_{user}"


@dataclass
class Permissions:
    """Allow-lists of one user, as (comment, subjects) groups so the file explains itself."""

    publish: list[tuple[str, list[str]]] = field(default_factory=list)
    subscribe: list[tuple[str, list[str]]] = field(default_factory=list)
    allow_responses: bool = False

    def subjects(self, kind: str) -> list[str]:
        """Flat list of the ``publish`` or ``subscribe`` subjects."""
        return [s for _, group in getattr(self, kind) for s in group]


def _consumer_api(c: t.ConsumerSpec) -> list[str]:
    # The create subject names the filter; the server rejects a request whose body filters on
    # anything else, so this pins the consumer to its purpose.
    return [
        f"{JS_API}.CONSUMER.CREATE.{c.stream}.{c.name}.{c.filter_subject}",
        f"{JS_API}.CONSUMER.INFO.{c.stream}.{c.name}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{c.stream}.{c.name}",
        f"$JS.ACK.{c.stream}.{c.name}.>",
    ]


def _kv_watch_api() -> list[str]:
    # kv.watch() is an ordered push consumer: ephemeral, created on the legacy subject without a
    # name (the server rejects a durable name there), then inspected by its generated name.
    # Flow-control replies go to $JS.FC. Reading the whole bucket is the point of watching it.
    return [
        f"{JS_API}.STREAM.INFO.{t.KV_STREAM}",
        f"{JS_API}.CONSUMER.CREATE.{t.KV_STREAM}",
        f"{JS_API}.CONSUMER.INFO.{t.KV_STREAM}.*",
        f"$JS.FC.{t.KV_STREAM}.>",
    ]


def _audit_api(service: str) -> list[str]:
    head = t.audit_head_subject(service)
    return [head, f"{JS_API}.DIRECT.GET.{t.AUDIT_STREAM}.{head}"]


def _event_key_roles(service: str) -> list[str]:
    roles = [("read", t.EVENT_KEY_READERS), ("create", t.EVENT_KEY_WRITERS), ("erase", (t.EVENT_KEY_ERASER,))]
    return [name for name, who in roles if service in who]


def _event_key_api(service: str) -> list[str]:
    # Read by direct get of one key; create by a publish with an expected last sequence of 0;
    # erase by deleting the key's message (the server overwrites it on disk).
    api = []
    if service in t.EVENT_KEY_READERS:
        api.append(f"{JS_API}.DIRECT.GET.{t.EVENT_KEY_STREAM}.$KV.{t.EVENT_KEY_BUCKET}.>")
    if service in t.EVENT_KEY_WRITERS:
        api.append(f"$KV.{t.EVENT_KEY_BUCKET}.>")
    if service == t.EVENT_KEY_ERASER:
        api.append(f"{JS_API}.STREAM.MSG.DELETE.{t.EVENT_KEY_STREAM}")
    return api


def service_permissions(service: str) -> Permissions:
    """Least-privilege permissions of ``service``, derived from the topology."""
    p = Permissions()
    pub, sub = p.publish.append, p.subscribe.append
    own = [f"{service}.>"]  # includes its dead letters <svc>.dlq.> and erasure acks
    if service == "consent":
        own += [*t.STREAMS["SUBJECT"].subjects, *t.STREAMS["HRIS"].subjects]
    pub(("events it produces (own prefix, dead letters, erasure acks)", own))
    if service in t.CONTRIBUTORS:
        pub(("de-identified contributions, read only by the aggregator", [*t.STREAMS["CONTRIBUTION"].subjects]))
    declare = [f"{JS_API}.INFO"]
    for stream in t.streams_declared_by(service):
        declare.append(f"{JS_API}.STREAM.INFO.{stream.name}")
    # No STREAM.CREATE/UPDATE: a stream config can source another stream, so only the
    # provisioner (ops) declares streams.
    pub(("JetStream: account info, check own streams exist", declare))
    for c in t.consumers_for(service):
        pub((f"consumer {c.name} on {c.stream} ({c.filter_subject})", _consumer_api(c)))
    if service == t.KV_WRITER:
        kv_write = [
            f"$KV.{t.KV_BUCKET}.>",
            f"{JS_API}.DIRECT.GET.{t.KV_STREAM}.>",
            f"{JS_API}.STREAM.MSG.GET.{t.KV_STREAM}",
        ]
        pub((f"KV bucket {t.KV_BUCKET}: write, read", kv_write))
    if service == t.KV_WRITER or service in t.KV_WATCHERS:
        pub((f"KV bucket {t.KV_BUCKET}: watch", _kv_watch_api()))
    pub(("anchor its audit chain's head; read back its own last anchor", _audit_api(service)))
    keys = _event_key_api(service)
    if keys:
        pub((f"event keys ({t.EVENT_KEY_BUCKET}): {', '.join(_event_key_roles(service))}", keys))
    if service == "consent":
        requests = [f(s) for s in t.SUBJECT_REQUEST_RESPONDERS for f in (t.export_subject, t.access_log_subject)]
        pub(("data-subject requests to every other service", requests))

    if t.requests_by(service):
        pub(("requests it asks another service", [r.subject for r in t.requests_by(service)]))

    sub(("own inbox only (connect with inbox_prefix)", [f"{inbox_prefix(service)}.>"]))
    if t.requests_to(service):
        sub(("requests it answers", [r.subject for r in t.requests_to(service)]))
        p.allow_responses = True
    if service in t.SUBJECT_REQUEST_RESPONDERS:
        sub(("data-subject requests about its own data", [t.export_subject(service), t.access_log_subject(service)]))
        p.allow_responses = True  # may reply once to each request's reply subject
    return p


def _q(subject: str) -> str:
    # Quoted so that "$JS..." is not read as a variable reference and ">" stays a plain string.
    return f'"{subject}"'


def _render_user(user: str, perms: Permissions | None) -> list[str]:
    lines = [
        "    {",
        f"      user: {_q(user)}",
        f"      password: ${nats_password_env(user)}",
    ]
    if perms is None:
        lines.append("      # no permissions block: full access (operators, test inspection)")
    else:
        lines.append("      permissions: {")
        for kind in ("publish", "subscribe"):
            lines += [f"        {kind}: {{", "          allow: ["]
            for comment, subjects in getattr(perms, kind):
                lines.append(f"            # {comment}")
                lines += [f"            {_q(s)}" for s in subjects]
            lines += ["          ]", "        }"]
        if perms.allow_responses:
            lines.append("        allow_responses: true")
        lines.append("      }")
    lines.append("    }")
    return lines


HEADER = """\
# GENERATED from shared/topology.py by `python -m shared.natsperm > deploy/nats/auth.conf`.
# Do not edit by hand: CI runs `python -m shared.natsperm --check`.
#
# Passwords come from the environment ($KINWELL_NATS_<USER>_PASSWORD). nats-server parses the
# variable's value as config syntax (a bare 12345 becomes a number, a leading "-" is a parse
# error), so set it double-quoted, e.g. KINWELL_NATS_CHECKIN_PASSWORD='"s3cr3t"';
# shared.natsserver does this for you. Clients connect with inbox_prefix="_INBOX_<user>".
"""


def render_auth_conf() -> str:
    """The full text of ``deploy/nats/auth.conf``."""
    lines = [HEADER, "authorization {", "  timeout: 2", "  users: ["]
    for service in SERVICES:
        lines += [f"    # --- {service} ---", *_render_user(service, service_permissions(service))]
    lines += [f"    # --- {OPS_USER} ---", *_render_user(OPS_USER, None)]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the file, or with ``--check`` compare it with the committed one."""
    parser = argparse.ArgumentParser(prog="python -m shared.natsperm", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    parser.add_argument("--path", type=Path, default=AUTH_CONF, help="file --check compares with")
    args = parser.parse_args(argv)
    text = render_auth_conf()
    if not args.check:
        sys.stdout.write(text)
        return 0
    if args.path.exists() and args.path.read_text() == text:
        return 0
    print(f"{args.path} is stale: run `python -m shared.natsperm > {args.path}`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
