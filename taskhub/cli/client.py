"""A tiny HTTP client for a running TaskHub API, and `api_available()` to detect one.

Errors come back as the same exception tree the API maps to statuses, so callers handle
`UnknownRun` the same way whether they talked to the API or to the log directly.
"""

from __future__ import annotations

from typing import Any

import httpx

from taskhub.errors import (
    BadRequest,
    IllegalTransition,
    InvalidParams,
    NotFound,
    StoreError,
    TaskHubError,
    UnknownRun,
    UnknownTask,
)
from taskhub.settings import Settings

HEALTH_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 30.0


class ApiUnauthorized(TaskHubError):
    """The API refused our token: set TASKHUB_TOKEN to the token the API was started with."""


def base_url(s: Settings) -> str:
    """The URL to reach the API at: a wildcard bind address is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(s.host, s.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{s.port}"


def _headers(s: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {s.token}"} if s.token else {}


def api_available(s: Settings, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """True when a TaskHub API answers /api/health at settings.host:port (a 401 counts: it is there)."""
    try:
        resp = httpx.get(f"{base_url(s)}/api/health", headers=_headers(s), timeout=timeout)
    except httpx.HTTPError:
        return False
    if resp.status_code == 401:
        return True  # it is TaskHub's API; the request that follows reports the token problem
    if resp.status_code != 200:
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "ok"


def _message(resp: httpx.Response) -> tuple[str, str | None]:
    """The error's message and field from a JSON error body, whatever its exact shape."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or f"HTTP {resp.status_code}", None
    if not isinstance(body, dict):
        return str(body), None
    message = body.get("detail") or body.get("message") or body.get("error") or str(body)
    field = body.get("field")
    extra = body.get("extra")
    if field is None and isinstance(extra, dict):
        field = extra.get("field")
    return str(message), field if isinstance(field, str) else None


class ApiClient:
    def __init__(self, s: Settings, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.base = base_url(s)
        self.http = httpx.Client(base_url=self.base, headers=_headers(s), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self.http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise StoreError(f"the API at {self.base} did not answer: {exc}") from exc
        if resp.status_code >= 400:
            raise self._error(resp, path)
        return resp.json() if resp.content else None

    def _error(self, resp: httpx.Response, path: str) -> TaskHubError:
        message, field = _message(resp)
        status = resp.status_code
        if status == 401:
            return ApiUnauthorized()
        if status == 404:
            if path.startswith("/api/runs"):
                return UnknownRun(message)
            if path.startswith("/api/tasks"):
                return UnknownTask(message)
            return NotFound(message)
        if status == 409:
            return IllegalTransition(message)
        if status == 422:
            return InvalidParams(message, field)
        if status in (400, 413):
            return BadRequest(message)
        return StoreError(f"the API answered {status}: {message}")
