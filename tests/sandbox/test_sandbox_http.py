"""The sandbox served over real HTTP by uvicorn, as other services' tests use it."""

from __future__ import annotations

import httpx

from koalr_sandbox.testing import run_sandbox


def test_run_sandbox_serves_the_api_over_http() -> None:
    with run_sandbox() as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        assert base_url.startswith("http://127.0.0.1:")
        assert http.get("/healthz").json() == {"status": "ok"}
        created = http.post("/_sandbox/teams", json={"members": 8, "days": 10, "seed": 3})
        assert created.status_code == 201
        team = created.json()
        members = http.get("/teams/members", auth=(team["api_key"], ""))
        assert members.status_code == 200
        assert len(members.json()["teamMembers"]) == 8
        spend = http.post("/teams/spend", json={}, auth=(team["api_key"], ""))
        assert spend.status_code == 200
        log = http.get(f"/_sandbox/teams/{team['team_id']}/requests").json()["requests"]
        assert [(r["path"], r["status"]) for r in log] == [
            ("/teams/members", 200),
            ("/teams/spend", 200),
        ]
    with httpx.Client() as after:
        try:
            after.get(f"{base_url}/healthz", timeout=1)
        except httpx.TransportError:
            stopped = True
        else:
            stopped = False
    assert stopped, "the server stops when the block exits"


def test_two_sandboxes_run_side_by_side() -> None:
    with run_sandbox() as first, run_sandbox() as second:
        assert first != second
        for url in (first, second):
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
