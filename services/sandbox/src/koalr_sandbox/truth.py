"""Ground truth for a range of days, computed from the same events the endpoints serve.

Money is given as exact decimal strings so tests can compare without rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from koalr_sandbox.catalog import FEATURE_NAMES, MODEL_NAMES, Feature
from koalr_sandbox.service import JsonObject, View, cycle_totals
from koalr_sandbox.units import cents_str, iso_day, iso_instant


def ground_truth(view: View, first_day: int, last_day: int) -> JsonObject:
    """Everything the syncing side should compute for ``[first_day, last_day]``."""
    members = view.members
    size = len(members)
    model_count = len(MODEL_NAMES)
    active_days = np.zeros(size, dtype=np.int64)
    requests = np.zeros(size, dtype=np.int64)
    charged = np.zeros(size, dtype=np.int64)
    member_models = np.zeros((size, model_count), dtype=np.int64)
    model_charged = np.zeros(model_count, dtype=np.int64)
    history = view.history_days(first_day, last_day)
    days: list[JsonObject] = []
    member_days: list[JsonObject] = []
    for day in range(first_day, last_day + 1):
        date = iso_day(day)
        if day not in history:
            days.append(
                {
                    "date": date,
                    "active_users": 0,
                    "requests": 0,
                    "charged_cents": "0",
                    "requests_by_kind": dict.fromkeys(FEATURE_NAMES, 0),
                }
            )
            continue
        s = view.summary(day)
        days.append(
            {
                "date": date,
                "active_users": int(s.active.sum()),
                "requests": int(s.requests.sum()),
                "charged_cents": cents_str(int(s.charged_units.sum())),
                "requests_by_kind": {FEATURE_NAMES[f]: int(s.by_feature[f].sum()) for f in Feature},
            }
        )
        active_days += s.active
        requests += s.requests
        charged += s.charged_units
        member_models += s.model_requests
        model_charged += s.model_charged_units.sum(axis=0)
        for index in np.flatnonzero(s.active).tolist():
            per_model: dict[str, Any] = {}
            counts = s.model_requests[index].tolist()
            cents = s.model_charged_units[index].tolist()
            for k, name in enumerate(MODEL_NAMES):
                if counts[k]:
                    per_model[name] = {"requests": counts[k], "charged_cents": cents_str(cents[k])}
            member_days.append(
                {
                    "date": date,
                    "email": members[index].email,
                    "is_active": True,
                    "requests": int(s.requests[index]),
                    "charged_cents": cents_str(int(s.charged_units[index])),
                    "models": per_model,
                }
            )
    member_days.sort(key=lambda row: (row["date"], row["email"]))

    model_requests = member_models.sum(axis=0).tolist()
    ranked = sorted(
        (k for k in range(model_count) if model_requests[k]),
        key=lambda k: (-model_requests[k], MODEL_NAMES[k]),
    )
    models = [
        {
            "model": MODEL_NAMES[k],
            "requests": int(model_requests[k]),
            "charged_cents": cents_str(int(model_charged[k])),
        }
        for k in ranked
    ]

    member_rows: list[JsonObject] = []
    if history:
        top_model = np.argmax(member_models, axis=1).tolist()
        for m in members:
            if not m.overlaps(history.start, history.stop - 1):
                continue
            member_rows.append(
                {
                    "email": m.email,
                    "name": m.name,
                    "active_days": int(active_days[m.index]),
                    "requests": int(requests[m.index]),
                    "charged_cents": cents_str(int(charged[m.index])),
                    "top_model": MODEL_NAMES[top_model[m.index]] if requests[m.index] else None,
                }
            )
    member_rows.sort(key=lambda row: row["email"])

    cycle = cycle_totals(view)
    cycle_members = sorted(
        (
            {
                "email": members[i].email,
                "name": members[i].name,
                "spend_cents": cents_str(int(cycle.usage_based_units[i])),
                "overall_spend_cents": cents_str(int(cycle.overall_units[i])),
            }
            for i in cycle.members
        ),
        key=lambda row: row["email"],
    )
    return {
        "team_id": view.team.team_id,
        "start": iso_day(first_day),
        "end": iso_day(last_day),
        "as_of": iso_instant(view.now_s),
        "visible_through": iso_instant(view.cutoff_ms / 1000),
        "currency": "USD",
        "days": days,
        "models": models,
        "members": member_rows,
        "member_days": member_days,
        "cycle": {
            "start": iso_day(cycle.start_day),
            "total_cents": cents_str(int(cycle.overall_units[cycle.members].sum())),
            "members": cycle_members,
        },
    }
