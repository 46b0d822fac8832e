"""Submitting a run, and POST /api/runs served without Litestar's per-request machinery.

Submission is the API's hot path. `submitted` does the work for both ways in: the Litestar handler
in runs.py, which owns the route (its OpenAPI entry, and every unusual request), and
`SubmitFastPath`, a raw ASGI layer in front of Litestar that answers a well-formed POST /api/runs
itself: it reads the body, decodes it straight into a SubmitBody, submits, and sends the encoded
RunOut in one write (whole.py), skipping Litestar's routing, parameter injection and response
building (about a third of the request's CPU).

Anything unusual goes to Litestar with the messages read so far replayed, so its answer is exactly
what it would have been: a body that does not decode as a SubmitBody (400 malformed, not UTF-8 or
nested too deeply, 422 naming the field), one over the size limit (413), a client that disconnects
mid-body. Errors raised by the submission itself (404 unknown task, 422 invalid params, 503 store
trouble) are answered here with the same mapping as errors.py.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import msgspec
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from taskhub.api.errors import INTERNAL_ERROR, error_bytes, taskhub_error_bytes
from taskhub.api.hub import Hub, hub_of
from taskhub.api.models import RunOut, SubmitBody
from taskhub.api.params import checked_params
from taskhub.api.views import cheap_blockers, limit_blocker, run_out
from taskhub.api.whole import send_whole
from taskhub.errors import InvalidParams, TaskHubError
from taskhub.events.clock import iso, parse_iso
from taskhub.projections import ops
from taskhub.projections import transitions as t
from taskhub.projections.decisions import decide_submit
from taskhub.projections.runs import RunView

log = logging.getLogger(__name__)

SUBMIT_PATH = "/api/runs"
_DECODER = msgspec.json.Decoder(SubmitBody, strict=False)  # lax, as Litestar converts request data
_ENCODER = msgspec.json.Encoder()
_JSON_HEADERS = (b"content-type", b"application/json")


def _not_before(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    try:
        return iso(parse_iso(text))
    except (ValueError, OverflowError, OSError):
        raise InvalidParams(f"not_before must be an ISO 8601 time, got {text!r}", field="not_before") from None


async def submit(hub: Hub, body: SubmitBody, retry_of: str | None = None) -> tuple[RunView, bool]:
    """Validate (params against the task's model, argv built once) and append `submitted`; a repeated
    idempotency key returns the first run with created=False. The view returned is the op's own."""
    loaded = hub.registry.get(body.task_id)
    params, _ = checked_params(loaded.spec, body.params)
    event = decide_submit(
        body.task_id,
        params,
        priority=body.priority,
        max_attempts=loaded.spec.max_attempts,
        timeout_s=loaded.spec.timeout_s,
        not_before=_not_before(body.not_before),
        idempotency_key=body.idempotency_key,
        task_version=loaded.version,
        retry_of=retry_of,
    )
    return await hub.log.run(lambda txn: ops.submit(txn, event))


async def submitted(hub: Hub, body: SubmitBody) -> tuple[RunOut, int]:
    """The answer to a submission: the queued run and 201, or the first run and 200 on a repeated
    idempotency key. Its blocked_by leaves out only the runs ahead (a count over the queue, too dear
    for every submit: GET the run for it)."""
    view, created = await submit(hub, body)
    blocked = await cheap_blockers(view, hub.log.reader, hub.live, hub.clock())
    loaded = hub.registry.tasks.get(view.task_id)
    if view.status == t.QUEUED and (held := await limit_blocker(view, hub.log.reader, loaded)) is not None:
        blocked.append(held)
    return run_out(view, blocked), 201 if created else 200


def _replay(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` for the app the request is handed to: what was already read, then the rest."""
    pending = deque(messages)

    async def replayed() -> Any:
        return pending.popleft() if pending else await receive()

    return replayed


class SubmitFastPath:
    """Serves a well-formed POST /api/runs; passes every other request to `app` untouched."""

    def __init__(self, app: ASGIApp, litestar: Litestar, max_body: int) -> None:
        self.app = app
        self.litestar = litestar  # its state holds the Hub once the lifespan has started
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"] != SUBMIT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self._too_large(scope):  # refused before reading (no `100 Continue`), by Litestar
            await self.app(scope, receive, send)
            return
        messages, body = await self._read(receive)
        data: SubmitBody | None = None
        if body is not None:
            try:
                data = _DECODER.decode(body)
            except Exception:  # not only MsgspecError: UnicodeDecodeError, RecursionError (Litestar answers)
                data = None
        if data is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        status, out = await self._answer(data, scope)
        await send_whole(send, status, [_JSON_HEADERS, (b"content-length", str(len(out)).encode())], out)

    def _too_large(self, scope: Scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"content-length":
                return not value.isdigit() or int(value) > self.max_body
        return False

    async def _read(self, receive: Receive) -> tuple[list[ReceiveMessage], bytes | None]:
        """The messages read and the whole body; None for the body when it is too large or the
        client left before sending all of it (Litestar answers those)."""
        messages: list[ReceiveMessage] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                return messages, None
            if not message.get("more_body", False):
                return messages, chunk if len(chunks) == 1 else b"".join(chunks)

    async def _answer(self, data: SubmitBody, scope: Scope) -> tuple[int, bytes]:
        try:
            out, status = await submitted(hub_of(self.litestar.state), data)
            return status, _ENCODER.encode(out)
        except TaskHubError as exc:
            return exc.status_code, taskhub_error_bytes(exc)
        except Exception:
            log.exception("api.internal_error method=POST path=%s", scope["path"])
            return 500, error_bytes(500, INTERNAL_ERROR)
