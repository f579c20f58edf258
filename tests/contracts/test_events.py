from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from koalr_contracts import (
    CycleSpendSnapshot,
    DaySpend,
    IntegrationConnected,
    SeatsSnapshot,
    SyncJobRequested,
    SyncStatusChanged,
    UsageRecord,
)
from tests.contracts.factories import SEALED, envelope, usage_record_fields


def _error_text(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


class TestEnvelope:
    def test_defaults_fill_ids_and_utc_time(self) -> None:
        event = IntegrationConnected(
            **envelope(provider="cursor", external_id="42", plan="business"),
            sealed_credential=SEALED,
        )
        assert event.event_type == "IntegrationConnected"
        assert event.schema_version == 2
        assert event.sequence == 0
        assert event.occurred_at.tzinfo == UTC
        assert event.event_id != event.correlation_id
        assert event.kafka_key() == str(event.integration_id).encode()

    def test_occurred_at_is_normalised_to_utc(self) -> None:
        plus_two = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
        event = SyncStatusChanged(**envelope(provider="cursor", state="idle", occurred_at=plus_two))
        assert event.occurred_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
        assert event.occurred_at.utcoffset() == timedelta(0)

    def test_naive_datetime_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(
                **envelope(provider="cursor", state="idle", occurred_at=datetime(2026, 1, 1))  # noqa: DTZ001
            )
        assert "timezone info" in _error_text(exc)

    def test_unknown_fields_are_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(**envelope(provider="cursor", state="idle", colour="blue"))
        assert "colour" in _error_text(exc)
        assert "Extra inputs are not permitted" in _error_text(exc)

    def test_unknown_provider_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(**envelope(provider="windsurf", state="idle"))
        assert "provider" in _error_text(exc)
        assert "'cursor' or 'github_copilot'" in _error_text(exc)

    def test_negative_sequence_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(**envelope(provider="cursor", state="idle", sequence=-1))
        assert "sequence" in _error_text(exc)
        assert "greater than or equal to 0" in _error_text(exc)

    def test_events_are_immutable(self) -> None:
        event = SyncStatusChanged(**envelope(provider="cursor", state="idle"))
        with pytest.raises(ValidationError):
            event.state = "error"  # type: ignore[misc]


class TestIntegrationConnected:
    def test_degraded_needs_a_reason(self) -> None:
        with pytest.raises(ValidationError) as exc:
            IntegrationConnected(
                **envelope(provider="cursor", external_id="42", plan="team", status="degraded"),
                sealed_credential=SEALED,
            )
        assert "status_reason" in _error_text(exc)

    def test_clear_text_key_is_not_a_sealed_credential(self) -> None:
        with pytest.raises(ValidationError) as exc:
            IntegrationConnected(
                **envelope(provider="cursor", external_id="42", plan="business"),
                sealed_credential="crsr_" + "a" * 64,
            )
        assert "sealed_credential" in _error_text(exc)

    def test_backfill_days_bounds(self) -> None:
        with pytest.raises(ValidationError) as exc:
            IntegrationConnected(
                **envelope(provider="cursor", external_id="42", plan="business"),
                sealed_credential=SEALED,
                backfill_days=0,
            )
        assert "backfill_days" in _error_text(exc)


class TestUsageRecord:
    def test_valid_record_normalises_email_and_keeps_decimals(self) -> None:
        record = UsageRecord(**usage_record_fields())
        assert record.member.email == "alex@example.com"
        assert record.member.key == "alex@example.com"
        assert record.charged_cents == Decimal("21.43232")
        assert '"charged_cents":"21.43232"' in record.model_dump_json()

    @pytest.mark.parametrize("field", ["requests", "tabs_shown", "lines_added"])
    def test_negative_counts_are_rejected(self, field: str) -> None:
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(**{field: -1}))
        assert field in _error_text(exc)
        assert "greater than or equal to 0" in _error_text(exc)

    def test_negative_model_cents_are_rejected(self) -> None:
        fields = usage_record_fields(
            requests=1,
            models=[{"model": "gpt-5", "requests": 1, "charged_cents": Decimal(-1)}],
            charged_cents=Decimal(-1),
        )
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**fields)
        assert "models.0.charged_cents" in _error_text(exc)

    def test_day_after_its_fetch_is_rejected(self) -> None:
        fetched_at = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(day=date(2026, 12, 1), fetched_at=fetched_at))
        assert "day 2026-12-01 is after the day the record was fetched (2026-11-30 UTC)" in (
            _error_text(exc)
        )

    def test_day_of_the_fetch_is_accepted_whatever_the_local_clock(self) -> None:
        # A record fetched just after midnight by a producer whose clock runs ahead of ours is
        # still valid: only the record's own fields are compared, never the consumer's clock.
        fetched_at = datetime.now(UTC) + timedelta(days=1)
        record = UsageRecord(**usage_record_fields(day=fetched_at.date(), fetched_at=fetched_at))
        assert record.day == fetched_at.date()

    def test_models_must_add_up_to_requests(self) -> None:
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(requests=6))
        assert "the models' requests add up to 5, not to requests=6" in _error_text(exc)

    def test_models_must_add_up_to_charged_cents(self) -> None:
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(charged_cents=Decimal("21.43")))
        assert "charged_cents" in _error_text(exc)

    def test_duplicate_models_are_rejected(self) -> None:
        models: list[dict[str, Any]] = [
            {"model": "gpt-5", "requests": 1},
            {"model": "gpt-5", "requests": 1},
        ]
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(requests=2, models=models, charged_cents=0))
        assert "each model appears at most once" in _error_text(exc)

    def test_member_needs_an_identity(self) -> None:
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(member={"name": "Nobody"}))
        assert "a member needs an email or a login" in _error_text(exc)

    def test_invalid_email_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            UsageRecord(**usage_record_fields(member={"email": "not-an-email"}))
        assert "is not an email address" in _error_text(exc)

    def test_copilot_members_are_keyed_by_login(self) -> None:
        record = UsageRecord(
            **usage_record_fields(provider="github_copilot", member={"login": "octocat"})
        )
        assert record.member.key == "github:octocat"

    def test_float_money_is_never_needed(self) -> None:
        record = UsageRecord(**usage_record_fields())
        dumped = record.model_dump(mode="json")
        assert dumped["models"][1]["charged_cents"] == "20.18232"
        assert UsageRecord.model_validate_json(record.model_dump_json()) == record


