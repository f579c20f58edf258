"""The pause between attempts at a batch the database could not take."""

from __future__ import annotations

import pytest

from koalr_runtime.retry import RetryPause


def test_the_pause_doubles_with_jitter_up_to_the_cap_and_a_success_resets_it() -> None:
    pause = RetryPause(initial_s=0.2, max_s=5)
    first_five = [pause.next_delay_s() for _ in range(5)]
    for delay, base in zip(first_five, (0.2, 0.4, 0.8, 1.6, 3.2), strict=True):
        assert base <= delay <= base + 0.2
    # 6.4 s and more are over the cap: exactly the cap, however long the database stays down.
    assert [pause.next_delay_s() for _ in range(20)] == [5.0] * 20

    pause.reset()
    assert 0.2 <= pause.next_delay_s() <= 0.4


@pytest.mark.parametrize(("initial_s", "max_s", "expected"), [(1.0, 1.0, 1.0), (2.0, 0.5, 2.0)])
def test_the_cap_is_never_below_the_first_pause(
    initial_s: float, max_s: float, expected: float
) -> None:
    pause = RetryPause(initial_s=initial_s, max_s=max_s)
    assert [pause.next_delay_s() for _ in range(3)] == [expected] * 3


def test_a_caller_counting_failures_itself_gets_the_same_schedule() -> None:
    pause = RetryPause(initial_s=0.5, max_s=30)
    for failures, base in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
        assert base <= pause.delay_after(failures) <= base + 0.5
    assert pause.delay_after(10) == 30.0
