""" "Now" for the services' business dates: real time, or in embedded mode the demo clock.

``KINWELL_DEMO_CLOCK=true`` (set by ``kinwell up --demo``) lets ``kinwell demo`` backdate weeks of
check-ins: :func:`now` then adds the offset stored in ``<KINWELL_DATA_DIR>/demo-clock`` (seconds,
written by :func:`set_offset`; no file means real time). It exists only in embedded mode: a service
in production mode refuses to start with it (:func:`refuse_in_production`, called at start-up),
and without it the file is never read.

What follows the clock: the time and ISO week of a check-in, check-in's week closing, and the
aggregator's releases and its reporting date. Token lifetimes, audit entries, retention and
everything security-related keep real time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

ENV = "KINWELL_DEMO_CLOCK"
FILE = "demo-clock"
_cache: tuple[Path, int, float] | None = None  # (file, mtime in ns, offset seconds)


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def refuse_in_production(mode: str) -> None:
    """Raise if the demo clock is set in production mode (it is an embedded-mode setting)."""
    if enabled() and mode == "production":
        raise RuntimeError(f"{ENV} exists only in embedded mode and is refused in production")


def clock_file(data_dir: Path | None = None) -> Path:
    return Path(data_dir or os.environ.get("KINWELL_DATA_DIR") or ".kinwell") / FILE


def _offset() -> float:
    global _cache
    path = clock_file()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return 0.0
    if _cache is None or _cache[0] != path or _cache[1] != mtime:
        try:
            _cache = (path, mtime, float(path.read_text().strip() or 0))
        except (OSError, ValueError):
            return 0.0
    return _cache[2]


def now() -> datetime:
    """Aware UTC now, shifted by the demo clock when it is enabled (embedded mode only)."""
    real = datetime.now(UTC)
    return real + timedelta(seconds=_offset()) if enabled() else real


def set_offset(data_dir: Path, seconds: float) -> None:
    """Move the demo clock to real time + ``seconds`` (atomically: a reader sees old or new)."""
    path = clock_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seconds:.3f}\n")
    os.replace(tmp, path)


def reset(data_dir: Path) -> None:
    """Back to real time."""
    clock_file(data_dir).unlink(missing_ok=True)
