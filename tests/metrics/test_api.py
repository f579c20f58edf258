"""The query API's authorization and privacy matrix, on data ingested through Kafka."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from koalr_contracts import topics
from koalr_metrics.settings import MetricsSettings
from tests.metrics.support import (
    JWT_SECRET,
    Truth,
    auth,
    connected,
    documented_body_checker,
    fully_committed,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    running_app,
    snapshot,
    sync_status,
    today,
    token,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-a"
POLICY_ORG = "org-p"
OTHER_ORG = "org-b"
REASON_ORG = "org-r"
#: The syncer's fixed sentence for a Cursor plan without usage data (no member data in it).
TEAM_PLAN_MESSAGE = (
    "The Cursor plan only exposes the member list: usage, models and spend need a Business or "
    "Enterprise plan. Members are kept in sync; upgrade the plan and update the key to sync usage."
)
#: Active members per day offset (days ago); 4 and 2 days ago stay below the default of 5.
ACTIVE_BY_DAY = {1: 6, 2: 4, 3: 5, 5: 2}
NAMES = [f"Person Number{i}" for i in range(8)]
EMAILS = [f"person{i}@corp.example" for i in range(8)]


class Seeded:
    def __init__(
        self,
        client: httpx.AsyncClient,
        truth: Truth,
        ids: dict[str, uuid.UUID],
        broker: KafkaBroker,
        settings: MetricsSettings,
    ):
        self.client = client
        self.truth = truth
        self.ids = ids
        self.broker = broker
        self.settings = settings


def _records(org_id: str, integration_id: uuid.UUID, fetched_at: datetime) -> list[Any]:
    out = []
    for days_ago, active in ACTIVE_BY_DAY.items():
        day = today() - timedelta(days=days_ago)
        for m in range(8):
            models = {"gpt-5": (m + days_ago, f"{m}.25"), "o3": (1, "0.1")} if m < active else {}
            out.append(
                usage(
                    org_id,
                    integration_id,
                    day,
                    EMAILS[m],
                    models,
                    name=NAMES[m],
                    fetched_at=fetched_at,
                )
            )
    return out


@pytest.fixture(scope="module")
async def seeded(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Seeded]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{database_url.rpartition('/')[0]}/{name}"
    settings = make_settings(kafka_bootstrap_servers, dsn, f"t{uuid.uuid4().hex[:12]}")
    ids = {org: new_id() for org in (ORG, POLICY_ORG, OTHER_ORG)}
    truth = Truth()
    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with producer(settings) as broker, running_app(settings) as (_, client):
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [connected(org, integration) for org, integration in ids.items()],
            )
            for org, integration in ids.items():
                records = _records(org, integration, fetched_at)
                truth.add(records)
                await publish(broker, settings.topic(topics.USAGE_RECORDS), records)
                spends = {EMAILS[m]: f"{10 * (m + 1)}.5" for m in range(6)}
                await publish(
                    broker,
                    settings.topic(topics.USAGE_RECORDS),
                    [
                        snapshot(
                            org, integration, today().replace(day=1), spends, fetched_at=fetched_at
                        )
                    ],
                )

            async def done() -> bool:
                return await fully_committed(
                    kafka_bootstrap_servers,
                    settings.group(settings.ingest_group),
                    settings.topic(topics.USAGE_RECORDS),
                ) and await fully_committed(
                    kafka_bootstrap_servers,
                    settings.group(settings.integrations_group),
                    settings.topic(topics.INTEGRATIONS),
                )

            await wait_until(done, what="seed data stored")
            yield Seeded(client, truth, ids, broker, settings)
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, str | None, Any]]:
    """Every (path, key, value) in a JSON document, recursively."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key, item
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", None, item
            yield from _walk(item, f"{path}[{index}]")


def _leaks(document: Any, *, spend_allowed: bool) -> list[str]:
    found = []
    for path, key, value in _walk(document):
        lowered = (key or "").lower()
        if lowered in {"email", "name", "top_model", "members"}:
            found.append(path)
        if not spend_allowed and ("spend" in lowered or "cents" in lowered):
            found.append(path)
        if isinstance(value, str) and ("@" in value or value in NAMES):
            found.append(path)
    return found


