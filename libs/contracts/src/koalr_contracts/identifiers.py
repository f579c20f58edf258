"""The one definition of what an organisation id may look like, shared by the event contracts
and the HTTP edge of every service.

The platform names organisations; we only store and compare the name. Keeping it to a short,
printable alphabet means it can never carry a NUL (which PostgreSQL refuses in text), a path
separator, or anything a log or a metric label would have to escape.
"""

from __future__ import annotations

import re
from typing import Final

ORG_ID_MAX_LENGTH: Final = 128
ORG_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]+$"
ORG_ID_RULE: Final = "letters, digits and `_ . : -`, at most 128 characters"

_ORG_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def is_org_id(text: str) -> bool:
    """Whether ``text`` is a well-formed organisation id (the whole string, no trailing newline)."""
    return _ORG_ID.fullmatch(text) is not None


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a C0 control character or DEL (NUL included)."""
    return _CONTROL.search(text) is not None
