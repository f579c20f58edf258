from __future__ import annotations

import json

import pytest

from koalr_contracts import (
    EventDecodeError,
    IntegrationConnected,
    IntegrationDisconnected,
    UsageRecord,
    decode_event,
    encode_event,
    topics,
)
from tests.contracts.factories import SEALED, envelope, usage_record_fields


def test_round_trip_through_bytes() -> None:
    record = UsageRecord(**usage_record_fields())
    decoded = decode_event(topics.USAGE_RECORDS, encode_event(record))
    assert decoded == record


def test_any_event_of_the_topic_is_decoded_by_its_type() -> None:
    connected = IntegrationConnected(
        **envelope(provider="cursor", external_id="42", plan="business"), sealed_credential=SEALED
    )
    disconnected = IntegrationDisconnected(**envelope(provider="cursor", purge=True))
    assert isinstance(
        decode_event(topics.INTEGRATIONS, encode_event(connected)), IntegrationConnected
    )
    decoded = decode_event(topics.INTEGRATIONS, encode_event(disconnected))
    assert isinstance(decoded, IntegrationDisconnected)
    assert decoded.purge is True


def test_namespaced_topics_decode_like_their_base() -> None:
    record = UsageRecord(**usage_record_fields())
    assert decode_event("t1234." + topics.USAGE_RECORDS, encode_event(record)) == record


def test_event_on_the_wrong_topic_is_rejected() -> None:
    record = UsageRecord(**usage_record_fields())
    with pytest.raises(EventDecodeError) as exc:
        decode_event(topics.INTEGRATIONS, encode_event(record))
    assert exc.value.topic == topics.INTEGRATIONS
    assert "does not match any of the expected tags" in exc.value.reason


def test_not_json_gives_a_clear_reason() -> None:
    with pytest.raises(EventDecodeError) as exc:
        decode_event(topics.USAGE_RECORDS, b"\x00not json")
    assert str(exc.value).startswith("koalr.usage-records.v1: ")
    assert "Invalid JSON" in exc.value.reason


def test_invalid_field_names_the_path() -> None:
    payload = json.loads(encode_event(UsageRecord(**usage_record_fields())))
    payload["models"][0]["requests"] = -3
    with pytest.raises(EventDecodeError) as exc:
        decode_event(topics.USAGE_RECORDS, json.dumps(payload))
    assert "UsageRecord.models.0.requests: Input should be greater than or equal to 0" in (
        exc.value.reason
    )


def test_unknown_topic() -> None:
    with pytest.raises(EventDecodeError) as exc:
        decode_event("orders.v1", b"{}")
    assert "unknown topic" in exc.value.reason


def test_decode_errors_survive_pickling() -> None:
    import pickle

    error = EventDecodeError(topics.USAGE_RECORDS, "requests: must be >= 0")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.topic, copy.reason, str(copy)) == (error.topic, error.reason, str(error))