class TestSyncJobRequested:
    def test_window_must_be_ordered(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncJobRequested(
                **envelope(
                    provider="cursor",
                    reason="backfill",
                    window_start=date(2026, 11, 2),
                    window_end=date(2026, 11, 1),
                )
            )
        assert "window_start 2026-11-02 is after window_end 2026-11-01" in _error_text(exc)

    def test_days_counts_both_ends(self) -> None:
        job = SyncJobRequested(
            **envelope(
                provider="cursor",
                reason="backfill",
                window_start=date(2026, 10, 27),
                window_end=date(2026, 11, 25),
            )
        )
        assert job.days == 30

    def test_unknown_reason_is_rejected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncJobRequested(
                **envelope(
                    provider="cursor",
                    reason="because",
                    window_start=date(2026, 11, 1),
                    window_end=date(2026, 11, 1),
                )
            )
        assert "reason" in _error_text(exc)


class TestSyncStatusChanged:
    def test_error_needs_reason_code(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(**envelope(provider="cursor", state="error"))
        assert "an error state needs a reason_code" in _error_text(exc)

    def test_progress_cannot_exceed_total(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SyncStatusChanged(
                **envelope(provider="cursor", state="syncing", progress={"done": 31, "total": 30})
            )
        assert "progress done=31 exceeds total=30" in _error_text(exc)


class TestCycleSpendSnapshot:
    def test_total_must_add_up(self) -> None:
        member = {"member": {"email": "a@x.io"}, "overall_spend_cents": Decimal("10.5")}
        with pytest.raises(ValidationError) as exc:
            CycleSpendSnapshot(
                **envelope(
                    provider="cursor",
                    cycle_start=date(2026, 11, 1),
                    members=[member],
                    total_cents=Decimal(10),
                    fetched_at=datetime.now(UTC),
                )
            )
        assert "add up to 10.5" in _error_text(exc)


class TestCopilotSeatsAndSpend:
    def _seat(self, login: str, **fields: Any) -> dict[str, Any]:
        return {
            "member": {"login": login},
            "plan_type": "business",
            "created_at": datetime(2026, 10, 1, 9, 0, tzinfo=timezone(timedelta(hours=-6))),
            **fields,
        }

    def test_a_seats_snapshot_keeps_offsets_as_utc_and_never_used_seats(self) -> None:
        snapshot = SeatsSnapshot(
            **envelope(
                provider="github_copilot",
                plan="business",
                seats=[self._seat("octocat"), self._seat("hubot", plan_type="unknown")],
                fetched_at=datetime(2026, 11, 30, tzinfo=UTC),
            )
        )
        assert snapshot.seats[0].created_at == datetime(2026, 10, 1, 15, 0, tzinfo=UTC)
        assert snapshot.seats[1].last_activity_at is None
        assert snapshot.seats[1].member.key == "github:hubot"

    def test_a_member_holds_one_seat_per_snapshot(self) -> None:
        with pytest.raises(ValidationError) as exc:
            SeatsSnapshot(
                **envelope(
                    provider="github_copilot",
                    plan="business",
                    seats=[self._seat("octocat"), self._seat("octocat")],
                    fetched_at=datetime(2026, 11, 30, tzinfo=UTC),
                )
            )
        assert "each member holds at most one seat" in _error_text(exc)

    def test_day_spend_is_exact_cents_and_not_after_its_fetch(self) -> None:
        spend = DaySpend(
            **envelope(provider="github_copilot", day=date(2026, 11, 28)),
            cents=Decimal("400.04"),
            fetched_at=datetime(2026, 11, 30, tzinfo=UTC),
        )
        assert '"cents":"400.04"' in spend.model_dump_json()
        with pytest.raises(ValidationError) as exc:
            DaySpend(
                **envelope(provider="github_copilot", day=date(2026, 12, 1)),
                cents=Decimal(1),
                fetched_at=datetime(2026, 11, 30, tzinfo=UTC),
            )
        assert "day 2026-12-01 is after the day the spend was fetched" in _error_text(exc)
