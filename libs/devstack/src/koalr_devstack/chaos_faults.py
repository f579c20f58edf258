"""The seeded fault schedule of the chaos run: what breaks, when, and for how long.

A schedule is a pure function of the seed, the length of the run and the service names, so a
failing seed replays the same faults in the same order (timing on a loaded machine still varies).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "kill_service",
    "restart_kafka",
    "restart_postgres",
    "provider_5xx",
    "provider_stall",
    "provider_429",
]


@dataclass(frozen=True)
class Fault:
    at_s: float
    """Seconds after the chaos phase starts."""
    kind: FaultKind
    target: str
    """A service name, ``kafka``, ``postgres`` or an account index (``cursor:0``)."""
    down_s: float
    """How long the target stays broken before it is restarted or healed."""

    def describe(self) -> str:
        return f"{self.at_s:6.1f}s {self.kind:<17} {self.target:<12} for {self.down_s:.1f}s"


def schedule(
    seed: int, duration_s: float, services: Sequence[str], accounts: Sequence[str]
) -> list[Fault]:
    """Every service SIGKILLed at least once, Kafka and PostgreSQL restarted at least once each
    (never at the same time), and provider storms (5xx, stalls, 429s) throughout."""
    rng = random.Random(seed)  # noqa: S311 - a seeded schedule, not a secret
    faults: list[Fault] = []
    usable = max(10.0, duration_s - 8.0)
    rounds = max(1, round(duration_s / 40))
    faults.extend(
        Fault(rng.uniform(2.0, usable), "kill_service", service, rng.uniform(0.5, 4.0))
        for service in services
        for _ in range(rounds)
    )
    # Infrastructure restarts in separate slots of the run, so each one is felt on its own; a
    # broker restart costs half a minute on a busy machine, so they come less often than kills.
    infra_rounds = max(1, round(duration_s / 90))
    slots = 2 * infra_rounds
    width = usable / slots
    order: list[FaultKind] = ["restart_kafka", "restart_postgres"] * infra_rounds
    rng.shuffle(order)
    for i, kind in enumerate(order):
        at = 3.0 + i * width + rng.uniform(0.0, max(0.5, width - 6.0))
        target = "kafka" if kind == "restart_kafka" else "postgres"
        faults.append(Fault(at, kind, target, rng.uniform(1.0, 4.0)))
    at = rng.uniform(1.0, 6.0)
    storms: tuple[FaultKind, ...] = ("provider_5xx", "provider_stall", "provider_429")
    # Each kind of storm once before any repeats, so even a short run meets all three.
    kinds = rng.sample(storms, len(storms))
    while at < usable:
        kind = kinds.pop(0) if kinds else rng.choice(storms)
        faults.append(Fault(at, kind, rng.choice(list(accounts)), rng.uniform(4.0, 9.0)))
        at += rng.uniform(5.0, 10.0)
    return sorted(faults, key=lambda f: f.at_s)
