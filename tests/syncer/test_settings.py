"""The syncer's settings refuse a re-read window that would miss late data."""

from __future__ import annotations

from datetime import date

import pytest

from koalr_runtime.settings import load_settings
from koalr_syncer.settings import SyncerSettings, newest_final_day


def test_scheduled_syncs_re_read_at_least_three_days(
    monkeypatch: pytest.MonkeyPatch, sealing_keys: str
) -> None:
    monkeypatch.setenv("KOALR_SEALING_KEYS", sealing_keys)
    monkeypatch.delenv("SYNCER_INCREMENTAL_DAYS", raising=False)
    assert load_settings(SyncerSettings).incremental_days == 3
    monkeypatch.setenv("SYNCER_INCREMENTAL_DAYS", "2")
    with pytest.raises(SystemExit) as exc:
        load_settings(SyncerSettings)
    assert "SYNCER_INCREMENTAL_DAYS: Input should be greater than or equal to 3" in str(
        exc.value.code
    )


def test_the_newest_final_day_is_the_first_day_no_longer_re_read() -> None:
    assert newest_final_day(date(2026, 3, 1)) == date(2026, 2, 26)
    assert newest_final_day(date(2026, 3, 1), 5) == date(2026, 2, 24)
