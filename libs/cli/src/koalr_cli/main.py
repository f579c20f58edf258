"""``koalr``: the operator command line.

Exit codes: 0 done, 1 the command failed (a service, Kafka or PostgreSQL said no or did not
answer), 2 wrong usage. Every failure prints ``error[<code>]: <sentence>`` on stderr, or
``{"error": {"code", "message"}}`` on stdout with ``--json``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from pydantic import ValidationError

from koalr_cli import lag as lag_module
from koalr_cli.connector import ConnectorClient
from koalr_cli.dead_letters import DeadLetters, Entry, Position, ledger
from koalr_cli.errors import EXIT_FAILURE, CliError
from koalr_cli.output import emit_fields, emit_json, emit_table
from koalr_cli.settings import CliSettings
from koalr_cli.status import system_status
from koalr_contracts import topics
from koalr_runtime.logs import configure_logging

T = TypeVar("T")

INTEGRATION_COLUMNS = (
    "id",
    "provider",
    "external_id",
    "plan",
    "status",
    "sync_state",
    "data_through",
)


@dataclass(frozen=True, slots=True)
class Options:
    settings: CliSettings
    as_json: bool

    def connector(self, http: httpx.AsyncClient, org_id: str) -> ConnectorClient:
        secret = self.settings.jwt_secret
        return ConnectorClient(
            http, org_id=org_id, jwt_secret=secret.get_secret_value() if secret else None
        )

    def http(self, base_url: str = "") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, timeout=self.settings.timeout_s)

    @property
    def dead_letter_topic(self) -> str:
        return self.settings.topic(topics.DEAD_LETTERS)


def _run(
    options: Options, work: Callable[[], Coroutine[Any, Any, T]], show: Callable[[T], None]
) -> T:
    """Run one command's async work; report a :class:`CliError` and exit with its code."""
    try:
        result: T = asyncio.run(work())
    except CliError as exc:
        if options.as_json:
            emit_json(exc.as_dict())
        else:
            click.echo(f"error[{exc.code}]: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    show(result)
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of columns."
)
@click.pass_context
def cli(ctx: click.Context, as_json: bool) -> None:
    """Operate the Koalr services: integrations, resyncs, consumer lag, dead letters, status.

    Reads KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, KOALR_TOPIC_NAMESPACE, KOALR_JWT_SECRET,
    KOALR_CONNECTOR_URL, KOALR_METRICS_URL and KOALR_SYNCER_URLS (see docs/operators.md).
    """
    try:
        settings = CliSettings()
    except ValidationError as exc:
        raise click.UsageError(f"invalid configuration: {exc}") from exc
    configure_logging(settings.log_level, settings.log_format, stream=sys.stderr)
    # aiokafka logs each failed connection; the command's own error already says what to do.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    ctx.obj = Options(settings, as_json)


@cli.group()
def integrations() -> None:
    """An org's integrations, through the connector's API (admin token from KOALR_JWT_SECRET)."""


def _integration_row(item: dict[str, Any]) -> dict[str, Any]:
    sync = item.get("sync") or {}
    return {
        **item,
        "sync_state": sync.get("state"),
        "data_through": sync.get("data_through"),
    }


@integrations.command("list")
@click.option("--org", "org_id", required=True, help="The organisation id.")
@click.pass_obj
def integrations_list(options: Options, org_id: str) -> None:
    """Every integration of an org with its status and sync state."""

    async def work() -> list[dict[str, Any]]:
        async with options.http(options.settings.connector_url) as http:
            return await options.connector(http, org_id).list_integrations()

    def show(items: list[dict[str, Any]]) -> None:
        if options.as_json:
            emit_json({"integrations": items})
        else:
            emit_table([_integration_row(i) for i in items], INTEGRATION_COLUMNS)

    _run(options, work, show)


@integrations.command("show")
@click.option("--org", "org_id", required=True, help="The organisation id.")
@click.argument("integration_id")
@click.pass_obj
def integrations_show(options: Options, org_id: str, integration_id: str) -> None:
    """One integration, with its last error."""

    async def work() -> dict[str, Any]:
        async with options.http(options.settings.connector_url) as http:
            return await options.connector(http, org_id).get_integration(integration_id)

    _run(options, work, emit_json if options.as_json else emit_fields)


@cli.command()
@click.option("--org", "org_id", required=True, help="The organisation id.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Days to re-read (default: the connector's).",
)
@click.argument("integration_id")
@click.pass_obj
def resync(options: Options, org_id: str, integration_id: str, days: int | None) -> None:
    """Ask for a sync of an integration now (the connector answers with the job id)."""

    async def work() -> dict[str, Any]:
        async with options.http(options.settings.connector_url) as http:
            return await options.connector(http, org_id).resync(integration_id, days=days)

    _run(options, work, emit_json if options.as_json else emit_fields)


