"""The chaos run's tally of injected faults and its printed summary of checks."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from koalr_devstack.chaos_kafka import LetterCheck


@dataclass
class Tally:
    """What was injected, for the summary."""

    faults: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    """Processes that exited on their own (a start while Kafka or PostgreSQL was down)."""
    provider_answers: Counter[str] = field(default_factory=Counter)
    fault_errors: list[str] = field(default_factory=list)
    outages_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Seconds from each kill of Kafka or PostgreSQL until it answered again."""
    resyncs: Counter[str] = field(default_factory=Counter)
    """Manual resyncs asked for during the faults, by the connector's answer."""


@dataclass
class Result:
    ok: bool
    lines: list[str]


@dataclass(frozen=True)
class Outcome:
    """Everything the summary reports about one run."""

    seed: int
    tally: Tally
    garbage: Counter[str]
    copies: Counter[str]
    accounts: list[str]
    problems: dict[str, list[str]]
    """Per account, why it is not synced and exact (empty lists are left out)."""
    letters: LetterCheck | None
    settle_s: float


def summarize(outcome: Outcome) -> Result:
    """The summary: what was injected, then each check with PASS or FAIL."""
    tally, letters, problems = outcome.tally, outcome.letters, outcome.problems
    lines = [f"Chaos run, seed {outcome.seed}: summary", ""]
    lines.append("Faults injected:")
    for kind, count in sorted(tally.faults.items()):
        lines.append(f"  {kind:<18} {count}")
    lines.append(
        "  service kills      "
        + ", ".join(f"{name} x{n}" for name, n in sorted(tally.restarts.items()))
    )
    lines.append(
        "  provider answers   "
        + ", ".join(f"{k}: {v}" for k, v in sorted(tally.provider_answers.items()))
    )
    garbage, copies = outcome.garbage, outcome.copies
    lines.append(
        "  outages            "
        + ", ".join(
            f"{target} {', '.join(f'{s:.0f} s' for s in spans)}"
            for target, spans in sorted(tally.outages_s.items())
        )
    )
    lines.append(
        "  manual resyncs     "
        + ", ".join(f"HTTP {k}: {v}" for k, v in sorted(tally.resyncs.items()))
    )
    lines.append(
        "  garbage produced   " + ", ".join(f"{t}: {n}" for t, n in sorted(garbage.items()))
    )
    lines.append(
        "  copies re-produced " + ", ".join(f"{t}: {n}" for t, n in sorted(copies.items()))
    )
    lines += [f"  fault not injected: {error}" for error in tally.fault_errors]
    if tally.unexpected_exits:
        lines.append(
            "  exited on their own and restarted: "
            + ", ".join(f"{name} x{n}" for name, n in sorted(tally.unexpected_exits.items()))
        )
    lines += ["", f"Checks (settled in {outcome.settle_s:.1f} s):"]
    checks: list[tuple[str, bool, list[str]]] = []
    for name in outcome.accounts:
        found = problems.get(name, [])
        checks.append(
            (
                f"{name}: idle, data_through as expected, every day equals the truth",
                not found,
                found,
            )
        )
    if letters is None:
        checks.append(("dead letters", False, ["not checked"]))
    else:
        checks.append(
            (
                (
                    f"each of {letters.garbage} garbage messages dead-lettered once per "
                    f"consuming group ({letters.expected_letters} letters; "
                    f"{letters.republished} re-published after a crash with the same id)"
                ),
                not letters.problems,
                letters.problems[:10],
            )
        )
        checks.append(
            ("no real message dead-lettered", not letters.unexpected, letters.unexpected[:10])
        )
    checks.append(("every fault injected as scheduled", not tally.fault_errors, []))
    for what, ok, details in checks:
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {what}")
        lines += [f"          {d}" for d in details]
    ok = all(ok for _, ok, _ in checks)
    lines += ["", f"Result: {'all checks passed' if ok else 'FAILED'}"]
    return Result(ok, lines)
