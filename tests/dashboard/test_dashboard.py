"""The dashboard page in real headless Chromium against the real metrics service.

The data goes through the real pipeline pieces (events on Kafka, the metrics consumers, PostgreSQL);
the page is the built bundle served by the metrics service at /dashboard/. Every test saves a
screenshot under tests/dashboard/artifacts/.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page

from koalr_contracts import AnyEvent, SyncStatusChanged, UsageRecord, topics
from tests.dashboard.support import ARTIFACTS, build_dashboard, chromium, dollars, serving
from tests.metrics.copilot import premium_spend, seats_snapshot, usage_from_row
from tests.metrics.support import (
    Truth,
    all_committed,
    connected,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    snapshot,
    sync_status,
    today,
    token,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-dash"
EMPTY_ORG = "org-none"
#: An org whose policy lets members see spend.
SPEND_ORG = "org-spend"
#: An org whose Cursor integration is in error: its plan has no usage data.
ERROR_ORG = "org-plan"
#: The syncer's fixed sentence for that reason.
TEAM_PLAN_MESSAGE = (
    "The Cursor plan only exposes the member list: usage, models and spend need a Business or "
    "Enterprise plan. Members are kept in sync; upgrade the plan and update the key to sync usage."
)
#: Active members per day (days ago); 2 and 5 days ago stay below the members' minimum of 5.
ACTIVE_BY_DAY = {1: 7, 2: 3, 3: 5, 4: 6, 5: 2, 8: 8}
EMAILS = [f"dev{i}@corp.example" for i in range(8)]
#: GitHub Copilot in ORG too: users active per day (days ago), as the usage report lists them.
COPILOT_ACTIVE_BY_DAY = {1: 5, 2: 6, 4: 3}
LOGINS = [f"octo-{i}" for i in range(6)]
#: Its seats: days since each seat's last activity; None for a seat never used.
SEAT_IDLE_DAYS = {"octo-0": 1, "octo-1": 2, "octo-2": 4, "octo-3": 10, "octo-4": 45, "octo-5": None}
#: Premium requests billed per day (days ago), in dollars.
PREMIUM_DOLLARS = {1: "1.25", 2: "0.75", 4: "2.5"}


@dataclass
class Site:
    url: str
    truth: Truth
    integration_id: uuid.UUID
    browser: Browser


def _records(org_id: str, integration: uuid.UUID, fetched_at: datetime) -> list[UsageRecord]:
    return [
        usage(
            org_id,
            integration,
            today() - timedelta(days=days_ago),
            EMAILS[m],
            {"gpt-5": (3 * m + days_ago, f"{m}.25"), "claude-4.5-sonnet": (m + 1, "1.5")}
            if m < active
            else {},
            fetched_at=fetched_at,
        )
        for days_ago, active in ACTIVE_BY_DAY.items()
        for m in range(8)
    ]


def _copilot_rows() -> list[dict[str, Any]]:
    """``users-1-day`` report rows: user ``u`` makes ``2u + 3`` chat interactions with two models
    and ``u`` CLI requests."""
    return [
        {
            "day": (today() - timedelta(days=days_ago)).isoformat(),
            "user_login": LOGINS[u],
            "user_id": 100 + u,
            "user_initiated_interaction_count": 2 * u + 3,
            "totals_by_model_feature": [
                {"model": "gpt-4.1", "user_initiated_interaction_count": u + 2},
                {"model": "claude-sonnet-4", "user_initiated_interaction_count": u + 1},
            ],
            "totals_by_cli": {"request_count": u},
        }
        for days_ago, active in COPILOT_ACTIVE_BY_DAY.items()
        for u in range(active)
    ]


def _copilot_events(integration: uuid.UUID, fetched_at: datetime) -> list[AnyEvent]:
    now = datetime.now(UTC)
    seats = [
        {
            "assignee": {"login": login, "id": 100 + i},
            "plan_type": "business",
            "created_at": (now - timedelta(days=120)).isoformat(),
            "pending_cancellation_date": None,
            "last_activity_at": None if idle is None else (now - timedelta(days=idle)).isoformat(),
            "last_activity_editor": None if idle is None else "vscode",
        }
        for i, (login, idle) in enumerate(SEAT_IDLE_DAYS.items())
    ]
    return [
        *(usage_from_row(ORG, integration, row, fetched_at=fetched_at) for row in _copilot_rows()),
        seats_snapshot(ORG, integration, "business", seats, fetched_at=fetched_at),
        *(
            premium_spend(
                ORG,
                integration,
                today() - timedelta(days=days_ago),
                {"usageItems": [{"netAmount": amount}]},
                fetched_at=fetched_at,
            )
            for days_ago, amount in PREMIUM_DOLLARS.items()
        ),
    ]


@pytest.fixture(scope="module")
async def site(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Site]:
    build_dashboard()
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    settings = make_settings(
        kafka_bootstrap_servers,
        f"{database_url.rpartition('/')[0]}/{name}",
        f"t{uuid.uuid4().hex[:12]}",
    )
    integrations = {org: new_id() for org in (ORG, SPEND_ORG)}
    copilot = new_id()
    failing = new_id()
    truth = Truth()
    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with producer(settings) as broker, serving(settings) as url, chromium() as browser:
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [
                    *(connected(org, integration) for org, integration in integrations.items()),
                    connected(ORG, copilot, "github_copilot"),
                    connected(ERROR_ORG, failing),
                ],
            )
            await publish(
                broker, settings.topic(topics.USAGE_RECORDS), _copilot_events(copilot, fetched_at)
            )
            copilot_status = SyncStatusChanged(
                org_id=ORG,
                integration_id=copilot,
                provider="github_copilot",
                state="idle",
                data_through=today() - timedelta(days=1),
                last_success_at=fetched_at,
            )
            failing_status = sync_status(
                ERROR_ORG,
                failing,
                "error",
                reason_code="insufficient_plan",
                message=TEAM_PLAN_MESSAGE,
            )
            await publish(
                broker, settings.topic(topics.SYNC_STATUS), [copilot_status, failing_status]
            )
            for org, integration in integrations.items():
                records = _records(org, integration, fetched_at)
                truth.add(records)
                await publish(broker, settings.topic(topics.USAGE_RECORDS), records)
                spends = {email: f"{125 * (m + 1)}.5" for m, email in enumerate(EMAILS)}
                cycle = snapshot(
                    org, integration, today().replace(day=1), spends, fetched_at=fetched_at
                )
                await publish(broker, settings.topic(topics.USAGE_RECORDS), [cycle])
                status = sync_status(
                    org,
                    integration,
                    "idle",
                    data_through=today() - timedelta(days=1),
                    last_success_at=fetched_at,
                )
                await publish(broker, settings.topic(topics.SYNC_STATUS), [status])

            async def stored() -> bool:
                return await all_committed(settings)

            await wait_until(stored, what="seed data stored")
            yield Site(url, truth, integrations[ORG], browser)
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def api(site: Site, resource: str, bearer: str, org: str = ORG) -> Any:
    async with httpx.AsyncClient(base_url=site.url) as client:
        response = await client.get(
            f"/v1/orgs/{org}/ai-analytics/{resource}",
            params={"days": 30},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    assert response.status_code == 200, response.text
    return json.loads(response.content, parse_float=Decimal)


async def open_page(
    site: Site, bearer: str, *, org: str = ORG, width: int = 1280, state: str = "ready"
) -> Page:
    page = await site.browser.new_page(viewport={"width": width, "height": 900})
    await page.goto(f"{site.url}/dashboard/?org={org}#token={bearer}")
    await page.wait_for_selector(f'[data-state="{state}"]')
    return page


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def who(member: dict[str, Any]) -> str:
    """What a members table row is marked with: the email (Cursor) or the login (Copilot)."""
    return str(member["email"] or member["login"])


async def metric(page: Page, provider: str, name: str) -> str:
    text = await page.text_content(f'[data-provider="{provider}"][data-metric="{name}"]')
    assert text is not None
    return text


async def test_admin_page_shows_the_apis_numbers(site: Site) -> None:
    bearer = token(ORG, "admin")
    summary = await api(site, "summary", bearer)
    members = (await api(site, "members", bearer))["members"]
    page = await open_page(site, bearer)
    await screenshot(page, "admin")
    cursor, _ = summary["providers"]
    assert [p["provider"] for p in summary["providers"]] == ["cursor", "github_copilot"]
    daily = site.truth.daily(site.integration_id, range_days(30))

    requests_total = sum(p["requests"] for p in cursor["requests"])
    assert requests_total == sum(d["requests"] for d in daily.values())
    assert await metric(page, "cursor", "requests-total") == str(requests_total)

    spend_total = cursor["spend"]["total_cents"]
    assert spend_total == sum((d["cents"] for d in daily.values()), Decimal(0))
    assert await metric(page, "cursor", "spend-total") == dollars(spend_total)

    yesterday = daily[today() - timedelta(days=1)]["active"]
    assert yesterday == ACTIVE_BY_DAY[1]
    assert await metric(page, "cursor", "dau-latest") == str(yesterday)

    dau_chart = await page.get_attribute(
        '[data-provider-section="cursor"] [data-chart="active users"]', "data-series"
    )
    assert json.loads(dau_chart or "") == [p["active_users"] for p in cursor["dau"]]
    assert await page.get_attribute("[data-sync-state]", "data-sync-state") == "idle"

    rows = await page.locator("[data-member]").evaluate_all(
        "rows => rows.map(r => [r.dataset.member, r.cells[3].textContent])"
    )
    assert sorted(rows) == sorted([who(m), f"{m['requests']:,}"] for m in members)
    assert sorted(row[0] for row in rows) == sorted(EMAILS + LOGINS)
    await page.close()


async def test_members_table_sorts_by_the_chosen_column(site: Site) -> None:
    bearer = token(ORG, "admin")
    members = (await api(site, "members", bearer))["members"]
    page = await open_page(site, bearer)
    order = "rows => rows.map(r => r.dataset.member)"
    by_requests = sorted(members, key=lambda m: (-m["requests"], who(m)))
    assert await page.locator("[data-member]").evaluate_all(order) == [who(m) for m in by_requests]
    await page.click('button[data-sort="member"]')
    assert await page.locator("[data-member]").evaluate_all(order) == sorted(EMAILS + LOGINS)
    assert (
        await page.get_attribute('th:has(button[data-sort="member"])', "aria-sort") == "ascending"
    )
    await page.click('button[data-sort="spend_cents"]')
    by_spend = sorted(members, key=lambda m: (-m["spend_cents"], who(m)))
    assert await page.locator("[data-member]").evaluate_all(order) == [who(m) for m in by_spend]
    await page.close()


async def test_member_page_has_no_member_rows_nor_spend_and_draws_suppressed_days_as_gaps(
    site: Site,
) -> None:
    bearer = token(ORG, "member", sub="member-1")
    summary = await api(site, "summary", bearer)
    page = await open_page(site, bearer)
    await screenshot(page, "member")
    cursor, copilot = summary["providers"]
    assert "spend" not in cursor
    assert "spend" not in copilot
    assert await page.locator("[data-seats]").count() == 0

    assert await page.locator("[data-member]").count() == 0
    assert await page.locator("[data-members]").count() == 0
    assert await page.locator('[data-metric="spend-total"]').count() == 0
    assert await page.locator('[data-chart="spend"]').count() == 0

    series = json.loads(
        await page.get_attribute(
            '[data-provider-section="cursor"] [data-chart="active users"]', "data-series"
        )
        or ""
    )
    by_day = dict(zip([p["date"] for p in cursor["dau"]], series, strict=True))
    for days_ago, active in ACTIVE_BY_DAY.items():
        day = (today() - timedelta(days=days_ago)).isoformat()
        assert by_day[day] == (active if active >= 5 else None), day
    suppressed = sum(1 for p in cursor["dau"] if p.get("suppressed"))
    assert suppressed > 0
    assert await page.get_attribute("[data-suppressed-days]", "data-suppressed-days") == str(
        suppressed
    )
    visible_requests = sum(p["requests"] or 0 for p in cursor["requests"])
    assert await metric(page, "cursor", "requests-total") == str(visible_requests)
    assert await metric(page, "cursor", "dau-latest") == str(ACTIVE_BY_DAY[1])
    await page.close()


async def test_org_without_providers_shows_the_empty_state(site: Site) -> None:
    page = await open_page(site, token(EMPTY_ORG, "admin"), org=EMPTY_ORG, state="empty")
    await screenshot(page, "empty")
    assert await page.locator("[data-provider]").count() == 0
    assert "No AI assistant connected yet" in (await page.text_content("[data-state=empty]") or "")
    await page.close()


@pytest.mark.parametrize(
    ("case", "bearer", "status", "code"),
    [
        ("expired", "expired", 401, "token_expired"),
        ("other-org", "other-org", 403, "forbidden"),
    ],
)
async def test_refused_calls_show_the_apis_error(
    site: Site, case: str, bearer: str, status: int, code: str
) -> None:
    tokens = {
        "expired": token(ORG, "admin", exp=datetime.now(UTC) - timedelta(hours=1)),
        "other-org": token(EMPTY_ORG, "admin"),
    }
    async with httpx.AsyncClient(base_url=site.url) as client:
        response = await client.get(
            f"/v1/orgs/{ORG}/ai-analytics/summary",
            headers={"Authorization": f"Bearer {tokens[bearer]}"},
        )
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (status, code)
    page = await open_page(site, tokens[bearer], state="error")
    await screenshot(page, f"error-{case}")
    alert = page.locator('[role="alert"]')
    assert await alert.get_attribute("data-error-code") == code
    assert await alert.get_attribute("data-error-status") == str(status)
    assert error["message"] in (await alert.text_content() or "")
    assert await page.locator("[data-provider]").count() == 0
    await page.close()


async def test_a_failing_api_shows_its_message(site: Site) -> None:
    """A 500 cannot be caused on demand in a healthy service, so the browser answers the summary
    call itself with the API's error shape; everything else is real."""
    body = {"error": {"code": "internal_error", "message": "Something failed on our side."}}
    page = await site.browser.new_page()
    await page.route(
        "**/ai-analytics/summary*",
        lambda route: route.fulfill(status=500, json=body),
    )
    await page.goto(f"{site.url}/dashboard/?org={ORG}#token={token(ORG, 'admin')}")
    alert = page.locator('[data-state="error"]')
    await alert.wait_for()
    await screenshot(page, "error-500")
    assert await alert.get_attribute("data-error-code") == "internal_error"
    assert "Something failed on our side." in (await alert.text_content() or "")
    await page.close()


