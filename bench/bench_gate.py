"""Consent gate check cost vs a plain dict lookup over the same keys (100k subjects x 6 purposes)."""

from __future__ import annotations

import random
import time

from bench.common import Result
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.events.consent import Purpose

SUBJECTS = 100_000
LOOKUPS = 1_000_000


def run() -> list[Result]:
    rnd = random.Random(7)
    purposes = [p.value for p in Purpose]
    subjects = [f"{rnd.getrandbits(256):064x}" for _ in range(SUBJECTS)]
    entries = {}
    plain: dict[tuple[str, str], bool] = {}
    for s in subjects:
        for p in purposes:
            granted = rnd.random() < 0.5
            entries[kv_key(s, p)] = kv_value("granted" if granted else "withdrawn", 1, "t")
            plain[(s, p)] = granted
    gate = ConsentGate()
    gate.load(entries)
    probes = [(subjects[rnd.randrange(SUBJECTS)], purposes[rnd.randrange(6)]) for _ in range(LOOKUPS)]
    # Sanity: both answer the same.
    assert all(gate.allowed(s, p) == plain[(s, p)] for s, p in probes[:10_000])

    def time_plain() -> float:
        get = plain.get
        t = time.perf_counter()
        for s, p in probes:
            get((s, p), False)
        return time.perf_counter() - t

    def time_gate() -> float:
        allowed = gate.allowed
        t = time.perf_counter()
        for s, p in probes:
            allowed(s, p)
        return time.perf_counter() - t

    plain_s = min(time_plain() for _ in range(5))
    gate_s = min(time_gate() for _ in range(5))
    gate_ns = gate_s / LOOKUPS * 1e9
    plain_ns = plain_s / LOOKUPS * 1e9
    return [
        Result(
            name="consent gate check",
            value=gate_ns,
            unit="ns",
            baseline_name="dict lookup",
            baseline=plain_ns,
            goal="<= 1.5x and < 1000 ns",
            met=gate_ns <= 1.5 * plain_ns and gate_ns < 1000,
            notes=f"{SUBJECTS:,} subjects x 6 purposes, {LOOKUPS:,} random checks, best of 5",
        )
    ]
