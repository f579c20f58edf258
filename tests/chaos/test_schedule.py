"""The chaos run's fault schedule and its guard around the machine's shared Kafka and
PostgreSQL (no infrastructure needed)."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from koalr_contracts import EventDecodeError, decode_event, topics
from koalr_devstack.chaos_faults import schedule
from koalr_devstack.chaos_kafka import GARBAGE_KINDS, LetterCheck, garbage_value
from koalr_devstack.chaos_report import Outcome, Tally, summarize
from koalr_devstack.private_infra import (
    SHARED_PORTS,
    InfraError,
    PrivateInfra,
    reap_stale_runs,
)

SERVICES = ["connector", "syncer-1", "syncer-2", "metrics"]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    first = schedule(7, 100, SERVICES, ["0", "1"])
    assert first == schedule(7, 100, SERVICES, ["0", "1"])
    assert first != schedule(8, 100, SERVICES, ["0", "1"])


@pytest.mark.parametrize("duration_s", [45.0, 100.0, 300.0])
def test_every_service_is_killed_and_kafka_and_postgres_restart_apart(duration_s: float) -> None:
    faults = schedule(3, duration_s, SERVICES, ["0", "1", "2"])
    killed = Counter(f.target for f in faults if f.kind == "kill_service")
    assert set(killed) == set(SERVICES)
    infra = [f for f in faults if f.kind in ("restart_kafka", "restart_postgres")]
    assert {f.kind for f in infra} == {"restart_kafka", "restart_postgres"}
    assert all(f.at_s < duration_s for f in faults)
    # Each infrastructure restart has its own slot: none starts before the previous one could end.
    starts = sorted(f.at_s for f in infra)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(starts))
    assert {f.kind for f in faults} >= {"provider_5xx", "provider_stall", "provider_429"}


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
@pytest.mark.parametrize(
    "topic", [topics.INTEGRATIONS, topics.SYNC_JOBS, topics.USAGE_RECORDS, topics.SYNC_STATUS]
)
def test_every_kind_of_garbage_is_refused_by_every_consumed_topic(kind: str, topic: str) -> None:
    value = garbage_value(random.Random(1), kind, "chaos-garbage:1:1")
    with pytest.raises(EventDecodeError):
        decode_event(f"ns.{topic}", value)


def test_the_private_pair_refuses_the_shared_ports_and_cluster(tmp_path: Path) -> None:
    for port in SHARED_PORTS:
        with pytest.raises(InfraError, match="overlap"):
            PrivateInfra(tmp_path, tmp_path / "run", tmp_path / "jars", "c1", pg_port=port)
    with pytest.raises(InfraError, match="shared"):
        PrivateInfra(tmp_path, tmp_path / "run", tmp_path / "jars", "koalr")


def test_the_ports_in_the_environment_are_protected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:40001")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:40002/db")
    with pytest.raises(InfraError):
        PrivateInfra(tmp_path, tmp_path / "run", tmp_path / "jars", "c1", kafka_port=40001)
    with pytest.raises(InfraError):
        PrivateInfra(tmp_path, tmp_path / "run", tmp_path / "jars", "c1", pg_port=40002)


def test_a_kafka_pid_file_of_another_broker_is_not_ours(tmp_path: Path) -> None:
    infra = PrivateInfra(tmp_path, tmp_path / "run", tmp_path / "jars", "c1")
    (tmp_path / "run" / "kafka").mkdir(parents=True)
    # Our own pid: alive, but its command line names no server.properties of this run.
    (tmp_path / "run" / "kafka" / "kafka.pid").write_text(str(os.getpid()))
    assert infra.kafka_pid() is None
    with pytest.raises(InfraError, match="not running"):
        infra.kill_kafka()


def test_an_interrupted_run_is_cleaned_up_and_a_live_one_is_left_alone(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = tmp_path / f"run-1-{finished.pid}"
    live = tmp_path / f"run-2-{os.getpid()}"
    for run_dir in (dead, live):
        (run_dir / "kafka").mkdir(parents=True)
    removed = reap_stale_runs(tmp_path, "koalr_chaos_test_never_")
    assert removed == [str(dead)]
    assert not dead.exists()
    assert live.exists()


def _outcome(problems: dict[str, list[str]], letters: LetterCheck | None) -> Outcome:
    tally = Tally()
    tally.faults["kill_service"] = 4
    return Outcome(
        seed=5,
        tally=tally,
        garbage=Counter({topics.SYNC_JOBS: 2}),
        copies=Counter(),
        accounts=["org-1/cursor", "org-1/copilot"],
        problems=problems,
        letters=letters,
        settle_s=3.0,
    )


def test_the_summary_fails_on_any_failed_check_and_names_it() -> None:
    clean = LetterCheck(garbage=2, expected_letters=2, problems=[], unexpected=[])
    assert summarize(_outcome({}, clean)).ok
    wrong_total = summarize(_outcome({"org-1/cursor": ["total spend 10 != 11"]}, clean))
    assert not wrong_total.ok
    assert "  FAIL  org-1/cursor: idle, data_through as expected, every day equals the truth" in (
        wrong_total.lines
    )
    assert "          total spend 10 != 11" in wrong_total.lines
    twice = LetterCheck(2, 2, ["chaos-garbage:5:1 on koalr.sync-jobs.v1: 2 dead letters"], [])
    assert not summarize(_outcome({}, twice)).ok
    assert not summarize(_outcome({}, LetterCheck(2, 2, [], ["a real message"]))).ok
    assert not summarize(_outcome({}, None)).ok