async def test_missing_token_says_how_to_open_the_page(site: Site) -> None:
    page = await site.browser.new_page()
    await page.goto(f"{site.url}/dashboard/?org={ORG}")
    alert = page.locator('[data-state="error"]')
    await alert.wait_for()
    assert await alert.get_attribute("data-error-code") == "missing_token"
    await page.close()


async def test_the_page_fits_a_375_px_screen(site: Site) -> None:
    page = await open_page(site, token(ORG, "admin"), width=375)
    await screenshot(page, "admin-375px")
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths == [375, 375]
    chart_width = await page.locator(".chart .uplot").first.evaluate("e => e.offsetWidth")
    assert 200 <= chart_width <= 375
    cursor_box = await page.locator('[data-provider-section="cursor"]').bounding_box()
    copilot_box = await page.locator('[data-provider-section="github_copilot"]').bounding_box()
    assert cursor_box is not None
    assert copilot_box is not None
    assert copilot_box["y"] >= cursor_box["y"] + cursor_box["height"]
    await page.close()


async def test_the_token_never_reaches_the_server(site: Site) -> None:
    bearer = token(ORG, "admin")
    page = await site.browser.new_page()
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    await page.goto(f"{site.url}/dashboard/?org={ORG}#token={bearer}")
    await page.wait_for_selector('[data-state="ready"]')
    assert urls
    assert all(bearer not in url for url in urls)
    assert all(url.startswith(site.url) for url in urls)
    await page.close()


