"""CSV exports (``format=csv``): RFC 4180 text, streamed, safe to open in a spreadsheet.

- Python's :mod:`csv` writes the rows: fields quoted when they hold a comma, a quote or a line
  break, quotes doubled, lines ended by CRLF, a header row first.
- Formula injection (OWASP "CSV Injection"): a spreadsheet runs a cell that starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return as a formula. A *text* cell (a name, an email,
  a model) starting with one of them gets a leading ``'``, which spreadsheets show as text.
  Numbers are written as numbers and never escaped: a count or an amount is never text, so a
  negative number stays ``-5`` (the figures here are not negative, but that is the rule).
- Money is written from its exact decimal digits (as in the JSON), null as an empty cell.
- The body is produced a batch of rows at a time, as the rows come, never as one big string.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from fastapi import Query
from fastapi.responses import StreamingResponse

from koalr_metrics.jsonio import decimal_text
from koalr_metrics.schemas import MembersOut

MEDIA_TYPE: Final = "text/csv; charset=utf-8"
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK: Final = 500

Cell = str | int | Decimal | None

Format = Annotated[
    Literal["json", "csv"],
    Query(description="`csv`: every row as RFC 4180 `text/csv` with a header row."),
]
CSV_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": (
            "JSON, or with `format=csv` RFC 4180 CSV with a header row (text cells starting "
            "with `=`, `+`, `-`, `@`, tab or CR are prefixed with `'`; numbers never are)."
        ),
    }
}

MEMBERS_CSV_HEADER: Final = (
    "provider",
    "email",
    "login",
    "name",
    "active_days",
    "requests",
    "top_model",
    "spend_cents",
)


def cell_text(value: Cell) -> str:
    """The text of one cell: numbers as they are, text defused against formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise TypeError("booleans have no CSV rendering here")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Lines:
    """A CSV writer over a buffer that hands back what it wrote since the last call."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def write(self, row: Sequence[Cell]) -> None:
        self._writer.writerow([cell_text(v) for v in row])

    def take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()


async def csv_chunks(
    header: Sequence[str], rows: AsyncIterable[Sequence[Cell]] | Iterable[Sequence[Cell]]
) -> AsyncIterator[bytes]:
    """The header, then the rows, in chunks of :data:`ROWS_PER_CHUNK` rows."""
    lines = _Lines()
    lines.write(header)
    pending = 0
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            lines.write(row)
            pending += 1
            if pending == ROWS_PER_CHUNK:
                yield lines.take()
                pending = 0
    else:
        for row in rows:
            lines.write(row)
            pending += 1
            if pending == ROWS_PER_CHUNK:
                yield lines.take()
                pending = 0
    yield lines.take()


def csv_response(
    name: str,
    header: Sequence[str],
    rows: AsyncIterable[Sequence[Cell]] | Iterable[Sequence[Cell]],
) -> StreamingResponse:
    """A streamed CSV download named ``<name>.csv``."""
    return StreamingResponse(
        csv_chunks(header, rows),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def members_rows(document: MembersOut) -> list[Sequence[Cell]]:
    """The members document as CSV rows (:data:`MEMBERS_CSV_HEADER`), in its order."""
    return [
        (
            m["provider"],
            m["email"],
            m["login"],
            m["name"],
            m["active_days"],
            m["requests"],
            m["top_model"],
            m["spend_cents"],
        )
        for m in document["members"]
    ]
