"""People across tools through Kafka into the API: the identity mapping (validation, atomic
replacement, 100,000 rows), the people view equal to the sandbox's truth (Copilot) and to the
seeded records (Cursor), its pages, the CSV exports and the privacy rules."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from koalr_contracts import AnyEvent, SyncStatusChanged, UsageRecord, topics
from koalr_metrics.settings import MetricsSettings
from koalr_sandbox.testing import GithubSandboxClient, run_sandbox
from tests.metrics.copilot import seats_snapshot, usage_from_row
from tests.metrics.support import (
    all_committed,
    auth,
    connected,
    documented_body_checker,
    make_settings,
    new_id,
    producer,
    publish,
    running_app,
    today,
    usage,
    wait_until,
)
from tests.metrics.test_copilot import _database

pytestmark = pytest.mark.integration

ORG = "org-people"
DAYS = 30
BASE = f"/v1/orgs/{ORG}/ai-analytics"
PEOPLE = f"{BASE}/people"
IDENTITIES = f"{BASE}/identities"
MEMBERS = f"{BASE}/members"
GHOST_LOGIN = "ghost-login"
NOBODY = "nobody@corp.example"
INJECTED_NAME = '=HYPERLINK("http://evil.example","x")'
QUOTED_NAME = 'Smith, "Jo"'


@dataclass
class Seeded:
    client: httpx.AsyncClient
    truth: dict[str, Any]
    cursor: list[UsageRecord]
    logins: list[str]
    """Copilot logins of the seats, sorted."""
    emails: list[str]
    settings: MetricsSettings


@pytest.fixture(scope="module")
async def seeded(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Seeded]:
    async with _database(database_url) as dsn:
        settings = make_settings(kafka_bootstrap_servers, dsn, f"t{uuid.uuid4().hex[:12]}")
        copilot_id, cursor_id = new_id(), new_id()
        frozen_ms = int(time.time() * 1000)
        fetched_at = datetime.fromtimestamp(frozen_ms / 1000, UTC)
        end = today()
        start = end - timedelta(days=DAYS - 1)
        events: list[AnyEvent] = []
        with run_sandbox() as base_url:
            async with httpx.AsyncClient(base_url=base_url) as http:
                github = GithubSandboxClient(http)
                org = await github.create_org(
                    seats=40,
                    days=90,
                    seed=31,
                    plan="business",
                    rate_limits_enabled=False,
                    visible_until_ms=frozen_ms,
                )
                truth = await github.truth(org, start.isoformat(), end.isoformat())
                data_through = date.fromisoformat(truth["data_through"])
                day = start
                while day <= data_through:
                    rows = await github.report_rows(org, "users-1-day", day.isoformat())
                    events.extend(
                        usage_from_row(ORG, copilot_id, r, fetched_at=fetched_at) for r in rows
                    )
                    day += timedelta(days=1)
                seats = await github.seats(org)
        events.append(seats_snapshot(ORG, copilot_id, "business", seats, fetched_at=fetched_at))
        emails = [f"dev{i}@corp.example" for i in range(6)]
        names = ["Dev Zero", INJECTED_NAME, QUOTED_NAME, "Dev Three", "-Dev Four", "Dev Five"]
        cursor = [
            usage(
                ORG,
                cursor_id,
                end - timedelta(days=d),
                email,
                {"gpt-5": (i + d, f"{i}.{d}5"), "claude-4.5-sonnet": (i, "0.125")},
                fetched_at=fetched_at,
                name=name,
            )
            for i, (email, name) in enumerate(zip(emails, names, strict=True))
            for d in range(1, 2 + i % 3)
        ]
        # One member only outside the range: not a person of the range.
        cursor.append(
            usage(
                ORG,
                cursor_id,
                start - timedelta(days=1),
                "old@corp.example",
                {"gpt-5": (4, "9")},
                fetched_at=fetched_at,
            )
        )
        status = SyncStatusChanged(
            org_id=ORG,
            integration_id=copilot_id,
            provider="github_copilot",
            state="idle",
            data_through=data_through,
            last_success_at=fetched_at,
        )
        async with producer(settings) as broker, running_app(settings) as (_, client):
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [connected(ORG, copilot_id, "github_copilot"), connected(ORG, cursor_id)],
            )
            await publish(broker, settings.topic(topics.USAGE_RECORDS), [*events, *cursor])
            await publish(broker, settings.topic(topics.SYNC_STATUS), [status])

            async def done() -> bool:
                return await all_committed(settings)

            await wait_until(done, what="events stored")
            logins = sorted(s["assignee"]["login"] for s in seats)
            yield Seeded(client, truth, cursor, logins, emails, settings)


def _mapping(seeded: Seeded) -> list[dict[str, str]]:
    """dev0 is Copilot's first login (given in other cases: it must still join), dev1 maps to
    a login Copilot does not know, an unknown email maps to Copilot's second login, and an
    unknown email to an unknown login (no data on either side: no row)."""
    first, second = seeded.logins[0], seeded.logins[1]
    return [
        {"email": "Dev0@Corp.Example", "github_login": first.upper()},
        {"email": seeded.emails[1], "github_login": GHOST_LOGIN},
        {"email": NOBODY, "github_login": second},
        {"email": "void@corp.example", "github_login": "void-login"},
    ]


async def _put_mapping(seeded: Seeded) -> None:
    response = await seeded.client.put(
        IDENTITIES, headers=auth(ORG), json={"identities": _mapping(seeded)}
    )
    assert (response.status_code, response.json()) == (200, {"identities": 4})


def _decimal_json(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def _expected_people(seeded: Seeded) -> list[dict[str, Any]]:
    """The people view computed from the seeded Cursor records and the sandbox's truth."""
    start = today() - timedelta(days=DAYS - 1)
    cursor: dict[str, dict[str, Any]] = {}
    names: dict[str, str | None] = {}
    for r in seeded.cursor:
        if r.day < start:
            continue
        email = r.member.email
        assert email is not None
        figures = cursor.setdefault(
            email, {"active_days": 0, "requests": 0, "spend_cents": Decimal(0)}
        )
        figures["active_days"] += int(r.is_active)
        figures["requests"] += r.requests
        figures["spend_cents"] += r.charged_cents
        names[email] = r.member.name
    copilot = {
        login: {
            "active_days": m["active_days"],
            "requests": m["requests"],
            "spend_cents": Decimal(m["spend_cents"]),
        }
        for login, m in seeded.truth["members"].items()
    }
    mapped = {m["email"].lower(): m["github_login"].lower() for m in _mapping(seeded)}
    people: list[tuple[str | None, str | None]] = []
    for mapped_email, mapped_login in mapped.items():
        if mapped_email in cursor or mapped_login in copilot:
            people.append((mapped_email, mapped_login))
    people += [(e, None) for e in cursor if e not in mapped]
    mapped_logins = set(mapped.values())
    people += [(None, g) for g in copilot if g not in mapped_logins]
    rows = []
    for email, login in people:
        cur = cursor.get(email) if email else None
        cop = copilot.get(login) if login else None
        total = (cur["spend_cents"] if cur else Decimal(0)) + (
            cop["spend_cents"] if cop else Decimal(0)
        )
        rows.append(
            {
                "email": email,
                "github_login": login,
                "name": names.get(email) if email else None,
                "cursor": cur,
                "github_copilot": cop,
                "total_spend_cents": total,
            }
        )
    return sorted(
        rows,
        key=lambda p: (
            -p["total_spend_cents"],
            f"e:{p['email']}" if p["email"] else f"l:{p['github_login']}",
        ),
    )


