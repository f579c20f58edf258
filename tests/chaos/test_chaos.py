"""The short chaos run inside ``make test``: one seed, two orgs, 40 s of faults.

It starts its own Kafka broker and PostgreSQL cluster (the pair the other tests share is neither used
nor touched), so it needs what ``deploy/local/infra.sh`` needs: Java, the Kafka jars (resolved
once) and Debian's PostgreSQL server. ``make chaos`` runs the longer version over three seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from koalr_devstack.chaos import ChaosPlan, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_chaos_run_ends_exact_with_every_garbage_message_dead_lettered_once() -> None:
    result = run_chaos(ChaosPlan(seed=11, duration_s=40, orgs=2, settle_timeout_s=150, root=ROOT))
    summary = "\n".join(result.lines)
    assert result.ok, summary
    # The run did break things: the summary counts what was injected.
    assert "kill_service" in summary
    assert "restart_kafka" in summary
    assert "restart_postgres" in summary
