"""``python -m bench [name ...]``: run the benchmarks and print each beside its baseline."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.common import Result, report

BENCHES = [
    "bench_up",
    "bench_gate",
    "bench_outbox",
    "bench_consent",
    "bench_checkin",
    "bench_webhooks",
    "bench_signals",
    "bench_aggregator",
    "bench_escalation",
    "bench_recommender",
]


def main(argv: list[str]) -> int:
    names = argv or BENCHES
    results: list[Result] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", flush=True)
        results.extend(module.run())
    report(results, Path("bench/results/latest.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
