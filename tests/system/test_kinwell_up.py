"""`kinwell up` as an operator runs it: one command, everything ready, clean stop, clear errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.natsserver import free_port
from shared.settings import DEFAULT_PORTS, SECRET_FIELDS, SERVICES
from shared.topology import SERVICE_SECRETS


def _offset() -> int:
    """A port offset under which all five service ports are free."""
    for _ in range(50):
        base = free_port()
        offset = base - DEFAULT_PORTS["consent"]
        # The service ports and their metrics listeners (port + 1000).
        if offset > 0 and all(_free(DEFAULT_PORTS[s] + offset + extra) for s in SERVICES for extra in (0, 1000)):
            return offset
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _up(tmp_path: Path, offset: int, nats_port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KINWELL_DATA_DIR": str(tmp_path / "data"),
        "KINWELL_NATS_URL": f"nats://127.0.0.1:{nats_port}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--port-offset", str(offset), "--ready-timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_up_starts_everything_ready_and_stops_cleanly_on_sigterm(tmp_path):
    offset, nats_port = _offset(), free_port()
    proc = _up(tmp_path, offset, nats_port)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Kinwell is ready" in line or proc.poll() is not None:
                break
        assert any("Kinwell is ready" in line for line in lines), "".join(lines)
        # Time to ready is measured by bench/bench_up.py, not asserted here (a loaded CI box is slow).
        _each_process_holds_only_its_own_secrets(proc.pid)
        for name in SERVICES:
            r = httpx.get(f"http://127.0.0.1:{DEFAULT_PORTS[name] + offset}/readyz", timeout=5)
            assert r.status_code == 200 and r.json()["ready"], name
        token = subprocess.run(
            [sys.executable, "-m", "shared.cli", "token", "--sub", "E123", "--role", "employee"],
            env={**os.environ, "KINWELL_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert token.count(".") == 2
        _employee_journey(offset, token)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped." in out
    for name in SERVICES:
        assert _free(DEFAULT_PORTS[name] + offset), f"{name} still listening"
    assert _free(nats_port)
    # Data is kept for the next start.
    assert (tmp_path / "data" / "consent.db").exists() and (tmp_path / "data" / "nats").is_dir()


SECRET_ENV = {f"KINWELL_{name.upper()}": name for name in SECRET_FIELDS}


def _children(parent: int) -> dict[str, int]:
    """The service processes `kinwell up` started: name -> pid (from /proc)."""
    found: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and b"-m" in cmdline:
            module = cmdline[cmdline.index(b"-m") + 1].decode()
            found[module.removeprefix("services.")] = int(stat.parent.name)
    return found


def _each_process_holds_only_its_own_secrets(parent: int) -> None:
    """Issue 11.1: each process gets exactly its topology secrets, and never reads the dev file."""
    children = _children(parent)
    assert set(children) == set(SERVICES), children
    for name, pid in children.items():
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
        held = {secret for var, secret in SECRET_ENV.items() if var in env}
        assert held == {*SERVICE_SECRETS[name], "dev_jwt_secret"}, (name, held)
        assert env["KINWELL_LOAD_DEV_SECRETS"] == "false", name
        passwords = {var for var in env if var.endswith("_PASSWORD")}
        assert passwords == {f"KINWELL_{name.upper()}_NATS_PASSWORD"}, (name, passwords)
        if "master_key" not in SERVICE_SECRETS[name]:
            assert "KINWELL_OLD_MASTER_KEYS" not in env, name
    assert not {"pseudonym_key", "period_key", "master_key"} & set(SERVICE_SECRETS["aggregator"])


def _employee_journey(offset: int, token: str) -> None:
    """The README's walkthrough, through the running platform: consent, check-in, step-up,
    history and trend, a crisis check-in, withdrawal."""
    consent = httpx.Client(base_url=f"http://127.0.0.1:{DEFAULT_PORTS['consent'] + offset}", timeout=10)
    checkin = httpx.Client(base_url=f"http://127.0.0.1:{DEFAULT_PORTS['checkin'] + offset}", timeout=10)
    auth = {"Authorization": f"Bearer {token}"}
    weekly = {"answers": {"who5_1": 2, "who5_2": 2, "who5_3": 2, "who5_4": 1, "who5_5": 2, "mood": 2}, "lang": "en"}
    with consent, checkin:
        refused = checkin.post("/v1/checkins", json=weekly, headers=auth)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        version = next(c for c in consent.get("/v1/me/consents", headers=auth).json()["consents"]
                       if c["purpose"] == "checkin")["current_policy_version"]  # fmt: skip
        granted = consent.put("/v1/me/consents/checkin", json={"policy_version": version}, headers=auth)
        assert granted.status_code == 200 and granted.json()["state"] == "granted", granted.text

        first = _eventually(lambda: checkin.post("/v1/checkins", json=weekly, headers=auth), 201)
        body = first.json()
        assert body["score"]["who5_raw"] == 9 and body["score"]["who5_index"] == 36
        assert body["next_step"]["form"] == "phq2_gad2" and body["crisis"] is None
        step = checkin.post(
            body["next_step"]["post_to"],
            json={"instrument": "phq2_gad2", "answers": {"phq9_1": 2, "phq9_2": 1, "gad7_1": 2, "gad7_2": 2}},
            headers=auth,
        )
        assert step.status_code == 200 and step.json()["next_step"]["form"] == "phq9", step.text
        phq9 = {"phq9_3": 1, "phq9_4": 1, "phq9_5": 1, "phq9_6": 1, "phq9_7": 1, "phq9_8": 0, "phq9_9": 1}
        crisis = checkin.post(step.json()["next_step"]["post_to"], json={"instrument": "phq9", "answers": phq9},
                              headers=auth)  # fmt: skip
        assert crisis.status_code == 200 and crisis.json()["crisis"]["resources"], crisis.text

        history = checkin.get("/v1/me/checkins", headers=auth).json()["items"]
        assert [item["id"] for item in history] == [body["id"]] and history[0]["complete"]
        again = checkin.post("/v1/checkins", json=weekly, headers=auth).json()
        assert [point["who5_index"] for point in again["trend"]] == [36]  # latest per week

        # Data-subject rights gather from every service: the export is itself logged as an access.
        exported = consent.get("/v1/me/export", headers=auth).json()
        assert exported["complete"] and body["id"] in {c["id"] for c in exported["services"]["checkin"]["checkins"]}
        log = consent.get("/v1/me/access-log", headers=auth).json()
        assert log["complete"] and log["unavailable"] == [], log
        assert ("checkin", "checkin.export") in {(e["service"], e["action"]) for e in log["entries"]}

        withdrawn = consent.delete("/v1/me/consents/checkin", headers=auth)
        assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
        _eventually(lambda: checkin.post("/v1/checkins", json=weekly, headers=auth), 403)


def _eventually(call, status: int, timeout: float = 15.0) -> httpx.Response:
    """Repeat ``call`` until it answers ``status`` (consent reaches check-in's gate asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response
        time.sleep(0.05)


def test_up_says_which_port_is_taken(tmp_path):
    offset, nats_port = _offset(), free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", DEFAULT_PORTS["checkin"] + offset))
        blocker.listen()
        proc = _up(tmp_path, offset, nats_port)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"checkin ({DEFAULT_PORTS['checkin'] + offset})" in out and "already in use" in out
