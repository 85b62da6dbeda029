"""``.ci/run`` fails when PostgreSQL does not answer (it used to skip that run and pass).

The script is run for real, from a copy of the repository's ``.ci`` folder, with ``make`` replaced
by a recorder on ``PATH`` (``make install`` makes ``.venv/bin/python`` run this interpreter, so the
script's own psycopg probe runs unchanged).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_MAKE = """#!/usr/bin/env bash
echo "make $*" >> "$MAKE_LOG"
if [ "$1" = install ]; then
  mkdir -p .venv/bin && printf '#!/bin/sh\nexec "%s" "$@"\n' "$REAL_PYTHON" > .venv/bin/python
  chmod +x .venv/bin/python
fi
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is: nothing listens there


def _run_ci(tmp_path: Path, database_url: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    shutil.copytree(REPO / ".ci", tmp_path / ".ci")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text(FAKE_MAKE)
    (bin_dir / "make").chmod(0o755)
    log = tmp_path / "make.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MAKE_LOG": str(log),
        "REAL_PYTHON": sys.executable,
        "KINWELL_CI_DATABASE_URL": database_url,
    }
    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def test_ci_fails_when_postgresql_does_not_answer(tmp_path: Path) -> None:
    done, calls = _run_ci(tmp_path, f"postgresql://postgres@127.0.0.1:{_closed_port()}/test")
    assert done.returncode != 0, done.stdout
    assert "PostgreSQL does not answer (OperationalError)" in done.stderr  # the probe ran, and failed
    assert "make test" not in calls  # failed before spending a suite run on one backend only


def test_ci_runs_both_backends_when_postgresql_answers(tmp_path: Path) -> None:
    url = os.environ.get("KINWELL_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        import pytest

        pytest.skip("no PostgreSQL on this machine to run the answering case against")
    done, calls = _run_ci(tmp_path, url)
    assert done.returncode == 0, done.stderr
    assert calls == ["make install", "make lint", "make test", "make test"]
