"""Query parameters given with an empty value (`?task_id=&limit=`) count as not given.

A form or a URL template fills every parameter it knows, empty or not (SPEC writes the run list as
`?status=&task_id=&limit=&cursor=`). No TaskHub parameter means anything when empty: `limit=` would
be a 422 and `task_id=` a filter matching no run. So such pairs are dropped before routing, and the
route sees its defaults.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send


def without_empty(query: bytes) -> bytes:
    """The query string without its `name=` pairs whose value is empty."""
    return b"&".join(pair for pair in query.split(b"&") if pair and not pair.endswith(b"="))


class DropEmptyParams:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if query and (query.endswith(b"=") or b"=&" in query):  # most requests: one look at a few bytes
            scope["query_string"] = without_empty(query)
        await self.app(scope, receive, send)
