"""The pure rules of the people across tools: identity rows, page tokens and CSV cells."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import pytest

from koalr_metrics.csvout import Cell, cell_text, csv_chunks
from koalr_metrics.people import (
    Identity,
    InvalidIdentityError,
    Person,
    decode_cursor,
    encode_cursor,
    normalise_identities,
)
from koalr_runtime.http import ApiError


def test_rows_are_normalised_in_their_order() -> None:
    rows = [(" Ada@Example.COM ", "Ada-L"), ("bob@x.io", "b0b"), ("c@x.io", "a" * 39)]
    assert normalise_identities(rows) == [
        Identity("ada@example.com", "ada-l"),
        Identity("bob@x.io", "b0b"),
        Identity("c@x.io", "a" * 39),
    ]


@pytest.mark.parametrize("login", ["", "-a", "a-", "a--b", "a_b", "a.b", "é", "a" * 40, "a b"])
def test_logins_breaking_githubs_rules_are_refused(login: str) -> None:
    with pytest.raises(InvalidIdentityError) as caught:
        normalise_identities([("ok@x.io", "fine"), ("a@x.io", login)])
    assert caught.value.status == 422
    assert caught.value.message.startswith("identities[1]: github_login")


@pytest.mark.parametrize("email", ["", "a", "@x.io", "a@", "a@@x.io", "a b@x.io", "a@x.io\n"])
def test_emails_without_a_shape_are_refused(email: str) -> None:
    if email.strip() != email:
        email = "a b@x.io"  # surrounding whitespace is trimmed; inner whitespace is not
    with pytest.raises(InvalidIdentityError) as caught:
        normalise_identities([(email, "octo")])
    assert "identities[0]: email" in caught.value.message


def test_an_email_or_login_twice_in_any_case_names_both_rows() -> None:
    with pytest.raises(InvalidIdentityError) as caught:
        normalise_identities([("a@x.io", "one"), ("b@x.io", "two"), ("A@X.io", "three")])
    assert caught.value.message == (
        "identities[2]: email 'a@x.io' is already mapped by identities[0]"
    )
    with pytest.raises(InvalidIdentityError) as caught:
        normalise_identities([("a@x.io", "One"), ("b@x.io", "oNE")])
    assert caught.value.message == (
        "identities[1]: github_login 'one' is already mapped by identities[0]"
    )


def test_more_than_100000_rows_are_refused() -> None:
    rows = [(f"p{i}@x.io", f"u{i}") for i in range(100_001)]
    with pytest.raises(ApiError) as caught:
        normalise_identities(rows)
    assert caught.value.status == 422
    assert len(normalise_identities(rows[:100_000])) == 100_000


def test_a_page_token_names_the_last_row_exactly() -> None:
    person = Person(None, "octo", None, None, None, Decimal("1234.56789"), "l:octo")
    after = decode_cursor(encode_cursor(person))
    assert (after.total_spend_cents, after.sort_key) == (Decimal("1234.56789"), "l:octo")


@pytest.mark.parametrize(
    "token", ["", "x", "bm9wZQ", "WyJOYU4iLCJlOmEiXQ", "WzEsImU6YSJd", "WyIxIiwieiJd"]
)
def test_a_foreign_token_is_a_422(token: str) -> None:
    """Base64 of: nothing, garbage, the text nope, a NaN total, a numeric total, a bad key."""
    with pytest.raises(ApiError) as caught:
        decode_cursor(token)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-5, "-5"),
        (Decimal("-0.5"), "-0.5"),
        (Decimal("12.50000"), "12.5"),
        (7, "7"),
    ],
)
def test_only_text_cells_are_defused(value: Cell, text: str) -> None:
    assert cell_text(value) == text


async def test_chunks_are_rfc_4180_and_stream_in_batches() -> None:
    async def rows() -> AsyncIterator[Sequence[Cell]]:
        for i in range(1201):
            yield (f'n "{i}", x', i, Decimal(i) / 4)

    chunks = [chunk async for chunk in csv_chunks(("name", "n", "cents"), rows())]
    assert len(chunks) == 3  # 500 + 500 + 201 rows, the header with the first
    text = b"".join(chunks).decode()
    assert text.startswith('name,n,cents\r\n"n ""0"", x",0,0\r\n')
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[1201] == ['n "1200", x', "1200", "300"]
    assert len(parsed) == 1202
