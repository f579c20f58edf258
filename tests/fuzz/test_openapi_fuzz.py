"""Schemathesis over both services' OpenAPI documents, against the real services.

The connector and metrics run under uvicorn (with the services' own HTTP protocol class) in a
thread with its own event loop, on real PostgreSQL (a scratch database) and Kafka (a fresh topic
namespace), the connector talking to the Cursor sandbox. One organisation has data: a Cursor
integration connected through the connector, and usage records the metrics service ingested.

Every operation of both documents gets generated requests (valid ones, and invalid ones), with an
admin and a member token of that organisation; each response must hold these checks: no 5xx, the
status code documented for the operation, the content type documented, the body valid against the
documented schema. Bounded: a fixed number of examples per operation, no shrinking.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.errors import InvalidSchema
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from koalr_connector.app import create_app as create_connector
from koalr_contracts import topics
from koalr_devstack.databases import scratch_database
from koalr_metrics.app import create_app as create_metrics
from koalr_runtime.wire import json_error_protocol
from koalr_sandbox.testing import SandboxClient, run_sandbox
from tests.connector.conftest import make_settings as connector_settings
from tests.connector.conftest import token as connector_token
from tests.metrics.support import (
    connected,
    producer,
    publish,
    today,
    usage,
)
from tests.metrics.support import (
    make_settings as metrics_settings,
)
from tests.metrics.support import (
    token as metrics_token,
)

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies use `random`; nothing this test can change.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

ORG = "fuzz-org"
EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Generous enough that the fuzzer's own pace is never limited (429 is documented, but a
#: limited request tests nothing else).
EDGE = {"http_rate_limit_per_s": 10_000.0, "http_rate_limit_burst": 10_000}


@dataclass
class Served:
    connector_url: str
    metrics_url: str
    integration_id: str


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _serve_both(
    kafka: str,
    database_url: str,
    sandbox_url: str,
    ready: Callable[[Served], None],
    stop: asyncio.Event,
) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    async with scratch_database(database_url) as dsn:
        connector_app = create_connector(
            connector_settings(
                kafka_bootstrap_servers=kafka,
                database_url=dsn,
                topic_namespace=namespace,
                cursor_api_base_url=sandbox_url,
                **EDGE,
            )
        )
        m_settings = metrics_settings(kafka, dsn, namespace, ingest_decode_workers=0, **EDGE)
        metrics_app = create_metrics(m_settings)
        sockets = [_socket(), _socket()]
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    http=json_error_protocol(),
                    lifespan="on",
                )
            )
            for app in (connector_app, metrics_app)
        ]
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(servers, sockets, strict=True)
        ]
        try:
            while not all(server.started for server in servers):
                if any(task.done() for task in tasks):
                    raise RuntimeError("a service did not start")
                await asyncio.sleep(0.05)
            connector_url, metrics_url = (_url(sock) for sock in sockets)
            integration_id = await _seed(connector_url, metrics_url, sandbox_url, m_settings)
            ready(Served(connector_url, metrics_url, integration_id))
            await stop.wait()
        finally:
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)


async def _seed(connector_url: str, metrics_url: str, sandbox_url: str, m_settings: Any) -> str:
    """A Cursor integration connected through the connector; a week of usage in metrics."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        team = await SandboxClient(
            http, defaults={"members": 3, "days": 3, "seed": 7, "rate_limits_enabled": False}
        ).create_team()
    async with httpx.AsyncClient(base_url=connector_url, timeout=30) as http:
        response = await http.post(
            f"/v1/orgs/{ORG}/integrations",
            json={"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id},
            headers={"Authorization": f"Bearer {connector_token(ORG, expires_in_s=3600)}"},
        )
        assert response.status_code == 201, response.text
        integration_id = str(response.json()["id"])
    metrics_id = uuid.uuid4()
    now = datetime.now(UTC)
    records = [
        usage(
            ORG,
            metrics_id,
            today() - timedelta(days=d),
            f"dev{m}@fuzz.example",
            {"gpt-5": (d + m + 1, f"{d + m}.25")},
            fetched_at=now,
        )
        for d in range(7)
        for m in range(4)
    ]
    async with producer(m_settings) as broker:
        await publish(
            broker, m_settings.topic(topics.INTEGRATIONS), [connected(ORG, metrics_id, sequence=1)]
        )
        await publish(broker, m_settings.topic(topics.USAGE_RECORDS), records)
    admin = {"Authorization": f"Bearer {_metrics_token('admin')}"}
    async with httpx.AsyncClient(base_url=metrics_url, timeout=30) as http:
        for _ in range(600):
            summary = await http.get(f"/v1/orgs/{ORG}/ai-analytics/summary", headers=admin)
            providers = summary.json().get("providers", [])
            if any(p["requests"] for entry in providers for p in entry["requests"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the metrics service never showed the seeded usage")
    return integration_id


def _metrics_token(role: str) -> str:
    return metrics_token(ORG, role, exp=datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture(scope="module")
def served(kafka_bootstrap_servers: str, database_url: str) -> Iterator[Served]:
    with run_sandbox() as sandbox_url:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        started: list[Served] = []
        up = threading.Event()
        failure: list[BaseException] = []

        def ready(served: Served) -> None:
            started.append(served)
            up.set()

        def run() -> None:
            try:
                loop.run_until_complete(
                    _serve_both(kafka_bootstrap_servers, database_url, sandbox_url, ready, stop)
                )
            except BaseException as exc:  # noqa: BLE001 - reported to the test below
                failure.append(exc)
                up.set()

        thread = threading.Thread(target=run, name="fuzz-services", daemon=True)
        thread.start()
        try:
            assert up.wait(timeout=120), "the services did not start within 120 s"
            if failure:
                raise failure[0]
            yield started[0]
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=60)
            loop.close()


def _operation(result: Ok[APIOperation[Any, Any, Any, Any]] | Err[InvalidSchema]) -> Any:
    """The operation, or the document's error about it (every operation must load)."""
    if isinstance(result, Err):
        pytest.fail(f"an operation of the document is invalid: {result.err()}")
    return result.ok()


def _headers(service: str, role: str) -> dict[str, str]:
    if service == "connector":
        bearer = connector_token(ORG, role=role, expires_in_s=3600)
    else:
        bearer = _metrics_token(role)
    return {"Authorization": f"Bearer {bearer}"}


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
@pytest.mark.parametrize("role", ["admin", "member"])
@pytest.mark.parametrize("service", ["connector", "metrics"])
def test_every_operation_holds_its_documented_contract(
    served: Served, service: str, role: str, mode: schemathesis.GenerationMode
) -> None:
    base_url = served.connector_url if service == "connector" else served.metrics_url
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [_operation(result) for result in schema.get_all_operations()]
    assert len(operations) >= (6 if service == "connector" else 4)
    headers = _headers(service, role)
    seen: dict[int, int] = {}

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case[Any]) -> None:
            if mode is schemathesis.GenerationMode.POSITIVE and case.path_parameters:
                # Valid requests are for the organisation that has data (and its integration,
                # every other time), so they reach the service's logic, not only the 403.
                case.path_parameters["org_id"] = ORG
                if (
                    "integration_id" in case.path_parameters
                    and zlib.crc32(str(case.path_parameters["integration_id"]).encode()) % 2
                ):
                    case.path_parameters["integration_id"] = served.integration_id
            response = case.call_and_validate(
                base_url=base_url, headers=headers, checks=CHECKS, timeout=30
            )
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        call()
    assert sum(seen.values()) >= len(operations), seen
    if mode is schemathesis.GenerationMode.POSITIVE and role == "admin":
        assert any(200 <= status < 300 for status in seen), seen
