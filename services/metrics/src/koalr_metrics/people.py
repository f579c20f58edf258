"""People across tools: the org's identity mapping (email to GitHub login) and the people view.

Identities. An admin PUTs the whole mapping; it replaces the previous one atomically. Every row
is checked here, before anything is written, and the first bad row is named by its index:

- ``email``: one ``@`` with text on both sides, no whitespace, at most 320 characters.
- ``github_login``: GitHub's rules: 1 to 39 characters, ASCII letters, digits and hyphens, not
  starting or ending with a hyphen, no two hyphens in a row.
- Emails and logins compare case-insensitively (GitHub logins are; the contracts lowercase the
  emails providers send), so both are stored lowercased, and an email or a login given twice in
  one body (in any case) is an error: the mapping is one to one.

People. One row per person over a range, joined at read time in PostgreSQL (the repository's
query; the choice: docs/decisions/0203-people-across-tools.md): a mapped email and login are one
person; a Cursor member (by email) or a Copilot member (by login) that no mapping names stands
alone. A mapping whose email and login both lack data in the range gives no row. Each tool's
figures are the ones ``/members`` gives (a Copilot member's spend includes their seat's cost).

Pages. Rows come by total spend, highest first, ties by their person key (``e:<email>``, else
``l:<login>``), at most ``limit`` at a time. ``next`` is an opaque token naming the last row
returned (its total and key); passing it back as ``cursor`` continues strictly after that row
(keyset paging: no row is repeated or skipped while the data does not change).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple

import orjson

from koalr_metrics.schemas import IdentityOut, PersonOut, ToolFiguresOut
from koalr_runtime.http import ApiError

MAX_IDENTITIES: Final = 100_000
PAGE_MAX: Final = 500
EMAIL_MAX: Final = 320

_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+")
_LOGIN: Final = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}")
"""A lowercased GitHub login: alnum first and last, single hyphens between (at most 39)."""


class InvalidIdentityError(ApiError):
    """A row of an identities body breaks a rule; the message names the row and the rule."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(422, "invalid_request", f"identities[{index}]: {reason}")


class Identity(NamedTuple):
    """One mapped person, normalised (lowercase email and login). A named tuple: 100,000 of
    them are built per PUT and handed to COPY as they are."""

    email: str
    github_login: str


def normalise_identities(rows: Sequence[tuple[str, str]]) -> list[Identity]:
    """The rows of a PUT body, checked and normalised, in their order.

    Raises :class:`InvalidIdentityError` naming the first row that breaks a rule (see the module
    docstring), including an email or login already given by an earlier row.
    """
    if len(rows) > MAX_IDENTITIES:
        msg = f"at most {MAX_IDENTITIES} identities per request, got {len(rows)}"
        raise ApiError(422, "invalid_request", msg)
    seen_emails: dict[str, int] = {}
    seen_logins: dict[str, int] = {}
    out: list[Identity] = []
    email_ok, login_ok = _EMAIL.fullmatch, _LOGIN.fullmatch
    for index, (raw_email, raw_login) in enumerate(rows):
        email = raw_email.strip().lower()
        login = raw_login.strip().lower()
        if len(email) > EMAIL_MAX or not email_ok(email):
            raise InvalidIdentityError(index, f"email {raw_email!r} is not an email address")
        if not login_ok(login):
            raise InvalidIdentityError(
                index,
                f"github_login {raw_login!r} is not a GitHub login (1 to 39 letters, digits or "
                "single hyphens, not starting or ending with a hyphen)",
            )
        first = seen_emails.setdefault(email, index)
        if first != index:
            raise InvalidIdentityError(
                index, f"email {email!r} is already mapped by identities[{first}]"
            )
        first = seen_logins.setdefault(login, index)
        if first != index:
            raise InvalidIdentityError(
                index, f"github_login {login!r} is already mapped by identities[{first}]"
            )
        out.append(Identity(email, login))
    return out


def identities_document(identities: Sequence[Identity]) -> list[IdentityOut]:
    return [{"email": i.email, "github_login": i.github_login} for i in identities]


# --- the people view --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolFigures:
    active_days: int
    requests: int
    spend_cents: Decimal


@dataclass(frozen=True, slots=True)
class Person:
    email: str | None
    github_login: str | None
    name: str | None
    cursor: ToolFigures | None
    github_copilot: ToolFigures | None
    total_spend_cents: Decimal
    sort_key: str
    """``e:<email>``, else ``l:<login>``: unique per row, the tie-break of the order."""


@dataclass(frozen=True, slots=True)
class PageAfter:
    """Where a page starts: strictly after the row with this total and key."""

    total_spend_cents: Decimal
    sort_key: str


def encode_cursor(person: Person) -> str:
    """The ``next`` token continuing after ``person``: URL-safe base64 of a small JSON array."""
    raw = orjson.dumps([str(person.total_spend_cents), person.sort_key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str) -> PageAfter:
    """The position a ``cursor`` query parameter names; 422 ``invalid_request`` if it is not a
    token this service issued."""
    position = None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        position = _position(orjson.loads(raw))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, InvalidOperation):
        position = None
    if position is None:
        msg = "cursor: not a token from a previous page's `next`; start again without it"
        raise ApiError(422, "invalid_request", msg)
    return position


def _position(value: object) -> PageAfter | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    total, key = value
    if not isinstance(total, str) or not isinstance(key, str) or not key.startswith(("e:", "l:")):
        return None
    cents = Decimal(total)
    return PageAfter(cents, key) if cents.is_finite() else None


def _figures(figures: ToolFigures | None) -> ToolFiguresOut | None:
    if figures is None:
        return None
    return {
        "active_days": figures.active_days,
        "requests": figures.requests,
        "spend_cents": figures.spend_cents,
    }


def person_document(person: Person) -> PersonOut:
    return {
        "email": person.email,
        "github_login": person.github_login,
        "name": person.name,
        "cursor": _figures(person.cursor),
        "github_copilot": _figures(person.github_copilot),
        "total_spend_cents": person.total_spend_cents,
    }
