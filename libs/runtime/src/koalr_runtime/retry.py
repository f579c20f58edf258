"""The pause between attempts at a consumed message (or batch) that failed for a reason that
passes: the database or Kafka is down, an integration is not registered yet.

A consumer never retries such a message in place: it seeks back to it and polls again, so it stays
in its group however long the outage lasts, and no attempt limit ever drops the message. What
grows with consecutive failures is this pause: tenacity's exponential backoff with jitter
(``wait_exponential_jitter``, the engine under stamina, which retries the provider calls),
``initial_s`` doubling up to ``max_s`` plus up to ``initial_s`` of jitter, never above ``max_s``.
"""

from __future__ import annotations

from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter


class RetryPause:
    """Pauses after consecutive failures: :meth:`next_delay_s` counts them, :meth:`reset` after a
    success; :meth:`delay_after` serves callers that count failures themselves (per message)."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._wait = wait_exponential_jitter(
            multiplier=initial_s, max=max(max_s, initial_s), jitter=initial_s
        )
        self._failures = 0

    def delay_after(self, failures: int) -> float:
        """The pause after ``failures`` (at least 1) consecutive failures."""
        state = RetryCallState(AsyncRetrying(wait=self._wait), None, (), {})
        state.attempt_number = max(1, failures)
        return float(self._wait(state))

    def next_delay_s(self) -> float:
        """The pause after one more consecutive failure."""
        self._failures += 1
        return self.delay_after(self._failures)

    def reset(self) -> None:
        """A success: the next failure starts from ``initial_s`` again."""
        self._failures = 0
