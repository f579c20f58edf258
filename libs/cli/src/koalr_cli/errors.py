"""Errors the operator can act on: a code, a sentence saying what to do, and an exit code."""

from __future__ import annotations

from typing import Final, Literal

ExitCode = Literal[0, 1, 2]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2


class CliError(Exception):
    """A failure reported as ``error[<code>]: <message>`` (or JSON) with ``exit_code``."""

    def __init__(self, code: str, message: str, *, exit_code: ExitCode = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
