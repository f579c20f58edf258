"""Health of the whole system: each service's ``/healthz`` and ``/readyz``, Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from koalr_runtime.db import wait_for_postgres
from koalr_runtime.kafka import wait_for_kafka

State = Literal["ok", "down", "not_ready"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    target: str
    state: State
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def check_service(http: httpx.AsyncClient, name: str, base_url: str) -> Check:
    """``ok`` when alive and ready, ``not_ready`` when alive only, ``down`` otherwise."""
    try:
        alive = await http.get(f"{base_url}/healthz")
        if not alive.is_success:
            return Check(name, base_url, "down", f"/healthz answered {alive.status_code}")
        ready = await http.get(f"{base_url}/readyz")
    except httpx.HTTPError as exc:
        return Check(name, base_url, "down", f"no answer ({type(exc).__name__})")
    if not ready.is_success:
        return Check(
            name, base_url, "not_ready", f"/readyz answered {ready.status_code}: {ready.text[:200]}"
        )
    return Check(name, base_url, "ok", "alive and ready")


async def check_kafka(bootstrap_servers: str, timeout_s: float) -> Check:
    try:
        await wait_for_kafka(bootstrap_servers, timeout_s=timeout_s)
    except ConnectionError as exc:
        return Check("kafka", bootstrap_servers, "down", str(exc))
    return Check("kafka", bootstrap_servers, "ok", "a broker answered")


async def check_postgres(database_url: str, timeout_s: float) -> Check:
    target = database_url.rpartition("@")[2]  # never the password
    try:
        await wait_for_postgres(database_url, timeout_s=timeout_s)
    except ConnectionError as exc:
        return Check("postgres", target, "down", str(exc).replace(database_url, target))
    return Check("postgres", target, "ok", "a query succeeded")


async def system_status(
    http: httpx.AsyncClient,
    services: dict[str, str],
    *,
    bootstrap_servers: str,
    database_url: str,
    timeout_s: float,
) -> list[Check]:
    return list(
        await asyncio.gather(
            *(check_service(http, name, url) for name, url in services.items()),
            check_kafka(bootstrap_servers, timeout_s),
            check_postgres(database_url, timeout_s),
        )
    )
