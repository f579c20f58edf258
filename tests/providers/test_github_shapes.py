"""Report files in every shape GitHub is known to send, throttles, and the 6b arithmetic."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from koalr_contracts import MemberRef, Seat
from koalr_providers.errors import ProviderShapeError
from koalr_providers.github import GitHubClient, RateLimitedError, RetryPolicy
from koalr_providers.github.client import github_throttle
from koalr_providers.github.definitions import (
    model_breakdown,
    models,
    requests,
    seat_cents,
    seats_cents,
)
from koalr_providers.github.shapes import (
    CopilotSeat,
    SeatPlanType,
    UserDayRow,
    parse_premium_net_cents,
    parse_report_file,
    parse_user_day,
)
from koalr_providers.http import Throttle

DAY = date(2026, 3, 10)
ROW = {
    "user_id": 7,
    "user_login": "ann-lee",
    "day": "2026-03-10",
    "user_initiated_interaction_count": 5,
    "totals_by_model_feature": [
        {"model": "gpt-5", "feature": "chat_panel_ask_mode", "user_initiated_interaction_count": 2},
        {"model": "gpt-5", "feature": "chat_panel_agent_mode", "user_initiated_interaction_count": 1},
        {"model": "claude-sonnet-4.5", "feature": "agent_edit", "user_initiated_interaction_count": 4},
    ],
    "totals_by_cli": {"session_count": 1, "request_count": 3, "prompt_count": 3},
    "ai_credits_used": 12.5,
    "a_field_from_next_year": {"nested": [1, 2]},
}  # fmt: skip
OTHER = {"user_id": 8, "user_login": "bo-kim", "day": "2026-03-10"}


@pytest.mark.parametrize(
    "content",
    [
        (json.dumps(ROW) + "\n" + json.dumps(OTHER) + "\n").encode(),
        json.dumps([ROW, OTHER], indent=2).encode(),
    ],
    ids=["ndjson", "array"],
)
def test_ndjson_and_arrays_give_the_same_rows(content: bytes) -> None:
    rows = [parse_user_day(r, DAY) for r in parse_report_file(content)]
    assert rows == [
        UserDayRow(
            login="ann-lee",
            user_id=7,
            day=DAY,
            interactions=5,
            model_interactions={"gpt-5": 3, "claude-sonnet-4.5": 4},
            cli_requests=3,
        ),
        UserDayRow(login="bo-kim", user_id=8, day=DAY, interactions=0),
    ]


def test_one_pretty_printed_object_is_one_row() -> None:
    (row,) = parse_report_file(json.dumps(OTHER, indent=2).encode())
    assert parse_user_day(row, DAY) == UserDayRow(
        login="bo-kim", user_id=8, day=DAY, interactions=0
    )


def test_a_broken_line_is_a_shape_error() -> None:
    with pytest.raises(ProviderShapeError, match="line 2 is not JSON"):
        parse_report_file(b'{"user_login": "a"}\n{"user_login": \n')


def test_section_6b_requests_and_models_of_a_row() -> None:
    row = parse_user_day(ROW, DAY)
    assert row is not None
    assert models(row) == {"gpt-5": 3, "claude-sonnet-4.5": 4}
    # max(5 prompts, 7 attributed) + 3 CLI requests
    assert requests(row) == 10
    assert model_breakdown(row) == {"gpt-5": 3, "claude-sonnet-4.5": 4, "unattributed": 3}
    bare = UserDayRow(login="x", user_id=None, day=DAY, interactions=4)
    assert requests(bare) == 4
    assert model_breakdown(bare) == {"unattributed": 4}


def seat(plan_type: SeatPlanType, created: str, cancelled: date | None = None) -> CopilotSeat:
    return CopilotSeat(
        login="x",
        user_id=None,
        plan_type=plan_type,
        created_at=datetime.fromisoformat(created),
        pending_cancellation_date=cancelled,
        last_activity_at=None,
        last_activity_editor=None,
    )


def test_seat_cost_per_day_by_plan_type_creation_and_cancellation() -> None:
    march = date(2026, 3, 10)  # 31 days
    assert seat_cents(seat("business", "2026-03-01T00:00:00+00:00"), march, "enterprise") == (
        Decimal("61.29032")  # 1900 / 31
    )
    assert seat_cents(seat("enterprise", "2026-03-01T00:00:00+00:00"), march, "business") == (
        Decimal("125.80645")  # 3900 / 31
    )
    assert seat_cents(seat("unknown", "2026-03-01T00:00:00+00:00"), march, "enterprise") == (
        Decimal("125.80645")  # unknown takes the org's plan
    )
    # Created late on 03-10 in UTC-06:00 is 03-11 in UTC: not yet billed on 03-10.
    late = seat("business", "2026-03-10T20:00:00-06:00")
    assert seat_cents(late, march, "business") == 0
    assert seat_cents(late, date(2026, 3, 11), "business") == Decimal("61.29032")
    cancelled = seat("business", "2026-01-01T00:00:00+00:00", cancelled=date(2026, 3, 11))
    assert seat_cents(cancelled, march, "business") == Decimal("61.29032")
    assert seat_cents(cancelled, date(2026, 3, 11), "business") == 0
    assert seat_cents(cancelled, date(2026, 2, 10), "business") == Decimal("67.85714")  # / 28
    # Several seats are added exactly, then rounded once: 3 x 1900 / 31 = 183.870967...
    three = [seat("business", "2026-03-01T00:00:00+00:00")] * 3
    assert seats_cents(three, march, "business") == Decimal("183.87097")


def test_the_contracts_seat_is_priced_the_same_way() -> None:
    snapshot_seat = Seat(
        member=MemberRef(login="ann-lee"),
        plan_type="unknown",
        created_at=datetime(2026, 2, 27, 23, 0, tzinfo=UTC),
        pending_cancellation_date=date(2026, 4, 1),
    )
    assert seat_cents(snapshot_seat, date(2026, 2, 27), "business") == Decimal("67.85714")
    assert seat_cents(snapshot_seat, date(2026, 2, 26), "business") == 0
    assert seat_cents(snapshot_seat, date(2026, 4, 1), "business") == 0


def test_premium_requests_are_net_amounts_in_exact_cents() -> None:
    body = json.loads(
        '{"usageItems": [{"model": "GPT-5", "netAmount": 0.12, "grossAmount": 0.4},'
        ' {"model": "Claude Opus 4.1", "netAmount": 2.8}, {"model": "o3"}]}',
        parse_float=Decimal,
    )
    assert parse_premium_net_cents(body) == Decimal(292)


def response(status: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers)


def test_githubs_throttles_are_told_from_permission_answers() -> None:
    secondary = "You have exceeded a secondary rate limit."
    assert github_throttle(response(403, secondary, **{"retry-after": "30"})) == Throttle(30.0)
    assert github_throttle(response(429, secondary, **{"retry-after": "7"})) == Throttle(7.0)
    assert github_throttle(response(403, secondary)) == Throttle(None)
    assert github_throttle(response(429)) == Throttle(None)
    spent = github_throttle(
        response(403, "API rate limit exceeded", **{"x-ratelimit-remaining": "0",
                                                     "x-ratelimit-reset": "4102444800"})
    )  # fmt: skip
    assert spent is not None
    assert spent.wait_s == pytest.approx(4102444800 - time.time(), abs=5)
    assert (
        github_throttle(response(403, "Resource not accessible by personal access token")) is None
    )
    assert github_throttle(response(404)) is None
    assert github_throttle(response(200, **{"retry-after": "5"})) is None


BILLING = {"seat_breakdown": {}, "plan_type": "business"}


def scripted(*answers: httpx.Response) -> httpx.MockTransport:
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        del request
        return queue.pop(0)

    return httpx.MockTransport(handler)


async def test_secondary_limits_wait_for_retry_after(retry_waits: list[float]) -> None:
    transport = scripted(
        response(403, "secondary rate limit", **{"retry-after": "0.02"}),
        response(429, "secondary rate limit", **{"retry-after": "0.01"}),
        httpx.Response(200, json=BILLING),
    )
    policy = RetryPolicy(rate_limit_retries=3, throttle_base_s=0.5)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.github.test") as http:
        client = GitHubClient(http, "ghp_x", org="acme", policy=policy)
        assert await client.billing() == "business"
        assert client.rate_limited == 2
    assert retry_waits == pytest.approx([0.02, 0.01], abs=1e-9)


async def test_unhinted_secondary_limits_wait_the_base_then_exponentially(
    retry_waits: list[float],
) -> None:
    throttled = [response(403, "You have exceeded a secondary rate limit.") for _ in range(3)]
    transport = scripted(*throttled)
    policy = RetryPolicy(rate_limit_retries=2, throttle_base_s=0.01)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.github.test") as http:
        client = GitHubClient(http, "ghp_x", org="acme", policy=policy)
        with pytest.raises(RateLimitedError):
            await client.billing()
    assert retry_waits == pytest.approx([0.01, 0.02], abs=1e-9)
