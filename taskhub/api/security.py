"""The guard in front of every request (SPEC section 7), as plain ASGI so it costs microseconds.

It wraps Litestar's whole request handler (see app.py), so it runs before routing: an unknown path
from a foreign Host is refused like a known one.

1. Host allowlist (loopback names and TASKHUB_ALLOWED_HOSTS): defeats DNS rebinding. 400 otherwise.
2. With TASKHUB_TOKEN set, every `/api` request carries `Authorization: Bearer <token>`, compared in
   constant time; `?token=` is accepted only on GET of an SSE `/stream` route (EventSource cannot
   set headers). 401 otherwise. The token is never logged (server.py redacts access logs).
3. State-changing methods need `Content-Type: application/json` (415) and, when the browser sends an
   `Origin`, one that names this very host (403): a cross-site form or fetch cannot forge either.
   A write to a path no route serves with that method (PUT anywhere, POST /api/health) goes on
   to the router's 405.

Headers are read in one pass, as bytes; a Host value already judged is looked up, not re-parsed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from taskhub.api.errors import error_bytes
from taskhub.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = b"application/json"
HOST_CACHE = 64  # distinct Host values remembered; past it, each is judged afresh (no unbounded growth)
Problem = tuple[int, str, list[tuple[bytes, bytes]]]


def host_name(host: str) -> str:
    """`Example.com:8000` -> `example.com`; `[::1]:8000` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_json(content_type: bytes | None) -> bool:
    if content_type == JSON:
        return True
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == JSON


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, routes: Callable[[str, str], bool] | None = None) -> None:
        """`routes(path, method)`: whether some route serves that method at that path. A write that
        none serves changes nothing whatever its headers: it gets the router's 405 (with Allow), not
        a 415 or 403 that would send the client looking at its headers."""
        self.app = app
        self.routes = routes
        allowed = {host_name(h) for h in settings.allowed_hosts}
        self.any_host = "*" in allowed
        self.allowed = frozenset(allowed)
        self.token = settings.token.encode() if settings.token else None
        self._hosts: dict[bytes, str | None] = {}  # Host header -> why it is refused (None: allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, detail, extra = problem
        body = error_bytes(status, detail)
        headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def check(self, scope: Any) -> Problem | None:
        host = auth = content_type = origin = None
        for key, value in scope["headers"]:  # the first of each, as before
            if key == b"host":
                host = value if host is None else host
            elif key == b"authorization":
                auth = value if auth is None else auth
            elif key == b"content-type":
                content_type = value if content_type is None else content_type
            elif key == b"origin":
                origin = value if origin is None else origin
        if host is None:
            return 400, "a Host header is required", []
        refused = self._host_refused(host)
        if refused is not None:
            return 400, refused, []
        path: str = scope["path"]
        api = path == "/api" or path.startswith("/api/")
        if self.token is not None and api and not self._authorized(scope, auth):
            return (
                401,
                "missing or wrong token: send Authorization: Bearer <TASKHUB_TOKEN>",
                [(b"www-authenticate", b'Bearer realm="taskhub"')],
            )
        method: str = scope["method"]
        if method in UNSAFE_METHODS:
            problem: Problem | None = None
            if not _is_json(content_type):
                problem = 415, "state-changing requests must be sent as Content-Type: application/json", []
            elif origin is not None:
                given = origin.strip().lower()
                host_l = host.lower()
                if given != b"http://" + host_l and given != b"https://" + host_l:
                    o, h = origin.decode("latin-1"), host.decode("latin-1")
                    problem = 403, f"cross-origin request refused: Origin {o!r} does not match Host {h!r}", []
            if problem is not None and (self.routes is None or self.routes(path, method)):
                return problem
        return None

    def _host_refused(self, host: bytes) -> str | None:
        try:
            return self._hosts[host]
        except KeyError:
            pass
        name = host_name(host.decode("latin-1"))
        refused = None
        if not self.any_host and name not in self.allowed:
            refused = f"Host {name!r} is not allowed; add it to TASKHUB_ALLOWED_HOSTS"
        if len(self._hosts) < HOST_CACHE:
            self._hosts[host] = refused
        return refused

    def _authorized(self, scope: Any, auth: bytes | None) -> bool:
        assert self.token is not None
        if auth is not None:
            scheme, _, given = auth.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        if scope["method"] == "GET" and scope["path"].endswith("/stream"):
            for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
                if key == "token":
                    return hmac.compare_digest(value.encode(), self.token)
        return False
