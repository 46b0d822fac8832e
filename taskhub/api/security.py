"""The guard in front of every request (SPEC section 7), as plain ASGI so it costs microseconds.

1. Host allowlist (loopback names and TASKHUB_ALLOWED_HOSTS): defeats DNS rebinding. 400 otherwise.
2. With TASKHUB_TOKEN set, every `/api` request carries `Authorization: Bearer <token>`, compared in
   constant time; `?token=` is accepted only on GET of an SSE `/stream` route (EventSource cannot
   set headers). 401 otherwise. The token is never logged (server.py redacts access logs).
3. State-changing methods need `Content-Type: application/json` (415) and, when the browser sends an
   `Origin`, one that names this very host (403): a cross-site form or fetch cannot forge either.
"""

from __future__ import annotations

import hmac
from typing import Any, cast
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from taskhub.api.errors import error_bytes
from taskhub.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_name(host: str) -> str:
    """`Example.com:8000` -> `example.com`; `[::1]:8000` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        allowed = {host_name(h) for h in settings.allowed_hosts}
        self.any_host = "*" in allowed
        self.allowed = frozenset(allowed)
        self.token = settings.token.encode() if settings.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        problem = self.check(cast("dict[str, Any]", scope))
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, detail, extra = problem
        body = error_bytes(status, detail)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def check(self, scope: dict[str, Any]) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        host = _header(scope, b"host")
        if host is None:
            return 400, "a Host header is required", []
        if not self.any_host and host_name(host) not in self.allowed:
            return 400, f"Host {host_name(host)!r} is not allowed; add it to TASKHUB_ALLOWED_HOSTS", []
        path: str = scope["path"]
        method: str = scope["method"]
        if self.token is not None and (path == "/api" or path.startswith("/api/")) and not self._authorized(scope):
            return (
                401,
                "missing or wrong token: send Authorization: Bearer <TASKHUB_TOKEN>",
                [(b"www-authenticate", b'Bearer realm="taskhub"')],
            )
        if method in UNSAFE_METHODS:
            media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return 415, "state-changing requests must be sent as Content-Type: application/json", []
            origin = _header(scope, b"origin")
            if origin is not None and origin.strip().lower() not in (
                f"http://{host}".lower(),
                f"https://{host}".lower(),
            ):
                return 403, f"cross-origin request refused: Origin {origin!r} does not match Host {host!r}", []
        return None

    def _authorized(self, scope: dict[str, Any]) -> bool:
        assert self.token is not None
        auth = _header(scope, b"authorization")
        if auth is not None:
            scheme, _, given = auth.partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)
        if scope["method"] == "GET" and scope["path"].endswith("/stream"):
            for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
                if key == "token":
                    return hmac.compare_digest(value.encode(), self.token)
        return False