async def test_identities_are_stored_normalised_and_listed_by_email(seeded: Seeded) -> None:
    await _put_mapping(seeded)
    response = await seeded.client.get(IDENTITIES, headers=auth(ORG))
    assert response.status_code == 200
    assert response.json() == {
        "identities": sorted(
            (
                {"email": m["email"].lower(), "github_login": m["github_login"].lower()}
                for m in _mapping(seeded)
            ),
            key=lambda m: m["email"],
        )
    }


async def test_people_equal_the_truth_one_row_per_person(seeded: Seeded) -> None:
    await _put_mapping(seeded)
    response = await seeded.client.get(PEOPLE, headers=auth(ORG), params={"days": DAYS})
    assert response.status_code == 200
    body = _decimal_json(response)
    expected = _expected_people(seeded)
    assert body == {"people": expected, "next": None}
    by_email = {p["email"]: p for p in body["people"] if p["email"]}
    # The person mapped across both tools has both blocks and their sum.
    both = by_email["dev0@corp.example"]
    assert both["github_login"] == seeded.logins[0]
    assert both["cursor"] is not None
    assert both["github_copilot"] is not None
    assert both["total_spend_cents"] == (
        both["cursor"]["spend_cents"] + both["github_copilot"]["spend_cents"]
    )
    # A mapping naming a login Copilot does not know: the Cursor figures, no Copilot block.
    ghost = by_email[seeded.emails[1]]
    assert (ghost["github_login"], ghost["github_copilot"]) == (GHOST_LOGIN, None)
    assert ghost["cursor"] is not None
    # An unknown email mapped to a known login: the Copilot figures under that email.
    nobody = by_email[NOBODY]
    assert (nobody["cursor"], nobody["github_login"]) == (None, seeded.logins[1])
    # No data on either side: no row; a mapped login never stands alone as well.
    assert "void@corp.example" not in by_email
    logins = [p["github_login"] for p in body["people"] if p["github_login"]]
    assert len(logins) == len(set(logins))
    assert "void-login" not in logins
    # Every seat holder and every Cursor member of the range is somewhere, once.
    assert set(logins) >= set(seeded.logins)
    assert "old@corp.example" not in by_email
    assert len(body["people"]) == len(seeded.truth["members"]) + len(seeded.emails) - 1