@cli.command()
@click.option("--group", "groups", multiple=True, help="Only this consumer group (repeatable).")
@click.pass_obj
def lag(options: Options, groups: tuple[str, ...]) -> None:
    """Consumer lag per group and partition: committed offset, end offset, lag.

    Without --group: every group of the topic namespace (KOALR_TOPIC_NAMESPACE).
    """
    namespace = options.settings.topic_namespace
    prefix = f"{namespace}." if namespace else ""

    async def work() -> list[lag_module.PartitionLag]:
        return await lag_module.consumer_lag(
            options.settings.kafka_bootstrap_servers,
            groups=list(groups) or None,
            group_prefix=prefix,
            timeout_s=options.settings.timeout_s,
        )

    def show(rows: list[lag_module.PartitionLag]) -> None:
        if options.as_json:
            emit_json(
                {"partitions": [r.as_dict() for r in rows], "total_lag": sum(r.lag for r in rows)}
            )
        else:
            emit_table(
                [r.as_dict() for r in rows],
                ("group", "topic", "partition", "committed", "end", "lag"),
            )

    _run(options, work, show)


@cli.group("dead-letters")
def dead_letters() -> None:
    """Messages a consumer could not process (KOALR_TOPIC_NAMESPACE's dead-letter topic)."""


def _dead_letters(options: Options) -> DeadLetters:
    return DeadLetters(
        options.settings.kafka_bootstrap_servers,
        options.dead_letter_topic,
        timeout_s=options.settings.timeout_s,
    )


@dead_letters.command("list")
@click.pass_obj
def dead_letters_list(options: Options) -> None:
    """Every dead letter, oldest first per partition, and whether it was replayed."""

    async def work() -> list[Entry]:
        found = await _dead_letters(options).read_all()
        async with ledger(options.settings.database_url, options.settings.timeout_s) as book:
            replays = await book.replays(options.dead_letter_topic)
        return [Entry(p, letter, replays.get((p.partition, p.offset))) for p, letter in found]

    def show(entries: list[Entry]) -> None:
        if options.as_json:
            emit_json({"dead_letters": [e.summary() for e in entries]})
        else:
            emit_table(
                [e.summary() for e in entries],
                ("id", "occurred_at", "source", "error_type", "replayed", "reason"),
            )

    _run(options, work, show)


@dead_letters.command("show")
@click.argument("dead_letter_id")
@click.pass_obj
def dead_letters_show(options: Options, dead_letter_id: str) -> None:
    """One dead letter in full: its origin, the error and the original message."""

    async def work() -> Entry:
        position = Position.parse(dead_letter_id)
        letter = await _dead_letters(options).read_one(position)
        async with ledger(options.settings.database_url, options.settings.timeout_s) as book:
            replays = await book.replays(options.dead_letter_topic)
        return Entry(position, letter, replays.get((position.partition, position.offset)))

    def show(entry: Entry) -> None:
        if options.as_json:
            emit_json(entry.detail())
        else:
            emit_fields(entry.detail())

    _run(options, work, show)


@dead_letters.command("replay")
@click.argument("dead_letter_id")
@click.option(
    "--payload",
    "payload_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file with the fixed message to publish instead of the original.",
)
@click.pass_obj
def dead_letters_replay(options: Options, dead_letter_id: str, payload_file: Path | None) -> None:
    """Put a dead letter's message (or its fixed version) back on its source topic, once."""

    payload = payload_file.read_bytes() if payload_file is not None else None

    async def work() -> dict[str, Any]:
        position = Position.parse(dead_letter_id)
        async with ledger(options.settings.database_url, options.settings.timeout_s) as book:
            letter, landed = await _dead_letters(options).replay(position, book, payload=payload)
        return {
            "id": str(position),
            "replayed_to": letter.source_topic,
            "partition": landed.partition,
            "offset": landed.offset,
        }

    def show(result: dict[str, Any]) -> None:
        if options.as_json:
            emit_json(result)
        else:
            click.echo(
                f"dead letter {result['id']} replayed to {result['replayed_to']} "
                f"(partition {result['partition']}, offset {result['offset']})"
            )

    _run(options, work, show)


@cli.command()
@click.pass_obj
def status(options: Options) -> None:
    """Health and readiness of every service, Kafka and PostgreSQL; exit 1 unless all are ok."""
    settings = options.settings

    async def work() -> list[Any]:
        async with options.http() as http:
            return await system_status(
                http,
                settings.service_urls(),
                bootstrap_servers=settings.kafka_bootstrap_servers,
                database_url=settings.database_url,
                timeout_s=settings.timeout_s,
            )

    def show(checks: list[Any]) -> None:
        if options.as_json:
            emit_json(
                {
                    "checks": [c.as_dict() for c in checks],
                    "ok": all(c.state == "ok" for c in checks),
                }
            )
        else:
            emit_table([c.as_dict() for c in checks], ("name", "target", "state", "detail"))

    checks = _run(options, work, show)
    if any(c.state != "ok" for c in checks):
        sys.exit(EXIT_FAILURE)


def main() -> None:
    cli(prog_name="koalr")