async def _get(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(path, headers=headers, params=params)
    return response.status_code, json.loads(response.content, parse_float=Decimal)


SUMMARY = f"/v1/orgs/{ORG}/ai-analytics/summary"
MEMBERS = f"/v1/orgs/{ORG}/ai-analytics/members"


async def test_missing_bad_and_expired_tokens_get_401(seeded: Seeded) -> None:
    expired = jwt.encode(
        {"sub": "u", "org_id": ORG, "role": "admin", "exp": datetime.now(UTC) - timedelta(hours=1)},
        JWT_SECRET,
        algorithm="HS256",
    )
    wrong_key = jwt.encode(
        {"sub": "u", "org_id": ORG, "role": "admin", "exp": datetime.now(UTC) + timedelta(hours=1)},
        "another-secret-that-is-also-long-enough-for-hs256",
        algorithm="HS256",
    )
    cases = {
        "": "unauthorized",
        "Token abc": "unauthorized",
        "Bearer not.a.jwt": "invalid_token",
        f"Bearer {expired}": "token_expired",
        f"Bearer {wrong_key}": "invalid_token",
    }
    for header, code in cases.items():
        headers = {"Authorization": header} if header else {}
        for path in (SUMMARY, MEMBERS, f"/v1/orgs/{ORG}/ai-analytics/settings"):
            status, body = await _get(seeded.client, path, headers)
            assert (status, body["error"]["code"]) == (401, code), (header, path)
            assert expired not in json.dumps(body)
            assert wrong_key not in json.dumps(body)


async def test_another_orgs_token_gets_403_everywhere(seeded: Seeded) -> None:
    for role in ("admin", "member"):
        headers = auth(OTHER_ORG, role)
        for path in (SUMMARY, MEMBERS, f"/v1/orgs/{ORG}/ai-analytics/settings"):
            status, body = await _get(seeded.client, path, headers)
            assert (status, body["error"]["code"]) == (403, "forbidden"), (role, path)
        response = await seeded.client.put(
            f"/v1/orgs/{ORG}/ai-analytics/settings",
            headers=headers,
            json={"members_can_see_spend": True, "min_group_size": 1},
        )
        assert response.status_code == 403


async def test_members_cannot_read_members_or_settings(seeded: Seeded) -> None:
    headers = auth(ORG, "member")
    status, body = await _get(seeded.client, MEMBERS, headers)
    assert (status, body["error"]["code"]) == (403, "admin_only")
    status, body = await _get(seeded.client, f"/v1/orgs/{ORG}/ai-analytics/settings", headers)
    assert (status, body["error"]["code"]) == (403, "admin_only")
    response = await seeded.client.put(
        f"/v1/orgs/{ORG}/ai-analytics/settings",
        headers=headers,
        json={"members_can_see_spend": True, "min_group_size": "not even valid"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (403, "admin_only")


async def test_admin_sees_everything_unsuppressed(seeded: Seeded) -> None:
    status, body = await _get(seeded.client, SUMMARY, auth(ORG), days=7)
    assert status == 200
    assert body["viewer_role"] == "admin"
    assert body["range"] == {
        "start": (today() - timedelta(days=6)).isoformat(),
        "end": today().isoformat(),
    }
    (entry,) = body["providers"]
    days = range_days(7)
    daily = seeded.truth.daily(seeded.ids[ORG], days)
    assert entry["dau"] == [
        {"date": d.isoformat(), "active_users": daily[d]["active"]} for d in days
    ]
    assert entry["requests"] == [
        {"date": d.isoformat(), "requests": daily[d]["requests"]} for d in days
    ]
    assert not [path for path, key, _ in _walk(body) if key == "suppressed"]
    assert entry["spend"]["total_cents"] == sum((daily[d]["cents"] for d in days), Decimal(0))
    assert entry["spend"]["cycle"]["total_cents"] == Decimal(213)  # 10.5 + 20.5 + ... + 60.5
    assert entry["freshness"] == {
        "data_through": None,
        "last_synced_at": None,
        "days_with_data": 4,
        "days_in_range": 7,
        "state": "pending",
        "reason": None,
    }


async def test_member_view_is_suppressed_below_the_threshold_and_has_no_people_or_spend(
    seeded: Seeded,
) -> None:
    status, body = await _get(seeded.client, SUMMARY, auth(ORG, "member"), days=7)
    assert status == 200
    assert body["viewer_role"] == "member"
    assert _leaks(body, spend_allowed=False) == []
    (entry,) = body["providers"]
    assert "spend" not in entry
    days = range_days(7)
    daily = seeded.truth.daily(seeded.ids[ORG], days)
    visible = [d for d in days if daily[d]["active"] >= 5]
    assert [d.isoformat() for d in visible] == [
        (today() - timedelta(days=n)).isoformat() for n in (3, 1)
    ]
    expected_dau = [
        {"date": d.isoformat(), "active_users": daily[d]["active"], "suppressed": False}
        if d in visible
        else {"date": d.isoformat(), "active_users": None, "suppressed": True}
        for d in days
    ]
    assert entry["dau"] == expected_dau
    assert entry["requests"] == [
        {"date": d.isoformat(), "requests": daily[d]["requests"], "suppressed": False}
        if d in visible
        else {"date": d.isoformat(), "requests": None, "suppressed": True}
        for d in days
    ]
    visible_total = sum(daily[d]["requests"] for d in visible)
    assert [(m["model"], m["requests"]) for m in entry["models"]] == seeded.truth.models(
        seeded.ids[ORG], visible
    )
    assert sum(m["requests"] for m in entry["models"]) == visible_total
    assert [m["share"] for m in entry["models"]] == [
        round(Decimal(m["requests"]) / Decimal(visible_total), 4) for m in entry["models"]
    ]


async def test_a_member_does_not_learn_of_activity_on_suppressed_days(seeded: Seeded) -> None:
    days = range_days(7)
    daily = seeded.truth.daily(seeded.ids[ORG], days)
    with_rows = [d for d in days if daily[d]["rows"] > 0]
    visible = [d for d in with_rows if daily[d]["active"] >= 5]
    assert (len(with_rows), len(visible)) == (4, 2)

    status, body = await _get(seeded.client, SUMMARY, auth(ORG, "member"), days=7)
    assert status == 200
    (entry,) = body["providers"]
    assert (entry["freshness"]["days_with_data"], entry["freshness"]["days_in_range"]) == (2, 7)
    status, body = await _get(seeded.client, SUMMARY, auth(ORG), days=7)
    assert body["providers"][0]["freshness"]["days_with_data"] == 4


async def test_policy_lets_members_see_spend_with_the_chosen_threshold(seeded: Seeded) -> None:
    path = f"/v1/orgs/{POLICY_ORG}/ai-analytics/settings"
    admin = auth(POLICY_ORG)
    status, body = await _get(seeded.client, path, admin)
    assert (status, body) == (
        200,
        {
            "org_id": POLICY_ORG,
            "members_can_see_spend": False,
            "min_group_size": 5,
            "cursor_seat_price_cents": 4000,
            "retention_days": 400,
        },
    )
    for bad in (
        {"min_group_size": 0},
        {"min_group_size": 101},
        {"min_group_size": "5"},
        {"members_can_see_spend": "yes"},
        {"members_can_see_spend": True, "extra": 1},
        {"cursor_seat_price_cents": -1},
        {"cursor_seat_price_cents": "4000"},
    ):
        response = await seeded.client.put(path, headers=admin, json=bad)
        assert (response.status_code, response.json()["error"]["code"]) == (
            422,
            "invalid_request",
        ), bad
    response = await seeded.client.put(
        path, headers=admin, json={"members_can_see_spend": True, "min_group_size": 4}
    )
    assert response.status_code == 200
    assert response.json() == {
        "org_id": POLICY_ORG,
        "members_can_see_spend": True,
        "min_group_size": 4,
        "cursor_seat_price_cents": 4000,
        "retention_days": 400,
    }

    summary = f"/v1/orgs/{POLICY_ORG}/ai-analytics/summary"
    status, body = await _get(seeded.client, summary, auth(POLICY_ORG, "member"), days=7)
    assert status == 200
    assert _leaks(body, spend_allowed=True) == []
    (entry,) = body["providers"]
    days = range_days(7)
    daily = seeded.truth.daily(seeded.ids[POLICY_ORG], days)
    visible = [d for d in days if daily[d]["active"] >= 4]
    assert len(visible) == 3
    assert entry["spend"]["daily"] == [
        {"date": d.isoformat(), "cents": daily[d]["cents"], "suppressed": False}
        if d in visible
        else {"date": d.isoformat(), "cents": None, "suppressed": True}
        for d in days
    ]
    assert entry["spend"]["total_cents"] == sum((daily[d]["cents"] for d in visible), Decimal(0))
    assert entry["spend"]["cycle"] == {
        "start": today().replace(day=1).isoformat(),
        "total_cents": Decimal(213),
        "suppressed": False,
    }

    # Raising the threshold above the cycle's six spenders hides the cycle total too.
    response = await seeded.client.put(
        path, headers=admin, json={"members_can_see_spend": True, "min_group_size": 7}
    )
    assert response.status_code == 200
    status, body = await _get(seeded.client, summary, auth(POLICY_ORG, "member"), days=7)
    (entry,) = body["providers"]
    assert entry["spend"]["cycle"]["suppressed"] is True
    assert entry["spend"]["cycle"]["total_cents"] is None
    assert entry["spend"]["total_cents"] == 0
    assert all(p["suppressed"] for p in entry["dau"])
    assert entry["models"] == []


async def _apply(seeded: Seeded, topic: str, group: str, events: list[Any]) -> None:
    """Publish ``events`` on ``topic`` and wait until its consumer ``group`` applied them all."""
    settings = seeded.settings
    await publish(seeded.broker, settings.topic(topic), events)

    async def applied() -> bool:
        return await fully_committed(
            settings.kafka_bootstrap_servers, settings.group(group), settings.topic(topic)
        )

    await wait_until(applied, what=f"{topic} applied")


async def _freshness(seeded: Seeded, viewer: str) -> Any:
    """The REASON_ORG's Cursor freshness, from a body that validates against the OpenAPI document."""
    check = documented_body_checker((await seeded.client.get("/openapi.json")).json())
    response = await seeded.client.get(
        f"/v1/orgs/{REASON_ORG}/ai-analytics/summary", headers=auth(REASON_ORG, viewer)
    )
    assert response.status_code == 200
    (entry,) = check("summary", "get", response)["providers"]
    return entry["freshness"]


async def test_freshness_carries_the_error_reason_until_a_later_status_clears_it(
    seeded: Seeded,
) -> None:
    integration = new_id()
    await _apply(
        seeded,
        topics.INTEGRATIONS,
        seeded.settings.integrations_group,
        [connected(REASON_ORG, integration, sequence=1)],
    )
    through = today() - timedelta(days=2)
    error = sync_status(
        REASON_ORG,
        integration,
        "error",
        reason_code="insufficient_plan",
        message=TEAM_PLAN_MESSAGE,
        data_through=through,
        sequence=1,
    )
    await _apply(seeded, topics.SYNC_STATUS, seeded.settings.sync_status_group, [error])
    for viewer in ("admin", "member"):  # no member data in it: members see it too
        freshness = await _freshness(seeded, viewer)
        assert freshness["state"] == "error"
        assert freshness["data_through"] == through.isoformat()
        assert freshness["reason"] == {"code": "insufficient_plan", "message": TEAM_PLAN_MESSAGE}

    idle = sync_status(REASON_ORG, integration, "idle", data_through=today(), sequence=2)
    await _apply(seeded, topics.SYNC_STATUS, seeded.settings.sync_status_group, [idle])
    freshness = await _freshness(seeded, "admin")
    assert freshness["state"] == "idle"
    assert freshness["data_through"] == today().isoformat()
    assert freshness["reason"] is None


async def test_members_endpoint_for_admins(seeded: Seeded) -> None:
    status, body = await _get(seeded.client, MEMBERS, auth(ORG), days=7)
    assert status == 200
    final = [r for r in seeded.truth.final(seeded.ids[ORG]) if r.day in set(range_days(7))]
    expected: list[dict[str, Any]] = []
    for m in range(8):
        mine = [r for r in final if r.member.key == EMAILS[m]]
        expected.append(
            {
                "provider": "cursor",
                "email": EMAILS[m],
                "login": None,
                "name": NAMES[m],
                "active_days": sum(1 for r in mine if r.is_active),
                "requests": sum(r.requests for r in mine),
                "top_model": "gpt-5" if any(r.requests for r in mine) else None,
                "spend_cents": sum((r.charged_cents for r in mine), Decimal(0)),
            }
        )
    expected.sort(key=lambda e: (-e["requests"], e["email"]))
    assert body == {"members": expected}


async def test_query_validation_and_provider_filter(seeded: Seeded) -> None:
    for params in ({"days": 0}, {"days": 91}, {"days": "abc"}, {"provider": "copilot"}):
        status, body = await _get(seeded.client, SUMMARY, auth(ORG), **params)
        assert (status, body["error"]["code"]) == (422, "invalid_request"), params
    status, body = await _get(seeded.client, SUMMARY, auth(ORG), provider="github_copilot")
    assert (status, body["providers"]) == (200, [])
    status, body = await _get(seeded.client, SUMMARY, auth(ORG), provider="cursor", days=90)
    assert status == 200
    assert len(body["providers"][0]["dau"]) == 90
    status, body = await _get(seeded.client, SUMMARY, auth(ORG))
    assert len(body["providers"][0]["requests"]) == 30


async def test_service_endpoints(seeded: Seeded) -> None:
    assert (await seeded.client.get("/healthz")).json()["status"] == "ok"
    ready = await seeded.client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    metrics = await seeded.client.get("/metrics")
    assert "koalr_metrics_records_total" in metrics.text
    spec = (await seeded.client.get("/openapi.json")).json()
    assert {
        "/v1/orgs/{org_id}/ai-analytics/summary",
        "/v1/orgs/{org_id}/ai-analytics/members",
        "/v1/orgs/{org_id}/ai-analytics/settings",
    } <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    summary_op = spec["paths"]["/v1/orgs/{org_id}/ai-analytics/summary"]["get"]
    assert summary_op["security"] == [{"bearer": []}]
    assert {p["name"] for p in summary_op["parameters"]} == {"org_id", "days", "provider"}
    assert token(ORG) not in metrics.text


def _requests_counted(route: str, status: str) -> float:
    labels = {"service": "metrics", "route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("koalr_http_requests_total", labels) or 0.0


def _latencies_observed(route: str) -> float:
    labels = {"service": "metrics", "route": route, "method": "GET"}
    return REGISTRY.get_sample_value("koalr_http_request_duration_seconds_count", labels) or 0.0


async def test_requests_are_counted_by_route_template_and_status(seeded: Seeded) -> None:
    template = "/v1/orgs/{org_id}/ai-analytics/summary"
    before = (
        _requests_counted(template, "200"),
        _requests_counted(template, "401"),
        _requests_counted("unmatched", "404"),
        _latencies_observed(template),
    )
    assert (await seeded.client.get(SUMMARY, headers=auth(ORG))).status_code == 200
    assert (await seeded.client.get(SUMMARY)).status_code == 401
    assert (await seeded.client.get("/v1/nowhere")).status_code == 404
    after = (
        _requests_counted(template, "200"),
        _requests_counted(template, "401"),
        _requests_counted("unmatched", "404"),
        _latencies_observed(template),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 2]


async def test_every_body_validates_against_the_openapi_document(seeded: Seeded) -> None:
    spec = (await seeded.client.get("/openapi.json")).json()
    check = documented_body_checker(spec)
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            success = next(code for code in ("200", "202") if code in operation["responses"])
            ok = operation["responses"][success]["content"]["application/json"]["schema"]
            # A bare reference: a `type` beside the `$ref` would contradict the body.
            assert set(ok) == {"$ref"}, (path, ok)
            assert {"413", "422", "429"} <= set(operation["responses"]), path
    money = [
        spec["components"]["schemas"][model]["properties"][field]
        for model, field in (("SpendOut", "total_cents"), ("MemberOut", "spend_cents"))
    ]
    assert [m["type"] for m in money] == ["number", "number"]

    base = "/v1/orgs/{}/ai-analytics/{}"
    admin, member = auth(OTHER_ORG), auth(OTHER_ORG, "member")
    settings_url = base.format(OTHER_ORG, "settings")
    summary_url = base.format(OTHER_ORG, "summary")
    seen: list[tuple[str, int, bool]] = []

    def summary_seen(body: dict[str, Any]) -> None:
        (entry,) = body["providers"]
        cycle = entry["spend"]["cycle"] if "spend" in entry else None
        seen.append((body["viewer_role"], len(body["providers"]), cycle is not None))

    for headers in (admin, member):
        response = await seeded.client.get(summary_url, headers=headers, params={"days": 7})
        assert response.status_code == 200
        summary_seen(check("summary", "get", response))
    for min_group_size in (4, 7):
        policy = {
            "members_can_see_spend": True,
            "min_group_size": min_group_size,
            "retention_days": 400 + min_group_size,
        }
        response = await seeded.client.put(settings_url, headers=admin, json=policy)
        assert check("settings", "put", response) == {
            "org_id": OTHER_ORG,
            **policy,
            "cursor_seat_price_cents": 4000,
        }
        response = await seeded.client.get(summary_url, headers=member, params={"days": 7})
        summary_seen(check("summary", "get", response))
    assert seen == [
        ("admin", 1, True),
        ("member", 1, False),
        ("member", 1, True),
        ("member", 1, True),
    ]
    response = await seeded.client.get(settings_url, headers=admin)
    assert check("settings", "get", response)["min_group_size"] == 7
    response = await seeded.client.get(
        base.format(OTHER_ORG, "members"), headers=admin, params={"days": 7}
    )
    assert len(check("members", "get", response)["members"]) == 8

    # Every documented error status answers the documented error body.
    errors = [
        ("summary", await seeded.client.get(summary_url)),
        ("summary", await seeded.client.get(summary_url, headers=auth(ORG))),
        ("summary", await seeded.client.get(summary_url, headers=admin, params={"days": 0})),
        ("members", await seeded.client.get(base.format(OTHER_ORG, "members"), headers=member)),
        ("settings", await seeded.client.get(settings_url, headers=member)),
    ]
    assert [r.status_code for _, r in errors] == [401, 403, 422, 403, 403]
    for route, response in errors:
        assert set(check(route, "get", response)["error"]) == {"code", "message"}
    response = await seeded.client.put(settings_url, headers=admin, json={"min_group_size": 0})
    assert check("settings", "put", response)["error"]["code"] == "invalid_request"


CACHE_ORG = "org-c"


def _summary_cache(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("koalr_metrics_summary_cache_total", {"outcome": outcome}) or 0.0
    )


async def test_a_cached_summary_changes_with_the_next_batch_status_and_policy(
    seeded: Seeded,
) -> None:
    integration = new_id()
    settings = seeded.settings
    await _apply(
        seeded,
        topics.INTEGRATIONS,
        settings.integrations_group,
        [connected(CACHE_ORG, integration)],
    )
    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    day = today() - timedelta(days=1)
    first = [
        usage(
            CACHE_ORG, integration, day, EMAILS[m], {"gpt-5": (m + 1, "1.5")}, fetched_at=fetched_at
        )
        for m in range(5)
    ]
    await _apply(seeded, topics.USAGE_RECORDS, settings.ingest_group, first)
    path = f"/v1/orgs/{CACHE_ORG}/ai-analytics/summary"

    async def requests_on_day(role: str) -> Any:
        status, body = await _get(seeded.client, path, auth(CACHE_ORG, role), days=7)
        assert status == 200
        (entry,) = body["providers"]
        return next(p for p in entry["requests"] if p["date"] == day.isoformat())["requests"]

    hits, misses = _summary_cache("hit"), _summary_cache("miss")
    assert await requests_on_day("admin") == 15
    assert await requests_on_day("admin") == 15
    assert await requests_on_day("member") == 15
    assert (_summary_cache("hit") - hits, _summary_cache("miss") - misses) == (1, 2)

    # A newer record for one member: the very next response counts it.
    newer = usage(
        CACHE_ORG,
        integration,
        day,
        EMAILS[0],
        {"gpt-5": (101, "2")},
        fetched_at=fetched_at + timedelta(minutes=5),
    )
    await _apply(seeded, topics.USAGE_RECORDS, settings.ingest_group, [newer])
    assert await requests_on_day("admin") == 115
    assert await requests_on_day("member") == 115

    # The privacy policy changes the member's view: 5 active members are below a threshold of 6.
    response = await seeded.client.put(
        f"/v1/orgs/{CACHE_ORG}/ai-analytics/settings",
        headers=auth(CACHE_ORG),
        json={"members_can_see_spend": False, "min_group_size": 6},
    )
    assert response.status_code == 200
    assert await requests_on_day("member") is None
    assert await requests_on_day("admin") == 115

    # A sync status changes the freshness block of the next response.
    status_event = sync_status(
        CACHE_ORG, integration, "error", reason_code="rate_limited", sequence=1
    )
    await _apply(seeded, topics.SYNC_STATUS, settings.sync_status_group, [status_event])
    status, body = await _get(seeded.client, path, auth(CACHE_ORG), days=7)
    assert status == 200
    assert body["providers"][0]["freshness"]["state"] == "error"
