"""The HTTP/1.1 protocol the services serve with: uvicorn's, except that a request it cannot
parse (a malformed request line or header, an invalid chunk) is answered with the common JSON
error body instead of uvicorn's ``text/plain`` one.

Such a request never reaches the app, so no middleware can shape that answer; uvicorn builds it
in its protocol class (``send_400_response``), which is the one place to change it. The answer
is written straight to the transport and the connection closed, as uvicorn itself does: after a
parse error the parser's state is unusable.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

from uvicorn.protocols.http.h11_impl import H11Protocol

from koalr_runtime.http import error_body

MALFORMED: Final = "The HTTP request could not be parsed"


def malformed_request_answer(reason: str) -> bytes:
    """The complete HTTP/1.1 response to a request that could not be parsed; ``reason`` is
    uvicorn's sentence (``Invalid HTTP request received.``), which names no input."""
    body = json.dumps(error_body("bad_request", f"{MALFORMED}: {reason}")).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(malformed_request_answer(msg))
        self.transport.close()


def json_error_protocol() -> type[asyncio.Protocol]:
    """uvicorn's own choice (httptools when installed, else h11), answering parse errors in
    JSON."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency of uvicorn[standard]
        return JsonErrorH11Protocol

    class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(malformed_request_answer(msg))
            self.transport.close()

    return JsonErrorHttpToolsProtocol