@pytest.mark.parametrize("days", [1, 7, 90])
async def test_each_tools_figures_are_those_of_members(seeded: Seeded, days: int) -> None:
    """The people view sums the very figures /members gives (a Copilot seat's cost included),
    over ranges that cross month boundaries."""
    await _put_mapping(seeded)
    people = _decimal_json(
        await seeded.client.get(PEOPLE, headers=auth(ORG), params={"days": days})
    )["people"]
    members = _decimal_json(
        await seeded.client.get(MEMBERS, headers=auth(ORG), params={"days": days})
    )["members"]
    from_members = {
        ("cursor", m["email"]) if m["provider"] == "cursor" else ("github_copilot", m["login"]): {
            "active_days": m["active_days"],
            "requests": m["requests"],
            "spend_cents": m["spend_cents"],
        }
        for m in members
    }
    from_people = {}
    for p in people:
        if p["cursor"] is not None:
            from_people["cursor", p["email"]] = p["cursor"]
        if p["github_copilot"] is not None:
            from_people["github_copilot", p["github_login"]] = p["github_copilot"]
    assert from_people == from_members
    assert any(v["spend_cents"] > 0 for k, v in from_people.items() if k[0] == "github_copilot")


async def test_pages_follow_each_other_without_repeats_or_gaps(seeded: Seeded) -> None:
    await _put_mapping(seeded)
    everyone = _decimal_json(
        await seeded.client.get(PEOPLE, headers=auth(ORG), params={"days": DAYS})
    )["people"]
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"days": DAYS, "limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        response = await seeded.client.get(PEOPLE, headers=auth(ORG), params=params)
        assert response.status_code == 200
        body = _decimal_json(response)
        pages.append(body["people"])
        cursor = body["next"]
        if cursor is None:
            break
        assert len(pages) < 20
    assert [len(p) for p in pages[:-1]] == [7] * (len(pages) - 1)
    assert 1 <= len(pages[-1]) <= 7
    assert [p for page in pages for p in page] == everyone
    for bad in ("nonsense", "WyIxIiwieCJd", "", "W10"):
        response = await seeded.client.get(
            PEOPLE, headers=auth(ORG), params={"days": DAYS, "cursor": bad}
        )
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
        assert "cursor" in response.json()["error"]["message"]
    for limit in (0, 501):
        response = await seeded.client.get(PEOPLE, headers=auth(ORG), params={"limit": limit})
        assert response.status_code == 422


