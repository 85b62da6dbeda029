"""``kinwell hris import FILE``: send a snapshot to the running consent service over HTTP.

Why over HTTP and not straight into the database: the operator needs only a URL and a token (no
database credentials, no pseudonym key on their machine), every record goes through the same
checks, pseudonymisation and outbox as a webhook, and it works with several consent replicas.

The whole file is validated first, so a bad record stops the import before anything is sent.
Then it goes out as bounded batches (``--batch-size`` events, at most ~60 KB per request, under
the service's body limit), each one transaction. A batch that fails on the network or with a
5xx is retried; importing again after a failure is safe, since records that match what the
service holds change nothing and publish nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from shared.hris.snapshot import Progress, ProgressBar, SnapshotError, iter_snapshot

MAX_REQUEST_BYTES = 60_000  # the consent service refuses bodies over 64 KiB by default
RETRIES = 5


class ImportFailed(Exception):
    """The service refused a batch or could not be reached; the message is for the operator."""


@dataclass
class SnapshotImporter:
    path: Path
    url: str
    token: str
    batch_size: int = 500
    progress: bool = True
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    backoff: float = 0.5

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SnapshotImporter:
        url = args.url or os.environ.get("KINWELL_CONSENT_URL")
        if not url:
            url = f"http://127.0.0.1:{os.environ.get('KINWELL_CONSENT_PORT', '8001')}"
        return cls(
            path=Path(args.file),
            url=url.rstrip("/"),
            token=args.token or os.environ.get("KINWELL_TOKEN") or "",
            batch_size=max(1, min(1000, args.batch_size)),
            progress=not args.no_progress,
        )

    def run(self) -> int:
        """0 when every record was imported; 1 when the service refused or was unreachable; 2 for a bad file."""
        try:
            total = sum(len(batch) for batch in iter_snapshot(self.path, batch_size=1000))
        except SnapshotError as exc:
            self._say(f"{self.path.name}: {exc} (nothing was imported)")
            return 2
        except OSError as exc:
            self._say(f"cannot read {self.path}: {exc.strerror or type(exc).__name__}")
            return 2
        token = self.token or _dev_token()
        if not token:
            self._say("no token: pass --token or set KINWELL_TOKEN (a token with role admin or integration)")
            return 2
        bar = ProgressBar(self.err) if self.progress else None
        sent = published = requests = 0
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=60.0) as client:
                self._reachable(client)
                for body, count in self._requests():
                    published += self._post(client, body, first=sent + 1, last=sent + count)
                    sent += count
                    requests += 1
                    if bar is not None:
                        bar(Progress(sent, sent, total))
        except ImportFailed as exc:
            if bar is not None and sent:
                self.err.write("\n")
            self._say(f"{exc}")
            if sent:
                self._say(f"{sent:,} of {total:,} records were imported; running the import again is safe.")
            return 1
        if bar is not None and not sent:
            bar(Progress(0, 0, 0))
        self.out.write(
            f"imported {sent:,} records in {requests:,} request{'' if requests == 1 else 's'}; "
            f"{published:,} platform events published "
            "(records that changed nothing publish nothing)\n"
        )
        return 0

    def _requests(self) -> Iterator[tuple[bytes, int]]:
        """Request bodies ``{"events": [...]}`` of at most ``batch_size`` events and ~60 KB each."""
        items: list[bytes] = []
        size = 0
        for batch in iter_snapshot(self.path, batch_size=self.batch_size):
            for event in batch:
                item = json.dumps(event.model_dump(mode="json", exclude_none=True), separators=(",", ":")).encode()
                if items and (len(items) >= self.batch_size or size + len(item) + 1 > MAX_REQUEST_BYTES - 16):
                    yield b'{"events":[' + b",".join(items) + b"]}", len(items)
                    items, size = [], 0
                items.append(item)
                size += len(item) + 1
        if items:
            yield b'{"events":[' + b",".join(items) + b"]}", len(items)

    def _reachable(self, client: httpx.Client) -> None:
        """Fail fast, before any batch, when nothing answers at the URL."""
        try:
            client.get("/healthz", timeout=5.0)
        except httpx.TransportError as exc:
            raise ImportFailed(
                f"cannot reach the consent service at {self.url} ({type(exc).__name__}); "
                "is it running? (--url or KINWELL_CONSENT_URL)"
            ) from None

    def _post(self, client: httpx.Client, body: bytes, *, first: int, last: int) -> int:
        for attempt in range(RETRIES + 1):
            try:
                response = client.post("/v1/hris/import", content=body)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise ImportFailed(
                        f"cannot reach the consent service at {self.url} ({type(exc).__name__}); "
                        "is it running? (--url or KINWELL_CONSENT_URL)"
                    ) from None
            else:
                if response.status_code < 300:
                    return int(response.json().get("published", 0))
                if response.status_code in (401, 403):
                    raise ImportFailed(
                        f"the service refused the token ({response.status_code}): it needs role admin or integration"
                    )
                if response.status_code < 500 and response.status_code != 429 or attempt == RETRIES:
                    raise ImportFailed(f"records {first:,}-{last:,} refused: {_problem(response)}")
            time.sleep(self.backoff * 2**attempt)
        raise ImportFailed("unreachable")  # pragma: no cover - the loop returns or raises

    def _say(self, message: str) -> None:
        self.err.write(f"kinwell hris import: {message}\n")


def _problem(response: httpx.Response) -> str:
    try:
        problem: dict[str, Any] = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    parts = [f"{response.status_code} {problem.get('title', '')}".strip(), str(problem.get("detail", ""))]
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('type')}" for e in errors[:5]))
    return " - ".join(p for p in parts if p)


def _dev_token() -> str:
    """Embedded mode only: a short-lived integration token from the dev issuer (like ``kinwell token``)."""
    from shared.auth import Role, dev_token
    from shared.settings import PlatformSettings

    try:
        platform = PlatformSettings()
        return dev_token(platform, "kinwell-hris-import", [Role.integration], ttl_seconds=3600)
    except (RuntimeError, ValueError):
        return ""
