"""The demo's side-by-side rendering and its Copilot check against the truth."""

from __future__ import annotations

from typing import Any

from koalr_devstack.demo import _copilot_checks, _daily_rows

DAYS = ("2026-11-27", "2026-11-28", "2026-11-29")


def _copilot_entry() -> dict[str, Any]:
    return {
        "provider": "github_copilot",
        "freshness": {"data_through": "2026-11-28"},
        "dau": [
            {"date": DAYS[0], "active_users": 6},
            {"date": DAYS[1], "active_users": 2},
            {"date": DAYS[2], "active_users": 0},
        ],
        "requests": [
            {"date": DAYS[0], "requests": 40},
            {"date": DAYS[1], "requests": 7},
            {"date": DAYS[2], "requests": 0},
        ],
        "models": [{"model": "gpt-4.1", "requests": 30}, {"model": "unattributed", "requests": 17}],
        "spend": {
            "daily": [
                {"date": DAYS[0], "cents": 1300.5},
                {"date": DAYS[1], "cents": 1270},
                {"date": DAYS[2], "cents": 1266.66667},
            ],
            "seats": {"total": 20, "never_used": 1, "active_30d": 18, "monthly_cents": 38000},
        },
    }


def _truth() -> dict[str, Any]:
    def day(dau: int, requests: int, models: dict[str, int], premium: str) -> dict[str, Any]:
        return {
            "dau": dau,
            "requests": requests,
            "models": models,
            "premium_cents": premium,
            "seat_cents": "1266.66667",
        }

    return {
        "days": {
            DAYS[0]: day(6, 40, {"gpt-4.1": 25, "unattributed": 15}, "33.83333"),
            DAYS[1]: day(2, 7, {"gpt-4.1": 5, "unattributed": 2}, "3.33333"),
            DAYS[2]: day(0, 0, {}, "0"),
        },
        "seats": {"total": 20, "never_used": 1, "active_30d": 18, "monthly_cents": "38000"},
        "data_through": "2026-11-28",
    }


def test_a_copilot_entry_equal_to_the_truth_passes_every_check() -> None:
    checks = _copilot_checks(_copilot_entry(), _truth())
    assert checks == dict.fromkeys(checks, True)
    assert len(checks) == 6


def test_a_seat_or_a_cent_off_is_a_mismatch() -> None:
    entry = _copilot_entry()
    entry["spend"]["seats"]["active_30d"] = 17
    entry["spend"]["daily"][2]["cents"] = 1266.66666
    checks = _copilot_checks(entry, _truth())
    assert [what for what, ok in checks.items() if not ok] == [
        "spend per day (premium requests + seats)",
        "seats block",
    ]


def test_the_member_view_shows_suppressed_days_as_such_and_no_spend() -> None:
    entry = _copilot_entry()
    entry["dau"][1] = {"date": DAYS[1], "active_users": None, "suppressed": True}
    entry["requests"][1] = {"date": DAYS[1], "requests": None, "suppressed": True}
    del entry["spend"]
    headers, rows, align = _daily_rows([entry], with_spend=False, last=2)
    assert headers == ["day", "GitHub Copilot DAU", "trend", "requests"]
    assert align == "lrlr"
    assert rows == [(DAYS[1], "suppressed", "", "suppressed"), (DAYS[2], 0, "", 0)]


def test_admin_rows_mark_the_days_after_data_through() -> None:
    headers, rows, _ = _daily_rows([_copilot_entry()], with_spend=True)
    assert headers[-1] == "spend"
    assert [row[-1] for row in rows] == ["$13.00 ", "$12.70 ", "$12.67*"]
    assert rows[0][2] == "█" * 12