@pytest.mark.parametrize(
    ("rows", "index", "words"),
    [
        (
            [{"email": "a@x.io", "github_login": "a"}, {"email": "no-at", "github_login": "b"}],
            1,
            "not an email address",
        ),
        ([{"email": "a b@x.io", "github_login": "a"}], 0, "not an email address"),
        ([{"email": "a@x.io", "github_login": "-a"}], 0, "not a GitHub login"),
        ([{"email": "a@x.io", "github_login": "a-"}], 0, "not a GitHub login"),
        ([{"email": "a@x.io", "github_login": "a--b"}], 0, "not a GitHub login"),
        ([{"email": "a@x.io", "github_login": "a_b"}], 0, "not a GitHub login"),
        ([{"email": "a@x.io", "github_login": "a" * 40}], 0, "not a GitHub login"),
        ([{"email": "a@x.io", "github_login": ""}], 0, "not a GitHub login"),
        (
            [
                {"email": "a@x.io", "github_login": "a"},
                {"email": "b@x.io", "github_login": "b"},
                {"email": "A@X.IO", "github_login": "c"},
            ],
            2,
            "already mapped by identities[0]",
        ),
        (
            [
                {"email": "a@x.io", "github_login": "Octo-Cat"},
                {"email": "b@x.io", "github_login": "octo-cat"},
            ],
            1,
            "already mapped by identities[0]",
        ),
        ([{"email": "a@x.io"}], 0, "github_login"),
        ([{"email": "a@x.io", "github_login": 7}], 0, "github_login"),
        ([{"email": "a@x.io", "github_login": "a", "extra": 1}], 0, "extra"),
    ],
)
async def test_a_bad_row_is_named_and_nothing_is_replaced(
    seeded: Seeded, rows: list[dict[str, Any]], index: int, words: str
) -> None:
    await _put_mapping(seeded)
    response = await seeded.client.put(IDENTITIES, headers=auth(ORG), json={"identities": rows})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"identities[{index}]" in error["message"] or f"identities.{index}" in error["message"]
    assert words in error["message"]
    listed = (await seeded.client.get(IDENTITIES, headers=auth(ORG))).json()["identities"]
    assert len(listed) == len(_mapping(seeded))


async def test_an_empty_mapping_leaves_everyone_alone(seeded: Seeded) -> None:
    response = await seeded.client.put(IDENTITIES, headers=auth(ORG), json={"identities": []})
    assert (response.status_code, response.json()) == (200, {"identities": 0})
    try:
        people = _decimal_json(
            await seeded.client.get(PEOPLE, headers=auth(ORG), params={"days": DAYS})
        )["people"]
        assert all((p["email"] is None) != (p["github_login"] is None) for p in people)
        assert len(people) == len(seeded.truth["members"]) + len(seeded.emails)
    finally:
        await _put_mapping(seeded)


