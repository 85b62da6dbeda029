"""`kinwell demo` against a real platform (`kinwell up --demo`: real NATS, the five services), at
a small size; and its clock, which exists only in embedded mode."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import clock
from shared.natsserver import free_port
from tests.system.test_kinwell_up import _offset


@pytest.mark.timeout(1200)  # five services start, then ~3,000 requests: minutes on a loaded 2-core machine
def test_demo_seeds_a_running_platform_and_shows_cells_and_a_forecast_before_the_next_close(tmp_path: Path):
    """At the default size (300 employees, 12 weeks): the smallest the docstring of shared/demo.py
    finds the forecast robust at (60 employees' DP noise hides the drop)."""
    offset, nats_port = _offset(), free_port()
    env = {
        **os.environ,
        "KINWELL_DATA_DIR": str(tmp_path / "data"),
        "KINWELL_NATS_URL": f"nats://127.0.0.1:{nats_port}",
    }
    env.pop(clock.ENV, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--demo", "--port-offset", str(offset), "--ready-timeout", "480"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "Kinwell is ready" in line or up.poll() is not None:
                break
        assert any("Kinwell is ready" in line for line in lines), "".join(lines)
        demo = subprocess.run(
            [sys.executable, "-m", "shared.cli", "demo", "--employees", "300", "--weeks", "12",
             "--port-offset", str(offset), "--no-progress", "--settle", "2"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        up.send_signal(signal.SIGTERM)
        up.communicate(timeout=60)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    # Released cells carry a noised value with its 95% interval; suppressed ones say why.
    assert re.search(r"acme\s+-\s+released\s+[\d.]+ \[-?[\d.]+, [\d.]+\]\s+[\d.]+ \[-?[\d.]+, [\d.]+\]", out), out
    assert "suppressed (below_k)" in out, out
    summary = dict(
        (name, int(count))
        for count, name in re.findall(r"(\d+) (\w+)", out.split("All metrics and weeks:")[1].splitlines()[0])
    )
    assert summary.get("released", 0) > 0 and summary.get("below_k", 0) > 0, summary
    # Twelve backdated weeks, each released, ending two weeks before the current one.
    weeks = re.search(r"org unit((?:\s+W\d\d){12})\n", out)
    assert weeks is not None, out
    last = (datetime.now(UTC).date() - timedelta(weeks=2)).isocalendar()
    assert weeks.group(1).split()[-1] == f"W{last[1]:02d}"
    # The forecast before Friday next week's close, from the four past closes, timed and worded.
    today = datetime.now(UTC).date()
    close = today - timedelta(days=today.weekday()) + timedelta(days=11)  # Friday next week
    forecast = re.search(
        rf"  sales\s+(who5_index|mood)\s+(-[\d.]+) \[(-[\d.]+), (-[\d.]+)\] around deadline 'Sales close' "
        rf"on {close.isoformat()} \(4 past deadlines\)\n      -> From {today.isoformat()}, "
        rf"{(close - today).days} days before the deadline “Sales close” \({close.isoformat()}\): Review workload",
        out,
    )
    assert forecast is not None, out
    assert float(forecast.group(3)) <= float(forecast.group(2)) <= float(forecast.group(4)) < 0
    assert re.search(r"scored so far \(GET /v1/program-metrics\): \d+ ", out), out
    # And the drops around the past closes, on every page of GET /v1/insights.
    assert re.search(r"W\d\d sales\s+who5_index drop\s+-[\d.]+ \[.+\] during deadline 'Sales close'", out), out
    assert not (tmp_path / "data" / clock.FILE).exists()  # the clock is back to real time


def test_the_demo_clock_moves_only_when_enabled_and_is_refused_in_production(tmp_path, monkeypatch):
    monkeypatch.setenv("KINWELL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(clock.ENV, raising=False)
    clock.set_offset(tmp_path, -7 * 86400)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5  # not enabled: the file is ignored
    clock.refuse_in_production("production")
    monkeypatch.setenv(clock.ENV, "true")
    assert abs((clock.now() - datetime.now(UTC)).total_seconds() + 7 * 86400) < 5
    with pytest.raises(RuntimeError, match="only in embedded mode"):
        clock.refuse_in_production("production")
    clock.refuse_in_production("embedded")
    clock.reset(tmp_path)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5


def test_demo_refuses_production_mode(tmp_path):
    env = {**os.environ, "KINWELL_MODE": "production", "KINWELL_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "shared.cli", "demo"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "embedded platform only" in done.stderr
