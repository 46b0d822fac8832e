"""Exceptions to HTTP answers, in one place: JSON `{"status_code", "detail", "field"?}`.

TaskHubError carries its own status (404 unknown task or run, 409 illegal transition, 422 invalid
params naming the field, 503 store trouble). Litestar's own errors keep their status, except that a
request that fails validation against the handler's declared types (a body field of the wrong type,
a query parameter out of range) answers 422 naming the field; a body that is not JSON answers 400, and
so does one that is not UTF-8 or is nested too deeply (the JSON decoder raises UnicodeDecodeError and
RecursionError for those, not a decode error).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from taskhub.api.models import ErrorBody
from taskhub.errors import InvalidParams, TaskHubError

log = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()
_AT_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_AT_PATH = re.compile(r" - at `\$[^`]*`$")
_TRUNCATED = "Input data was truncated"
INTERNAL_ERROR = "internal error; see the API's log"


def is_seq_number(text: str) -> bool:
    """ASCII digits, at most 18 of them (a SQLite integer). `str.isdigit()` alone also accepts
    digits that int() refuses, such as '²'."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def error_bytes(status: int, detail: str, field: str | None = None) -> bytes:
    return _ENCODER.encode(ErrorBody(status_code=status, detail=detail, field=field))


def error_response(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        content=error_bytes(status, detail, field), status_code=status, media_type=MediaType.JSON, headers=headers
    )


def field_of(message: str) -> str | None:
    """The field a msgspec validation message names (`... - at `$.params.times``), if any."""
    found = _AT_FIELD.search(message)
    return found.group(1) or None if found else None


def taskhub_error_bytes(exc: TaskHubError) -> bytes:
    """The answer body for a TaskHubError (its status is `exc.status_code`); server faults are logged."""
    field = exc.field if isinstance(exc, InvalidParams) else None
    if exc.status_code >= 500:
        log.warning("api.error status=%d type=%s detail=%s", exc.status_code, type(exc).__name__, exc)
    return error_bytes(exc.status_code, str(exc), field)


def taskhub_error(_: Request[Any, Any, Any], exc: TaskHubError) -> Response[Any]:
    return Response(content=taskhub_error_bytes(exc), status_code=exc.status_code, media_type=MediaType.JSON)


def _not_json(message: str) -> str:
    """msgspec's message for a body that does not decode, as a client can act on it."""
    if message == _TRUNCATED:
        return "empty or cut short; expected a JSON object"
    return _AT_PATH.sub("", message)  # `$[...][...]` says nothing: msgspec does not name the keys here


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail
    field: str | None = None
    if status == 400 and isinstance(exc.__cause__, SerializationException):  # the body is not JSON
        detail = f"malformed body: {_not_json(str(exc.detail))}"
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        key = first.get("key") if isinstance(first, dict) else None
        if key == "data":  # the body as a whole has the wrong shape (or is missing): malformed
            message = first.get("message")
            if not message or message == "'data'":  # Litestar's KeyError for an empty body
                message = "empty; expected a JSON object"
            detail = f"malformed body: {message}"
        elif key:
            status, field = 422, str(key)
            detail = f"{first.get('message') or 'invalid value'} (field `{field}`)"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(status, detail, field, headers)


def not_utf8(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    """Raised while decoding a request body (query and path values are decoded with replacement)."""
    # exc.start counts from wherever the decoder was inside the body, not from its start: not shown
    return error_response(400, f"malformed body: not valid UTF-8 ({exc.reason})")


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """msgspec's "maximum recursion depth exceeded while deserializing": the body, not us."""
    if "deserializ" not in str(exc):
        return internal_error(request, exc)
    return error_response(400, "malformed body: nested too deeply")


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("api.internal_error method=%s path=%s", request.method, request.url.path, exc_info=exc)
    return error_response(500, INTERNAL_ERROR)


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    TaskHubError: taskhub_error,
    HTTPException: http_error,
    UnicodeDecodeError: not_utf8,
    RecursionError: too_deep,
    Exception: internal_error,
}