async def test_members_and_other_orgs_get_403(seeded: Seeded) -> None:
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", IDENTITIES, None),
        ("PUT", IDENTITIES, {"identities": []}),
        ("GET", PEOPLE, None),
        ("GET", f"{PEOPLE}?format=csv", None),
        ("GET", f"{MEMBERS}?format=csv", None),
    ]
    # Members may see spend in the summary: that exposes no per-person row.
    response = await seeded.client.put(
        f"{BASE}/settings",
        headers=auth(ORG),
        json={"members_can_see_spend": True, "min_group_size": 1},
    )
    assert response.status_code == 200
    try:
        for method, path, body in calls:
            response = await seeded.client.request(
                method, path, headers=auth(ORG, "member"), json=body
            )
            assert (response.status_code, response.json()["error"]["code"]) == (
                403,
                "admin_only",
            ), path
            response = await seeded.client.request(
                method, path, headers=auth("org-other"), json=body
            )
            assert (response.status_code, response.json()["error"]["code"]) == (
                403,
                "forbidden",
            ), path
            response = await seeded.client.request(method, path, json=body)
            assert response.status_code == 401, path
    finally:
        await seeded.client.put(f"{BASE}/settings", headers=auth(ORG), json={})
    # The member's attempt changed nothing.
    listed = (await seeded.client.get(IDENTITIES, headers=auth(ORG))).json()["identities"]
    assert listed != []


def _csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.endswith("\r\n")
    return list(csv.reader(io.StringIO(response.text, newline="")))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return str(value)


async def test_people_csv_has_every_row_quoted_and_defused(seeded: Seeded) -> None:
    await _put_mapping(seeded)
    response = await seeded.client.get(
        PEOPLE, headers=auth(ORG), params={"days": DAYS, "format": "csv", "limit": 1}
    )
    rows = _csv_rows(response)
    assert rows[0] == [
        "email",
        "github_login",
        "name",
        "cursor_active_days",
        "cursor_requests",
        "cursor_spend_cents",
        "github_copilot_active_days",
        "github_copilot_requests",
        "github_copilot_spend_cents",
        "total_spend_cents",
    ]
    expected = _expected_people(seeded)
    assert len(rows) == 1 + len(expected)  # every row, whatever the limit
    for row, p in zip(rows[1:], expected, strict=True):
        cur = p["cursor"] or {}
        cop = p["github_copilot"] or {}
        assert row[:3] == [_cell(p["email"]), _cell(p["github_login"]), _cell(p["name"])]
        assert [Decimal(v) if v else None for v in row[3:]] == [
            cur.get("active_days"),
            cur.get("requests"),
            cur.get("spend_cents"),
            cop.get("active_days"),
            cop.get("requests"),
            cop.get("spend_cents"),
            p["total_spend_cents"],
        ]
    text = response.text
    # The formula is defused, the comma and quotes are quoted per RFC 4180.
    assert ',"\'=HYPERLINK(""http://evil.example"",""x"")",' in text
    assert ',"Smith, ""Jo""",' in text
    assert ",'-Dev Four," in text
    names = {r[0]: r[2] for r in rows[1:]}
    assert names[seeded.emails[1]] == "'" + INJECTED_NAME
    assert names[seeded.emails[2]] == QUOTED_NAME


async def test_members_csv_equals_the_json(seeded: Seeded) -> None:
    members = _decimal_json(
        await seeded.client.get(MEMBERS, headers=auth(ORG), params={"days": DAYS})
    )["members"]
    rows = _csv_rows(
        await seeded.client.get(MEMBERS, headers=auth(ORG), params={"days": DAYS, "format": "csv"})
    )
    header = [
        "provider",
        "email",
        "login",
        "name",
        "active_days",
        "requests",
        "top_model",
        "spend_cents",
    ]
    assert rows[0] == header
    assert rows[1:] == [[_cell(m[h]) for h in header] for m in members]
    assert any(r[3] == "'" + INJECTED_NAME for r in rows[1:])
    response = await seeded.client.get(MEMBERS, headers=auth(ORG), params={"format": "xml"})
    assert response.status_code == 422


