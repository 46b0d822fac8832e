"""HEAD answers like GET without the body (RFC 9110 9.3.2), so `curl -I`, link checkers and health
probes work on every GET route: the same status and headers (Content-Length, X-Log-Size, ...).

Litestar routes HEAD only to handlers that declare it, so this asks the app for the GET and drops
the body on the way out. Not for SSE `/stream` routes: their GET never ends, and a HEAD must; those
keep the router's 405, whose Allow header says GET.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD" or scope["path"].endswith("/stream"):
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        as_get = cast(Any, {**scope, "method": "GET"})
        await self.app(as_get, receive, send_headers_only)
