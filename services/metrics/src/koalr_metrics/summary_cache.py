"""Rendered summaries kept per process, served only while the org's data version is unchanged.

Every transaction that changes what a summary reads bumps the org's counter in
``data_versions`` (:mod:`koalr_metrics.repository`) in the same transaction. A request reads the
counter first (one primary-key lookup) and is served from here only if the entry was rendered
at that very counter; otherwise the summary is queried, rendered and stored. The counter is read
*before* the summary's query, so an entry never holds data older than its counter says: at worst
it holds newer data under an older counter and is rendered again on the next request. Nothing
here depends on a clock but the day the range ends, which is part of the key. Each replica keeps
its own entries, and every one of them sees a commit on its next request.

A plain ``OrderedDict`` LRU: the entries are a few kilobytes each and the bound is a count; no
expiry is needed because correctness comes from the counter.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date
from typing import TypeAlias

SummaryKey: TypeAlias = tuple[str, str, bool, int, str | None, date]
"""(org_id, viewer role, is_admin, days, provider filter, the range's last day)"""


class SummaryCache:
    """At most ``capacity`` rendered summaries, least recently used dropped first (0: off)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[SummaryKey, tuple[int, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: SummaryKey, version: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: SummaryKey, version: int, body: bytes) -> None:
        if self._capacity <= 0:
            return
        current = self._entries.get(key)
        if current is not None and current[0] > version:
            return  # a concurrent request already stored a newer rendering
        self._entries[key] = (version, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