#: WCAG 2.x contrast of every element's own text against the background it sits on.
CONTRAST = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const e of document.body.querySelectorAll("*")) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || e.getClientRects().length === 0) continue;
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(background(e))];
    out.push([e.textContent.trim().slice(0, 30), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
  }
  return out;
}"""


@pytest.mark.parametrize("state", ["ready", "error"])
async def test_every_text_meets_wcag_aa_contrast(site: Site, state: str) -> None:
    bearer = token(ORG, "admin") if state == "ready" else token(EMPTY_ORG, "admin")
    page = await open_page(site, bearer, state=state)
    ratios = await page.evaluate(CONTRAST)
    assert len(ratios) >= (20 if state == "ready" else 4)
    assert [(text, ratio) for text, ratio in ratios if ratio < 4.5] == []
    await page.close()


async def test_an_integration_in_error_shows_its_reason_and_what_to_do(site: Site) -> None:
    bearer = token(ERROR_ORG, "member")  # the reason holds no member data: members see it too
    (cursor,) = (await api(site, "summary", bearer, org=ERROR_ORG))["providers"]
    assert cursor["freshness"]["reason"] == {
        "code": "insufficient_plan",
        "message": TEAM_PLAN_MESSAGE,
    }
    page = await open_page(site, bearer, org=ERROR_ORG)
    await screenshot(page, "reason")
    section = '[data-provider-section="cursor"]'
    assert await page.get_attribute(f"{section} [data-sync-state]", "data-sync-state") == "error"
    assert await page.locator(f"{section} [data-reason]").count() == 1
    assert await page.text_content(f'{section} [data-reason="insufficient_plan"] p') == (
        f"insufficient_plan · {TEAM_PLAN_MESSAGE}"
    )
    assert await page.text_content(f'{section} [data-advice="insufficient_plan"]') == (
        "What to do: Upgrade the Cursor plan to Business or Enterprise, then update the key "
        "through the connector."
    )
    ratios = await page.evaluate(CONTRAST)
    assert [(text, ratio) for text, ratio in ratios if ratio < 4.5] == []
    await page.close()


async def test_an_integration_not_in_error_shows_no_reason(site: Site) -> None:
    page = await open_page(site, token(ORG, "admin"))
    assert await page.locator("[data-sync-state]").count() == 2
    assert await page.locator("[data-reason]").count() == 0
    await page.close()


async def test_members_see_spend_where_the_org_allows_it_and_still_no_member_rows(
    site: Site,
) -> None:
    async with httpx.AsyncClient(base_url=site.url) as client:
        response = await client.put(
            f"/v1/orgs/{SPEND_ORG}/ai-analytics/settings",
            headers={"Authorization": f"Bearer {token(SPEND_ORG, 'admin')}"},
            json={"members_can_see_spend": True, "min_group_size": 5},
        )
    assert response.status_code == 200, response.text
    bearer = token(SPEND_ORG, "member", sub="member-2")
    (cursor,) = (await api(site, "summary", bearer, org=SPEND_ORG))["providers"]
    visible = sum(
        (p["cents"] for p in cursor["spend"]["daily"] if p["cents"] is not None), Decimal(0)
    )
    assert cursor["spend"]["total_cents"] == visible
    page = await open_page(site, bearer, org=SPEND_ORG)
    await screenshot(page, "member-spend-allowed")
    assert await metric(page, "cursor", "spend-total") == dollars(visible)
    spend_series = json.loads(await page.get_attribute('[data-chart="spend"]', "data-series") or "")
    # The page divides the API's cents by 100 in IEEE doubles, as Python floats do.
    assert spend_series == [
        None if p["cents"] is None else float(p["cents"]) / 100 for p in cursor["spend"]["daily"]
    ]
    assert None in spend_series
    assert await page.locator("[data-member]").count() == 0
    await page.close()


async def test_copilot_stands_beside_cursor_with_its_seats(site: Site) -> None:
    bearer = token(ORG, "admin")
    _, copilot = (await api(site, "summary", bearer))["providers"]
    page = await open_page(site, bearer)
    published = [
        e
        for e in _copilot_events(site.integration_id, datetime.now(UTC))
        if isinstance(e, UsageRecord)
    ]
    assert sum(p["requests"] for p in copilot["requests"]) == sum(r.requests for r in published)
    assert await metric(page, "github_copilot", "requests-total") == str(
        sum(r.requests for r in published)
    )
    assert await metric(page, "github_copilot", "dau-latest") == str(COPILOT_ACTIVE_BY_DAY[1])
    assert await metric(page, "github_copilot", "spend-total") == dollars(
        copilot["spend"]["total_cents"]
    )
    seats = {
        field: await page.text_content(f'[data-seats] [data-seats-field="{field}"]')
        for field in ("total", "active_30d", "never_used", "monthly_cents")
    }
    assert seats == {"total": "6", "active_30d": "4", "never_used": "1", "monthly_cents": "114.00"}
    assert copilot["spend"]["seats"] == {
        "total": 6,
        "active_30d": 4,
        "never_used": 1,
        "monthly_cents": 6 * 1900,
    }
    cursor_box = await page.locator('[data-provider-section="cursor"]').bounding_box()
    copilot_box = await page.locator('[data-provider-section="github_copilot"]').bounding_box()
    assert cursor_box is not None
    assert copilot_box is not None
    assert cursor_box["y"] == copilot_box["y"]
    assert cursor_box["x"] + cursor_box["width"] <= copilot_box["x"]
    await page.close()