async def test_bodies_validate_against_the_openapi_document(seeded: Seeded) -> None:
    await _put_mapping(seeded)
    spec = (await seeded.client.get("/openapi.json")).json()
    check = documented_body_checker(spec)
    check("people", "get", await seeded.client.get(PEOPLE, headers=auth(ORG)))
    check("identities", "get", await seeded.client.get(IDENTITIES, headers=auth(ORG)))
    response = await seeded.client.put(
        IDENTITIES, headers=auth(ORG), json={"identities": _mapping(seeded)}
    )
    check("identities", "put", response)
    response = await seeded.client.get(PEOPLE, headers=auth(ORG, "member"))
    check("people", "get", response)
    assert (
        "text/csv"
        in spec["paths"][f"{BASE.replace(ORG, '{org_id}')}/people"]["get"]["responses"]["200"][
            "content"
        ]
    )


async def test_a_mapping_of_100000_rows_replaces_atomically_and_fast(seeded: Seeded) -> None:
    """Another org's big mapping, whose rows reuse this org's emails and logins with other
    partners, is stored quickly and changes nothing for this org."""
    await _put_mapping(seeded)
    before = _decimal_json(await seeded.client.get(PEOPLE, headers=auth(ORG)))["people"]
    big_org = "org-big"
    rows = [{"email": f"person{i}@big.example", "github_login": f"user-{i}"} for i in range(99_998)]
    rows += [
        {"email": seeded.emails[0], "github_login": seeded.logins[5]},
        {"email": seeded.emails[3], "github_login": seeded.logins[0]},
    ]
    path = f"/v1/orgs/{big_org}/ai-analytics/identities"
    copy_s = await _raw_copy_seconds(seeded.settings.database_url, rows)
    started = time.perf_counter()
    response = await seeded.client.put(path, headers=auth(big_org), json={"identities": rows})
    first_s = time.perf_counter() - started
    assert (response.status_code, response.json()) == (200, {"identities": 100_000})
    started = time.perf_counter()
    response = await seeded.client.put(path, headers=auth(big_org), json={"identities": rows})
    replace_s = time.perf_counter() - started
    assert (response.status_code, response.json()) == (200, {"identities": 100_000})
    # About 1 to 3 s on this 2-core machine shared with other test runs (the COPY alone: about
    # 1 s). Compared with a raw COPY of the same rows into the same kind of table, measured
    # just before under the same load: the request (JSON, validation, delete, COPY) stays
    # within a few times it, where row-by-row inserts would take tens of times it.
    budget_s = 5 * copy_s + 2
    assert first_s < budget_s, f"first PUT {first_s:.2f} s, raw COPY {copy_s:.2f} s"
    assert replace_s < budget_s, f"replacing PUT {replace_s:.2f} s, raw COPY {copy_s:.2f} s"
    listed = (await seeded.client.get(path, headers=auth(big_org))).json()["identities"]
    assert len(listed) == 100_000
    assert listed == sorted(listed, key=lambda m: m["email"])
    after = _decimal_json(await seeded.client.get(PEOPLE, headers=auth(ORG)))["people"]
    assert after == before
    too_many = [*rows, {"email": "one@more.example", "github_login": "one-more"}]
    response = await seeded.client.put(path, headers=auth(big_org), json={"identities": too_many})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def _raw_copy_seconds(dsn: str, rows: list[dict[str, str]]) -> float:
    """Seconds of a bare COPY of ``rows`` into an empty table shaped like ``identities``."""
    records = [("org-copy", r["email"].lower(), r["github_login"].lower()) for r in rows]
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE copy_baseline (LIKE metrics.identities INCLUDING ALL) "
                "ON COMMIT DROP"
            )
            started = time.perf_counter()
            await conn.copy_records_to_table(
                "copy_baseline", records=records, columns=("org_id", "email", "github_login")
            )
            return time.perf_counter() - started
    finally:
        await conn.close()
