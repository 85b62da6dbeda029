"""The ``kinwell`` command: ``up`` runs the embedded platform, ``token`` mints a dev token,
``hris import`` sends an HRIS snapshot to the consent service, ``demo`` seeds a synthetic
organisation (``shared/demo.py``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.settings import (
    DEFAULT_PORTS,
    EMBEDDED_ONLY_SECRETS,
    KEYRINGS,
    SERVICES,
    PlatformSettings,
    load_or_create_dev_secrets,
    nats_password_env,
)
from shared.topology import SERVICE_SECRETS


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _nats_port(url: str) -> int:
    return int(url.rsplit(":", 1)[-1].split("/")[0])


# Secrets a `kinwell up` child must not inherit from the operator's shell: each gets only its own.
_SECRET_ENV = re.compile(
    r"^KINWELL_(PSEUDONYM_KEY|PERIOD_KEY|MASTER_KEY|WEBHOOK_KEY|MANAGER_SCOPE_KEY|DEV_JWT_SECRET|RECEIPT_SIGNING_KEY|OLD_\w+_KEYS"
    r"|\w+_NATS_PASSWORD|NATS_\w+_PASSWORD|CONSENT_HRIS_WEBHOOK_SECRETS)$"
)


# A service's metrics listener is its port + 1000 under `kinwell up` (9001-9005).
METRICS_PORT_OFFSET = 1000


def service_env(
    platform: PlatformSettings, ports: dict[str, int], host: str, service: str, stored: dict[str, str]
) -> dict[str, str]:
    """The environment of one service process: its ports, and only the secrets it holds.

    The child is told not to read ``dev-secrets.json`` (``KINWELL_LOAD_DEV_SECRETS=false``), so
    the secrets it holds are exactly those of ``shared.topology.SERVICE_SECRETS``.
    """
    env = {name: value for name, value in os.environ.items() if not _SECRET_ENV.match(name)}
    env["KINWELL_MODE"] = "embedded"
    env["KINWELL_DATA_DIR"] = str(platform.data_dir.resolve())
    env["KINWELL_NATS_URL"] = platform.nats_url
    env["KINWELL_LOAD_DEV_SECRETS"] = "false"
    for name, port in ports.items():
        env[f"KINWELL_{name.upper()}_PORT"] = str(port)
        env[f"KINWELL_{name.upper()}_HOST"] = host
    # Metrics on their own listener, loopback only (docs/operations.md#metrics).
    env[f"KINWELL_{service.upper()}_METRICS_PORT"] = str(ports[service] + METRICS_PORT_OFFSET)
    held = (*SERVICE_SECRETS[service], *EMBEDDED_ONLY_SECRETS)
    for name in held:
        env[f"KINWELL_{name.upper()}"] = platform.secret(name).decode()
    for ring, (id_field, old_field) in KEYRINGS.items():
        if ring in held:
            env[f"KINWELL_{id_field.upper()}"] = getattr(platform, id_field)
            retired = {kid: key.get_secret_value() for kid, key in getattr(platform, old_field).items()}
            env[f"KINWELL_{old_field.upper()}"] = json.dumps(retired)
    env[f"KINWELL_{service.upper()}_NATS_PASSWORD"] = stored[f"nats_{service}_password"]
    if service == "consent":
        env["KINWELL_CONSENT_HRIS_WEBHOOK_SECRETS"] = json.dumps([stored["hris_webhook_secret"]])
    return env


def wait_ready(urls: dict[str, str], timeout: float) -> dict[str, dict[str, object]]:
    """Poll every ``/readyz`` until all answer ready; returns the last answer of each."""
    deadline = time.monotonic() + timeout
    last: dict[str, dict[str, object]] = {}
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            for name, url in urls.items():
                try:
                    last[name] = client.get(f"{url}/readyz").json()
                except (httpx.HTTPError, ValueError):
                    last[name] = {"ready": False}
            if all(v.get("ready") for v in last.values()):
                return last
            time.sleep(0.2)
    return last


def cmd_up(args: argparse.Namespace) -> int:
    from shared.natsserver import NatsServer, NatsServerError

    platform = PlatformSettings()
    if platform.mode != "embedded":
        print("kinwell up runs the embedded platform only; use docker-compose or deploy/ for production.")
        return 2
    if args.demo:  # for `kinwell demo`: a movable clock, and events flowing within seconds
        from shared import clock

        os.environ[clock.ENV] = "true"
        os.environ.setdefault("KINWELL_CHECKIN_CONTRIBUTION_RELEASE_SECONDS", "2")
        os.environ.setdefault("KINWELL_AGGREGATOR_RELEASE_CHECK_SECONDS", "2")
        os.environ.setdefault("KINWELL_AGGREGATOR_FORECAST_CHECK_SECONDS", "2")
        clock.reset(platform.data_dir)
    host = "127.0.0.1"
    ports = {name: DEFAULT_PORTS[name] + args.port_offset for name in SERVICES}
    taken = [f"{name} ({port})" for name, port in ports.items() if _port_in_use(host, port)]
    taken += [
        f"{name} metrics ({port + METRICS_PORT_OFFSET})"
        for name, port in ports.items()
        if _port_in_use(host, port + METRICS_PORT_OFFSET)
    ]
    nats_port = _nats_port(platform.nats_url)
    if _port_in_use(host, nats_port):
        taken.append(f"nats ({nats_port})")
    if taken:
        print(
            "kinwell up: these ports are already in use: " + ", ".join(taken) + ".\n"
            "Stop whatever holds them (another `kinwell up`?), or set KINWELL_NATS_URL and "
            "--port-offset to move Kinwell elsewhere.",
            file=sys.stderr,
        )
        return 1
    secrets = load_or_create_dev_secrets(platform.data_dir)
    passwords = {svc: secrets[f"nats_{svc}_password"] for svc in (*SERVICES, "ops")}
    nats = NatsServer(store_dir=platform.data_dir / "nats", port=nats_port, host=host, passwords=passwords)
    try:
        nats.start()
    except NatsServerError as exc:
        print(f"kinwell up: NATS did not start: {exc}", file=sys.stderr)
        return 1
    try:
        nats.provision()
    except Exception as exc:  # noqa: BLE001 - say what failed and stop cleanly
        print(f"kinwell up: provisioning streams failed: {type(exc).__name__}", file=sys.stderr)
        nats.stop()
        return 1
    print(f"nats-server  {nats.url}  (JetStream, permissions from deploy/nats/auth.conf; streams provisioned)")

    logs = platform.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name in SERVICES:
        log_file = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=service_env(platform, ports, host, name, secrets),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    urls = {name: f"http://{host}:{port}" for name, port in ports.items()}
    started = time.monotonic()
    status = wait_ready(urls, args.ready_timeout)
    code = 0
    if all(v.get("ready") for v in status.values()):
        print(f"\nKinwell is ready in {time.monotonic() - started:.1f} s:")
        for name, url in urls.items():
            print(f"  {name:<12} {url}   (API docs: {url}/docs; metrics: :{ports[name] + METRICS_PORT_OFFSET})")
        print(f"\nData folder: {platform.data_dir.resolve()}   logs: {logs.resolve()}")
        print("Get a dev token:  kinwell token --sub E123 --role employee")
        print('Then:             curl -H "Authorization: Bearer $TOKEN" ' + urls["consent"] + "/v1/me/consents")
        print("Ctrl-C stops everything.")
        while not stopping:
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                print(f"kinwell up: {', '.join(dead)} stopped unexpectedly; see {logs}/<service>.log", file=sys.stderr)
                code = 1
                break
            time.sleep(0.5)
    else:
        not_ready = {k: v.get("checks", "no answer") for k, v in status.items() if not v.get("ready")}
        print(f"kinwell up: not ready after {args.ready_timeout:.0f} s: {not_ready}; see {logs}", file=sys.stderr)
        code = 1
    print("\nstopping...")
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    nats.stop()
    print("stopped.")
    return code


def cmd_provision(args: argparse.Namespace) -> int:
    """Declare streams and the KV bucket on a running NATS (docker-compose / Kubernetes job)."""
    import asyncio

    from shared.bus.provision import provision_url

    # Only the NATS part of the platform settings: the provisioning job holds no other secret.
    fields = PlatformSettings.model_fields
    mode = os.environ.get("KINWELL_MODE", fields["mode"].default)
    url = os.environ.get("KINWELL_NATS_URL", fields["nats_url"].default)
    replicas = int(os.environ.get("KINWELL_NATS_REPLICAS", fields["nats_replicas"].default))
    password = os.environ.get(nats_password_env("ops"))
    if password is None and mode == "embedded":
        data_dir = os.environ.get("KINWELL_DATA_DIR", str(fields["data_dir"].default))
        password = load_or_create_dev_secrets(Path(data_dir))["nats_ops_password"]
    if not password:
        print(f"kinwell nats provision: set {nats_password_env('ops')}", file=sys.stderr)
        return 2
    ca_file = os.environ.get("KINWELL_NATS_TLS_CA_FILE")
    declared = asyncio.run(provision_url(url, password, replicas, Path(ca_file) if ca_file else None))
    print("provisioned: " + ", ".join(declared))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade one service's database to its newest schema (a one-shot container / Job).

    Needs only that service's database URL, so the job holds no other secret.
    """
    from shared.db import run_migrations

    var = f"KINWELL_{args.service.upper()}_DATABASE_URL"
    url = os.environ.get(var)
    if not url:
        print(f"kinwell migrate: set {var}", file=sys.stderr)
        return 2
    migrations = Path(__file__).resolve().parents[1] / "services" / args.service / "migrations"
    run_migrations(url, migrations)
    print(f"migrated: {args.service}")
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 if ``url`` answers 200 (the container image's HEALTHCHECK; no curl in the image)."""
    try:
        ok = httpx.get(args.url, timeout=args.timeout).status_code == 200
    except httpx.HTTPError:
        ok = False
    return 0 if ok else 1


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import Role, dev_token

    platform = PlatformSettings()
    try:
        roles = [Role(r) for r in args.role]
    except ValueError:
        print(f"unknown role; choose from: {', '.join(r.value for r in Role)}", file=sys.stderr)
        return 2
    try:
        print(dev_token(platform, args.sub, roles, ttl_seconds=args.ttl))
    except RuntimeError as exc:
        print(f"kinwell token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_hris_import(args: argparse.Namespace) -> int:
    """Send an HRIS snapshot to the running consent service, in bounded batches, with a progress bar."""
    from shared.hris.client import SnapshotImporter

    return SnapshotImporter.from_args(args).run()


def cmd_keys(args: argparse.Namespace) -> int:
    """``kinwell keys rotate|rewrap|status``: see shared/keyrotation.py and docs/operations.md."""
    from shared import keyrotation

    if args.keys_command == "rotate":
        new_id, new_key, retired = keyrotation.rotate(args.keyring)
        id_field, old_field = KEYRINGS[args.keyring]
        if PlatformSettings().mode == "embedded":
            print(f"{args.keyring}: {new_id} is current; retired: {', '.join(sorted(retired))} (dev-secrets.json).")
        else:  # the operator's secret store is the only place these go
            print(f"KINWELL_{args.keyring.upper()}={new_key}")
            print(f"KINWELL_{id_field.upper()}={new_id}")
            print(f"KINWELL_{old_field.upper()}='{json.dumps(retired)}'")
        holders = [svc for svc, held in SERVICE_SECRETS.items() if args.keyring in held]
        print(f"Next: restart {', '.join(holders)}; then `kinwell keys rewrap --service <name>` for each.")
        return 0
    dry_run = args.keys_command == "status"
    counts = keyrotation.rewrap_service(args.service, keyrotation.service_settings(args.service), dry_run=dry_run)
    verb = "stale (not under the current key)" if dry_run else "re-sealed under the current key"
    for column, count in counts.items():
        print(f"{column}: {count} {verb}")
    if not counts:
        print(f"{args.service} has no encrypted columns")
    return 1 if dry_run and any(counts.values()) else 0  # status: 1 while a retired key is still needed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kinwell", description="Kinwell platform commands")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run NATS and the five services (embedded mode)")
    up.add_argument("--port-offset", type=int, default=0, help="add to every service port (8001-8005)")
    up.add_argument("--ready-timeout", type=float, default=60.0)
    up.add_argument("--demo", action="store_true", help="with the demo clock, for `kinwell demo` (README)")
    up.set_defaults(fn=cmd_up)
    from shared.demo import register as register_demo

    register_demo(sub)  # kinwell demo
    nats_cmd = sub.add_parser("nats", help="NATS operations")
    nats_sub = nats_cmd.add_subparsers(dest="nats_command", required=True)
    prov = nats_sub.add_parser("provision", help="declare streams and the consent KV bucket (as the ops user)")
    prov.set_defaults(fn=cmd_provision)
    mig = sub.add_parser("migrate", help="upgrade a service's database (needs KINWELL_<SERVICE>_DATABASE_URL)")
    mig.add_argument("service", choices=SERVICES)
    mig.set_defaults(fn=cmd_migrate)
    health = sub.add_parser("healthcheck", help="exit 0 if a URL answers 200 (container health checks)")
    health.add_argument(
        "url", nargs="?", default=os.environ.get("KINWELL_HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz")
    )
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(fn=cmd_healthcheck)
    tok = sub.add_parser("token", help="print a dev token (embedded mode only)")
    tok.add_argument("--sub", required=True, help="employee or client id")
    tok.add_argument("--role", action="append", default=[], help="repeatable; default employee")
    tok.add_argument("--ttl", type=int, default=3600)
    tok.set_defaults(fn=cmd_token)
    hris_cmd = sub.add_parser("hris", help="HRIS integration")
    hris_sub = hris_cmd.add_subparsers(dest="hris_command", required=True)
    imp = hris_sub.add_parser(
        "import",
        help="import an org/employee snapshot (.json or .jsonl) through the running consent service",
        description="Validates the whole file first, then posts it to POST /v1/hris/import in batches. "
        "Safe to run again: records that match what the service holds change nothing.",
    )
    imp.add_argument("file", help="snapshot: .jsonl/.ndjson (one event per line) or .json (see docs/integrations.md)")
    imp.add_argument("--url", help="consent service URL (default $KINWELL_CONSENT_URL or http://127.0.0.1:8001)")
    imp.add_argument("--token", help="admin or integration bearer token (default $KINWELL_TOKEN; embedded: minted)")
    imp.add_argument("--batch-size", type=int, default=500, help="events per request (1-1000; default 500)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(fn=cmd_hris_import)
    from shared.bus.ops_cli import register as register_bus_ops

    register_bus_ops(sub)  # kinwell dlq list|show|replay, kinwell outbox list|replay
    keys_cmd = sub.add_parser("keys", help="key rotation (docs/operations.md)")
    keys_sub = keys_cmd.add_subparsers(dest="keys_command", required=True)
    rot = keys_sub.add_parser("rotate", help="make a new key current, keep the old one to open old data")
    rot.add_argument("--keyring", choices=("master_key", "webhook_key"), required=True)
    rot.set_defaults(fn=cmd_keys)
    for name, text in (("rewrap", "re-seal every encrypted column under the current key"),
                       ("status", "count what is not yet sealed under the current key")):  # fmt: skip
        cmd = keys_sub.add_parser(name, help=text)
        cmd.add_argument("--service", choices=SERVICES, required=True)
        cmd.set_defaults(fn=cmd_keys)
    args = parser.parse_args(argv)
    if args.command == "token" and not args.role:
        args.role = ["employee"]
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
