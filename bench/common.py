"""Result type, printing, and the throwaway NATS server / database the benches use."""

from __future__ import annotations

import json
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.settings import SERVICES


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    goal: str
    met: bool
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def report(results: list[Result], out: Path | None = None) -> None:
    width = max(len(r.name) for r in results)
    print()
    print(f"{'benchmark':<{width}}  {'value':>14}  {'baseline':>26}  {'ratio':>7}  goal")
    for r in results:
        base = f"{r.baseline:,.2f} ({r.baseline_name})"
        goal = f"{r.goal} [{'met' if r.met else 'NOT met'}]" if r.goal else "(no goal: shown for context)"
        print(f"{r.name:<{width}}  {r.value:>10,.2f} {r.unit:<3}  {base:>26}  {r.ratio:>6.2f}x  {goal}")
        if r.notes:
            print(f"{'':<{width}}  {r.notes}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([asdict(r) | {"ratio": r.ratio} for r in results], indent=2))


def nats_server():
    """A private nats-server with the project's permission file, on a free port."""
    from shared.natsserver import NatsServer

    passwords = {svc: secrets.token_urlsafe(16) for svc in (*SERVICES, "ops")}
    store = Path(tempfile.mkdtemp(prefix="kinwell-bench-"))
    return NatsServer(store_dir=store, passwords=passwords)


def sqlite_url(name: str) -> str:
    return f"sqlite:///{Path(tempfile.mkdtemp(prefix='kinwell-bench-')) / (name + '.db')}"
