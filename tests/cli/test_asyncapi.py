"""The committed docs/asyncapi.yaml must be what the code generates, and describe every topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from koalr_cli.asyncapi import document
from koalr_contracts import topics

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_the_committed_document_matches_the_code() -> None:
    assert DOCUMENT.read_text() == document(), (
        "docs/asyncapi.yaml is out of date; run `make docs` and commit the result"
    )


def _events(spec: dict[str, Any], message_ref: str) -> set[str]:
    message = spec["components"]["messages"][message_ref.rsplit("/", 1)[1]]
    name = message["payload"]["$ref"].rsplit("/", 1)[1]
    union = spec["components"]["schemas"][name].get("oneOf")
    if union is None:  # one event: the payload is its schema
        return {name}
    return {option["$ref"].rsplit("/", 1)[1] for option in union}


def test_every_topic_with_its_publishers_consumer_groups_and_events() -> None:
    spec = yaml.safe_load(document())
    assert spec["asyncapi"] == "3.0.0"
    found: dict[str, dict[str, Any]] = {}
    for name, operation in spec["operations"].items():
        channel = spec["channels"][name]
        topic = found.setdefault(channel["address"], {"send": set(), "receive": set()})
        topic["send" if operation["action"] == "send" else "receive"].add(name.rsplit(":", 1)[1])
        [ref] = channel["messages"].values()
        topic.setdefault("events", _events(spec, ref["$ref"]))
        assert topic["events"] == _events(spec, ref["$ref"]), name

    assert found == {
        topics.INTEGRATIONS: {
            "send": {"connector"},
            "receive": {"syncer-registry", "metrics-integrations"},
            "events": {
                "IntegrationConnected",
                "IntegrationCredentialsRotated",
                "IntegrationDisconnected",
            },
        },
        topics.SYNC_JOBS: {
            "send": {"connector", "syncer"},
            "receive": {"syncer-workers"},
            "events": {"SyncJobRequested"},
        },
        topics.USAGE_RECORDS: {
            "send": {"syncer"},
            "receive": {"metrics-ingest"},
            "events": {"UsageRecord", "CycleSpendSnapshot", "SeatsSnapshot", "DaySpend"},
        },
        topics.SYNC_STATUS: {
            "send": {"syncer"},
            "receive": {"connector-sync-status", "metrics-sync-status"},
            "events": {"SyncStatusChanged"},
        },
        topics.MEMBER_ERASURES: {
            "send": {"metrics"},
            "receive": {"syncer-member-erasures"},
            "events": {"MemberErased"},
        },
        topics.DEAD_LETTERS: {
            "send": {"connector", "syncer", "metrics"},
            "receive": set(),
            "events": {"DeadLetter"},
        },
        topics.ALERTS: {
            "send": {"metrics"},
            "receive": set(),
            "events": {"Alert"},
        },
    }
    assert set(found) == set(topics.ALL_TOPICS)
