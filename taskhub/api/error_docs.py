"""The error answers each route documents in the OpenAPI document (all `ErrorBody`).

Apart from models.py so that the command line, which uses the models, never loads Litestar.
"""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from taskhub.api.models import ErrorBody

ERROR_MEANINGS = {
    400: "malformed body (not JSON, not an object, an unknown field)",
    404: "unknown task or run",
    409: "a transition that is not allowed",
    413: "body too large (TASKHUB_MAX_BODY_BYTES)",
    415: "a state-changing request that is not Content-Type: application/json",
    422: "a value that fails validation; `field` names it",
    503: "too many live streams, or the database is busy; retry later",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The OpenAPI entries for the error answers a route gives (all `ErrorBody`), so a client or a
    schema-driven test knows them all (Host, token and Origin refusals apply to every route)."""
    return {code: ResponseSpec(data_container=ErrorBody, description=ERROR_MEANINGS[code]) for code in codes}


WRITE_ERRORS = (400, 413, 415, 422)  # what any request with a JSON body can get
