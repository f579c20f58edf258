"""Clients of the providers' APIs, shared by the connector and the syncer.

- :mod:`koalr_providers.errors`: the one error hierarchy (a contract code, ``retryable``, an
  optional ``retry_after_s``, a sentence that says what to do).
- :mod:`koalr_providers.http`: the one HTTP layer: ``Retry-After`` parsing, what counts as
  transient (and which answers are throttles), and the retry policy (backoff by ``stamina``).
- :mod:`koalr_providers.pacing`: per-team, per-bucket pacing of calls: a sliding log for fixed
  limits (Cursor), the announced budget of ``x-ratelimit-*`` headers (GitHub).
- :mod:`koalr_providers.cursor`: the Cursor Admin API client and its response shapes.
- :mod:`koalr_providers.github`: the GitHub Copilot client, its response shapes and the Copilot
  definitions (section 6b of the architecture) as pure functions.

A library: it never imports a service.
"""
