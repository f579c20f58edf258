"""The subscriber's retry of transient failures."""

from __future__ import annotations

import pytest

from koalr_connector.handlers import retry_transient


async def test_transient_failures_are_retried_until_success() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(len(calls))
        if len(calls) < 3:
            raise ConnectionRefusedError("database restarting")
        return "applied"

    assert await retry_transient(flaky, what="test", initial_s=0.01, max_s=0.02) == "applied"
    assert calls == [0, 1, 2]


async def test_other_failures_propagate_at_once() -> None:
    calls: list[int] = []

    async def broken() -> str:
        calls.append(1)
        raise ValueError("cannot be applied")

    with pytest.raises(ValueError, match="cannot be applied"):
        await retry_transient(broken, what="test", initial_s=0.01)
    assert calls == [1]
