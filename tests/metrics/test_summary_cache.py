"""The summary cache serves an entry only at the version it was rendered at, and stays bounded."""

from __future__ import annotations

from datetime import date

from koalr_metrics.summary_cache import SummaryCache, SummaryKey

DAY = date(2026, 11, 25)


def _key(org: str, role: str = "admin") -> SummaryKey:
    return (org, role, role == "admin", 30, None, DAY)


def test_an_entry_is_served_only_at_the_version_it_was_rendered_at() -> None:
    cache = SummaryCache(8)
    cache.put(_key("org-a"), 3, b"v3")
    assert cache.get(_key("org-a"), 3) == b"v3"
    assert cache.get(_key("org-a"), 4) is None
    assert cache.get(_key("org-a", "member"), 3) is None
    assert cache.get(_key("org-b"), 3) is None
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_rendering_at_an_older_version_does_not_replace_a_newer_one() -> None:
    cache = SummaryCache(8)
    cache.put(_key("org-a"), 5, b"v5")
    cache.put(_key("org-a"), 4, b"v4")
    assert cache.get(_key("org-a"), 5) == b"v5"
    cache.put(_key("org-a"), 6, b"v6")
    assert cache.get(_key("org-a"), 6) == b"v6"


def test_the_least_recently_used_entry_goes_first_and_zero_keeps_nothing() -> None:
    cache = SummaryCache(2)
    cache.put(_key("org-a"), 1, b"a")
    cache.put(_key("org-b"), 1, b"b")
    assert cache.get(_key("org-a"), 1) == b"a"  # org-b is now the least recently used
    cache.put(_key("org-c"), 1, b"c")
    assert len(cache) == 2
    assert cache.get(_key("org-b"), 1) is None
    assert cache.get(_key("org-a"), 1) == b"a"
    assert cache.get(_key("org-c"), 1) == b"c"
    off = SummaryCache(0)
    off.put(_key("org-a"), 1, b"a")
    assert (len(off), off.get(_key("org-a"), 1)) == (0, None)
