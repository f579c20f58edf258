"""The limiter keeps every (team, endpoint) under its limit in any rolling window."""

from __future__ import annotations

import pytest

from koalr_providers.pacing import RateLimiter
from tests.syncer.fakes import FakeTime


def limiter(fake: FakeTime, **limits: int) -> RateLimiter:
    return RateLimiter(limits or {"default": 3}, 60.0, clock=fake.clock, sleep=fake.sleep)


async def test_a_burst_up_to_the_limit_goes_out_at_once_then_the_window_paces() -> None:
    fake = FakeTime()
    pacing = limiter(fake, default=3)
    sent = []
    for _ in range(7):
        slot = await pacing.acquire("team", "default")
        sent.append(fake.now - 1000.0)
        fake.now += 0.5  # each response takes half a second
        slot.done()
    # Three at once (spaced only by their own latency), the fourth when the first response is a
    # full window old, and so on.
    assert sent == [0.0, 0.5, 1.0, 60.5, 61.0, 61.5, 121.0]


async def test_no_window_ever_holds_more_than_the_limit() -> None:
    fake = FakeTime()
    pacing = limiter(fake, default=5)
    sends: list[float] = []
    answers: list[float] = []
    for i in range(40):
        slot = await pacing.acquire("team", "default")
        sends.append(fake.now)
        fake.now += 0.01 * (i % 7)
        slot.done()
        answers.append(fake.now)
    # The provider may receive a request at any time between its send and its answer; the
    # next-but-limit request goes out only after that answer plus a full window.
    for i in range(len(sends) - 5):
        assert sends[i + 5] >= answers[i] + 60.0
    assert pacing.waited_s > 0


async def test_teams_and_endpoints_have_separate_budgets() -> None:
    fake = FakeTime()
    pacing = limiter(fake, default=1, usage_events=1)
    for team, bucket in [("a", "default"), ("b", "default"), ("a", "usage_events")]:
        slot = await pacing.acquire(team, bucket)
        slot.done()
    assert fake.sleeps == []
    assert pacing.in_window("a", "default") == 1
    slot = await pacing.acquire("a", "default")
    slot.done()
    assert fake.sleeps == [60.0]


async def test_hold_off_delays_the_bucket_for_the_retry_after() -> None:
    fake = FakeTime()
    pacing = limiter(fake, default=10)
    (await pacing.acquire("team", "default")).done()
    pacing.hold_off("team", "default", 7.0)
    (await pacing.acquire("team", "default")).done()
    assert fake.sleeps == [7.0]
    (await pacing.acquire("other", "default")).done()
    assert fake.sleeps == [7.0]


async def test_a_pending_request_keeps_its_slot_until_it_answers() -> None:
    fake = FakeTime()
    pacing = limiter(fake, default=1)
    first = await pacing.acquire("team", "default")
    fake.now += 100.0  # still no answer: the provider may not have counted it yet
    assert pacing.in_window("team", "default") == 1
    first.done()
    (await pacing.acquire("team", "default")).done()
    assert sum(fake.sleeps) == pytest.approx(60.0)


def test_limits_must_be_positive_and_buckets_known() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter({"default": 0}, 60.0)
    with pytest.raises(ValueError, match="positive"):
        RateLimiter({"default": 1}, 0.0)
    with pytest.raises(ValueError, match="unknown pacing bucket"):
        RateLimiter({"default": 1}, 60.0).limit("analytics")
